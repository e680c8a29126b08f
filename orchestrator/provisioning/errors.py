"""Why a provisioning step failed, in the terms the policy and the candidate need."""

from __future__ import annotations

from orchestrator.domain.candidate import Failure
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.protocol.messages import LastFailure


class StepError(OrchestratorError):
    """A step failed. `reason` is the candidate's failure token; `retryable` lets the policy
    try the request again; `ambiguous` means it may have taken effect anyway (a timeout after
    the request was sent), so the device is asked before anything is sent again."""

    def __init__(
        self,
        code: ErrorCode,
        reason: str,
        message: str,
        *,
        retryable: bool,
        ambiguous: bool = False,
        device_reported: bool = False,
    ) -> None:
        super().__init__(code, message)
        self.reason = reason
        self.retryable = retryable
        self.ambiguous = ambiguous
        self.device_reported = device_reported

    @property
    def failure(self) -> Failure:
        """The candidate's failure for this error (a device's own report carries no code, as
        when discovery brings it)."""
        code = None if self.device_reported else self.code
        return Failure(reason=self.reason, message=self.message, code=code)


def reported(failure: LastFailure) -> StepError:
    """The device is back from this attempt and says why it could not go online."""
    plural = "s" if failure.attempts != 1 else ""
    return StepError(
        ErrorCode.NETWORK_ERROR,
        failure.reason,
        f"the device reports: {failure.message} ({failure.reason}, after {failure.attempts}"
        f" attempt{plural})",
        retryable=False,
        device_reported=True,
    )


def unsupported(message: str) -> StepError:
    """No strategy takes this device, or its strategy's pre-check refused it."""
    return StepError(ErrorCode.VALIDATION_FAILED, "unsupported_device", message, retryable=False)


def refused(reason: str, message: str) -> StepError:
    """A pre-check refused the attempt (nothing was sent)."""
    return StepError(ErrorCode.VALIDATION_FAILED, reason, message, retryable=False)
