"""The registration exchange as a pure flow: generators that yield what to do (save, confirm,
publish, prove, pause) and receive what came of it. They never await, sleep or touch a file,
so every decision (retry or not, recover a lost answer, when to persist) is tested without an
event loop; `provisioner` carries the commands out.

A reply is sent in with `send`; a network failure is thrown in as a CloudError.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import msgspec

from orchestrator.device.cloud.errors import CloudError, ErrorCode
from orchestrator.device.cloud.messages import ProvisionRequest, decode_answer
from orchestrator.device.cloud.names import PendingRegistration
from orchestrator.device.cloud.settings import ProvisionSettings

RETRY_DELAYS_S = (1.0, 2.0, 4.0)
"""Seed 004: network failures are retried 3 times, after 1 s, 2 s and 4 s."""

T = TypeVar("T")


class Verdict(StrEnum):
    """What a CONNECT with a token as username got: CONNACK 0, or 5 (or 4)."""

    ACCEPTED = "accepted"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Save:
    """Persist the registration under way; reply None."""

    pending: PendingRegistration


@dataclass(frozen=True, slots=True)
class Confirm:
    """CONNECT once with `token` to learn whether a device holds it; reply a Verdict."""

    token: str

    def __repr__(self) -> str:
        return "Confirm(token=***)"


@dataclass(frozen=True, slots=True)
class Publish:
    """Open a `provision` session, send `request`, wait for the answer; reply its bytes."""

    request: ProvisionRequest


@dataclass(frozen=True, slots=True)
class Prove:
    """CONNECT once with a newly issued token before storing it (FR-012); reply a Verdict."""

    token: str

    def __repr__(self) -> str:
        return "Prove(token=***)"


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait `seconds` before retry number `retry` (of `retries`) after a network failure."""

    seconds: float
    retry: int
    retries: int
    reason: str


Command = Save | Confirm | Publish | Prove | Pause
Reply = Verdict | bytes | None
Flow = Generator[Command, Reply, T]


@dataclass(frozen=True, slots=True)
class Registered:
    """A device holds `access_token`; `recovered` if a lost answer was recovered."""

    access_token: str
    device_id: str | None = None
    recovered: bool = False

    def __repr__(self) -> str:
        return f"Registered(device_id={self.device_id!r}, recovered={self.recovered})"


def retrying(attempt: Callable[[], Flow[T]]) -> Flow[T]:
    """Run `attempt` until it succeeds, retrying network failures after 1 s, 2 s and 4 s; the
    error that ends it counts the attempts made."""
    retries = len(RETRY_DELAYS_S)
    for tries, delay in enumerate((*RETRY_DELAYS_S, None), start=1):
        try:
            return (yield from attempt())
        except CloudError as exc:
            exc.attempts = tries
            if not exc.retryable or delay is None:
                raise
            yield Pause(seconds=delay, retry=tries, retries=retries, reason=exc.message)
    raise AssertionError("unreachable: the last delay is None")


@dataclass(slots=True)
class _Progress:
    """What one run has learnt so far; survives its retries."""

    pending: PendingRegistration
    doubt: bool
    """A device may hold our token: confirm it before asking again."""
    issued: Registered | None = None
    """An answer's credentials, still to be proven."""


def register(settings: ProvisionSettings, pending: PendingRegistration) -> Flow[Registered]:
    """Register `pending` with the server `settings` name, with retries."""
    progress = _Progress(pending=pending, doubt=pending.in_doubt)
    return (yield from retrying(lambda: _attempt(settings, progress)))


def confirm_stored(token: str) -> Flow[None]:
    """Check the stored token with one CONNECT (with retries)."""

    def attempt() -> Flow[None]:
        if _verdict((yield Confirm(token))) is Verdict.REFUSED:
            raise CloudError(
                ErrorCode.STORED_TOKEN_REFUSED,
                "ThingsBoard refuses the access token in thermal_config.json (the device was "
                "deleted, or its credentials changed): provision it again (provision.txt)",
            )

    return (yield from retrying(attempt))


def request(settings: ProvisionSettings, pending: PendingRegistration) -> ProvisionRequest:
    """The request registering `pending` with the token it chose."""
    return ProvisionRequest(
        provision_device_key=settings.provision_device_key,
        provision_device_secret=settings.provision_device_secret,
        device_name=pending.device_name,
        token=pending.access_token,
    )


def _attempt(settings: ProvisionSettings, progress: _Progress) -> Flow[Registered]:
    if progress.issued is not None:
        # The answer came, its proof hit a network failure: prove it again, ask nothing.
        return (yield from _prove(progress.issued, progress.pending.device_name))
    token = progress.pending.access_token
    if progress.doubt:
        if _verdict((yield Confirm(token))) is Verdict.ACCEPTED:
            return Registered(access_token=token, recovered=True)
        progress.doubt = False  # no device holds the token: the earlier request took no effect
    if not progress.pending.in_doubt:
        progress.pending = msgspec.structs.replace(progress.pending, in_doubt=True)
        yield Save(progress.pending)
    try:
        payload = yield Publish(request(settings, progress.pending))
    except CloudError as exc:
        # Unreachable means nothing went out; any later failure may follow a request that
        # the server carried out.
        if exc.code is not ErrorCode.SERVER_UNREACHABLE:
            progress.doubt = True
        raise
    if not isinstance(payload, bytes):
        raise TypeError(f"Publish is answered with bytes, not {type(payload).__name__}")
    try:
        issued = decode_answer(payload, device_name=progress.pending.device_name)
    except CloudError as exc:
        if exc.code in {ErrorCode.PROVISION_NOT_FOUND, ErrorCode.PROVISION_FAILURE}:
            # A refusal created nothing: a restart need not confirm the token first.
            progress.pending = msgspec.structs.replace(progress.pending, in_doubt=False)
            yield Save(progress.pending)
        raise
    progress.issued = Registered(access_token=issued.access_token, device_id=issued.device_id)
    return (yield from _prove(progress.issued, progress.pending.device_name))


def _prove(issued: Registered, device_name: str) -> Flow[Registered]:
    if _verdict((yield Prove(issued.access_token))) is Verdict.REFUSED:
        raise CloudError(
            ErrorCode.TOKEN_REFUSED,
            "ThingsBoard answered SUCCESS but refused the new access token on the first "
            f"connect, so it was not stored: check device {device_name!r} and its "
            "credentials in ThingsBoard (delete it to start over), then restart to provision "
            "again",
        )
    return issued


def _verdict(reply: Reply) -> Verdict:
    if not isinstance(reply, Verdict):
        raise TypeError(f"a CONNECT check is answered with a Verdict, not {type(reply).__name__}")
    return reply
