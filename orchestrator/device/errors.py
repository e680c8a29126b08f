"""The device agent's errors: one root, structured fields, mapped to protocol codes at the edge."""

from __future__ import annotations

from orchestrator.protocol.messages import DeviceErrorCode, FailureReason


class AgentError(Exception):
    """Root of every error the device agent raises."""


class IllegalTransitionError(AgentError):
    """A lifecycle move the transition table does not allow."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"a device cannot move from {current} to {target}")
        self.current = current
        self.target = target


class RequestError(AgentError):
    """A request the device answers with an error; `code` is the protocol's error code."""

    def __init__(self, code: DeviceErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class OnlineError(AgentError):
    """Why the device could not get online; `reason` and `attempts` end up in last_failure."""

    def __init__(self, reason: FailureReason, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.attempts = attempts


class JoinError(OnlineError):
    """The target Wi-Fi network could not be joined (wrong password, not in range, no lease)."""


class BrokerUnreachableError(OnlineError):
    """On the target network, but the MQTT broker refused, did not answer or dropped us."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(FailureReason.BROKER_UNREACHABLE, message, attempts=attempts)
