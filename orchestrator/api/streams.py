"""What the event stream route and the console sign-in need, handed over once at start."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec
from litestar import Litestar

from orchestrator.security.console_sessions import ConsoleSessions
from orchestrator.streaming.bus import EventBus

STATE_KEY = "streams"


class Streams(msgspec.Struct, frozen=True, kw_only=True):
    """The event bus and the stream settings."""

    bus: EventBus
    console_sessions: ConsoleSessions
    clock: Callable[[], datetime]
    heartbeat_s: float = 15.0
    allow_anonymous: bool = False
    """Open the event stream to clients that send no credential (it shows MACs and states,
    never secrets). Off by default."""


def streams_of(app: Litestar) -> Streams:
    """The streams registered on `app`."""
    streams = app.state[STATE_KEY]
    if not isinstance(streams, Streams):
        raise TypeError("the app was built without streams")
    return streams
