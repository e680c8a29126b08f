"""What a strategy asks for, as plain data. The engine carries each request to its adapter
(the device's transport, or the broker) and sends the reply back into the strategy."""

from __future__ import annotations

from collections.abc import Generator
from enum import StrEnum
from typing import Any, TypeVar

import msgspec

from orchestrator.domain.mac import Mac
from orchestrator.ports.broker import DeviceAccount
from orchestrator.protocol.messages import Credentials, SecurityScheme

R = TypeVar("R")


class Stage(StrEnum):
    """The lifecycle stages of seed 002, in order. Audited and measured one by one."""

    DETECT = "detect"
    PRE_CHECK = "pre_check"
    PROVISION = "provision"
    CONFIRM = "confirm"
    ROLLBACK = "rollback"


class ReadInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Ask the device who it is and what state it is in (GET /v1/info)."""


class GrantAccount(msgspec.Struct, frozen=True, kw_only=True):
    """Create (or replace) the device's broker account."""

    account: DeviceAccount

    def __repr__(self) -> str:
        return f"GrantAccount(username={self.account.username!r})"


class Deliver(msgspec.Struct, frozen=True, kw_only=True):
    """Hand the device its credentials (POST /v1/credentials)."""

    credentials: Credentials
    scheme: SecurityScheme = SecurityScheme.PLAIN

    def __repr__(self) -> str:
        return f"Deliver(device_name={self.credentials.device_name!r}, scheme={self.scheme!r})"


class AwaitOnline(msgspec.Struct, frozen=True, kw_only=True):
    """Wait for the device's online status carrying `nonce` on the target broker."""

    status_topic: str
    mac: Mac
    nonce: str


class RevokeAccount(msgspec.Struct, frozen=True, kw_only=True):
    """Remove the device's broker account (rollback)."""

    username: str


Request = ReadInfo | GrantAccount | Deliver | AwaitOnline | RevokeAccount

DEVICE_REQUESTS = (ReadInfo, Deliver)
"""Requests that travel to the device itself (they count for its circuit breaker)."""

Flow = Generator[Request, Any, R]
"""A strategy stage: yields requests, receives their replies, returns its result."""


def ask(request: Request, reply: type[R]) -> Generator[Request, Any, R]:
    """Yield `request` and return its reply, checked to be a `reply` (use with `yield from`)."""
    answer = yield request
    if not isinstance(answer, reply):
        raise TypeError(f"{type(request).__name__} was answered with {type(answer).__name__}")
    return answer
