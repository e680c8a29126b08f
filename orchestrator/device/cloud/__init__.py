"""The reference thermal camera's ThingsBoard registration (seeds 001 and 004).

The agent hands the orchestrator's cloud section over with `request_provisioning`, then calls
`start_up` at every start: it provisions when provision.txt asks for it, otherwise it checks
the stored credentials, and says how it went (`CloudStart.result`, safe to report) and what to
connect with (`CloudStart.credentials`, for `thingsboard.device_link`).
"""

from orchestrator.device.cloud.credentials import DeviceCredentials
from orchestrator.device.cloud.errors import CloudError, ErrorCode, ErrorType
from orchestrator.device.cloud.provisioner import (
    CloudFailure,
    CloudResult,
    CloudStart,
    Outcome,
    request_provisioning,
    settings_from,
    start_up,
)
from orchestrator.device.cloud.states import ProvisioningState
from orchestrator.device.cloud.thingsboard import DeviceLink, device_link

__all__ = [
    "CloudError",
    "CloudFailure",
    "CloudResult",
    "CloudStart",
    "DeviceCredentials",
    "DeviceLink",
    "ErrorCode",
    "ErrorType",
    "Outcome",
    "ProvisioningState",
    "device_link",
    "request_provisioning",
    "settings_from",
    "start_up",
]
