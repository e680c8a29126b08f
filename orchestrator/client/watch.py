"""What `batch follow` knows of a session, rebuilt from its events (pure: no I/O).

The watch is done when the session is closed, or when it is past discovery, at least one
device has finished, and every device has either finished (verified or failed) or sits
discovered without being on the allowlist (nothing will provision it unless an operator
asks). Its exit status is 1 when any device failed, else 0.
"""

from __future__ import annotations

import msgspec

from orchestrator.client.sse import StreamEvent
from orchestrator.domain.candidate import CandidateState
from orchestrator.domain.events import DeviceDiscovered, DeviceStateChanged, ErrorRaised
from orchestrator.domain.events import SessionStatus as SessionStatusPayload
from orchestrator.domain.session import SessionSnapshot, SessionState

FINISHED = frozenset({CandidateState.VERIFIED, CandidateState.FAILED})


class DeviceRow(msgspec.Struct, frozen=True, kw_only=True):
    """One device as the watch shows it."""

    mac: str
    state: CandidateState
    rssi: int
    firmware_version: str
    in_allowlist: bool
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Verified or failed."""
        return self.state in FINISHED

    @property
    def left_out(self) -> bool:
        """Discovered, not on the allowlist: provision-all leaves it alone."""
        return self.state is CandidateState.DISCOVERED and not self.in_allowlist


_SESSION_STATUS = msgspec.json.Decoder(SessionStatusPayload)
_DISCOVERED = msgspec.json.Decoder(DeviceDiscovered)
_STATE_CHANGED = msgspec.json.Decoder(DeviceStateChanged)
_ERROR = msgspec.json.Decoder(ErrorRaised)


class BatchWatch:
    """The session and its devices as the events tell them."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.session: SessionSnapshot | None = None
        self.devices: dict[str, DeviceRow] = {}

    def apply(self, event: StreamEvent) -> list[str]:
        """Take one event; describe what it changed, one line per change (none when the event
        only repeats what is known, as a reconnect's snapshot does)."""
        if event.session_id not in (None, self.session_id):
            return []
        match event.type:
            case "session.status":
                return self._session(_SESSION_STATUS.decode(event.payload).session)
            case "device.discovered":
                return self._discovered(_DISCOVERED.decode(event.payload))
            case "device.state_changed":
                return self._state_changed(_STATE_CHANGED.decode(event.payload))
            case "error":
                error = _ERROR.decode(event.payload)
                return [f"appliance error {error.code}: {error.message}"]
            case _:
                return []

    def _session(self, snapshot: SessionSnapshot) -> list[str]:
        if snapshot.id != self.session_id:
            return []
        before = self.session
        self.session = snapshot
        if before is not None and before.state is snapshot.state:
            return []
        return [f"session {snapshot.id} {snapshot.state}"]

    def _discovered(self, payload: DeviceDiscovered) -> list[str]:
        known = self.devices.get(payload.mac)
        row = DeviceRow(
            mac=payload.mac,
            state=known.state if known else CandidateState.DISCOVERED,
            rssi=payload.rssi,
            firmware_version=payload.firmware_version,
            in_allowlist=payload.in_allowlist,
            error=known.error if known else None,
        )
        self.devices[payload.mac] = row
        if known is not None:
            return []
        listed = "on the allowlist" if payload.in_allowlist else "NOT on the allowlist"
        return [
            f"{payload.mac} discovered (RSSI {payload.rssi} dBm, firmware "
            f"{payload.firmware_version}, {listed})"
        ]

    def _state_changed(self, payload: DeviceStateChanged) -> list[str]:
        known = self.devices.get(payload.mac)
        if known is None:
            # A replay may start after the device's discovery: show what is known.
            known = DeviceRow(
                mac=payload.mac,
                state=payload.previous_state,
                rssi=0,
                firmware_version="?",
                in_allowlist=True,
            )
        error = payload.error if payload.new_state is CandidateState.FAILED else None
        if known.state is payload.new_state and known.error == error:
            return []
        self.devices[payload.mac] = msgspec.structs.replace(
            known, state=payload.new_state, error=error
        )
        line = f"{payload.mac} {known.state} -> {payload.new_state}"
        return [f"{line}: {error}" if error else line]

    # -- reading --------------------------------------------------------------------------

    @property
    def failed(self) -> list[DeviceRow]:
        """Devices that ended failed."""
        return [d for d in self.devices.values() if d.state is CandidateState.FAILED]

    @property
    def finished_count(self) -> int:
        """Devices verified or failed."""
        return sum(1 for d in self.devices.values() if d.finished)

    @property
    def done(self) -> bool:
        """Whether there is nothing left to wait for (see the module's docstring)."""
        if self.session is None:
            return False
        if self.session.state is SessionState.CLOSED:
            return True
        if self.session.state in (SessionState.DISCOVERING, SessionState.CLOSING):
            return False
        rows = self.devices.values()
        return any(d.finished for d in rows) and all(d.finished or d.left_out for d in rows)

    @property
    def exit_status(self) -> int:
        """1 when any device failed, else 0."""
        return 1 if self.failed else 0
