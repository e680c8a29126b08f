"""The one place where timeouts, retries and the per-device circuit breaker are applied to
a strategy's requests (strategies never see any of it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec

from orchestrator.domain.circuit import BreakerRules, Circuit, after_failure, after_success, allows
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.mac import Mac
from orchestrator.provisioning.errors import StepError
from orchestrator.provisioning.requests import DEVICE_REQUESTS, Request

log = logging.getLogger(__name__)

Seconds = Annotated[float, msgspec.Meta(gt=0, le=600)]


class PolicySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Timeouts, retries and the circuit breaker."""

    request_timeout_s: Seconds = 5.0
    """One request to a device or the broker."""
    retry_backoff_s: list[Annotated[float, msgspec.Meta(ge=0, le=600)]] = msgspec.field(
        default_factory=lambda: [1.0, 2.0, 4.0]
    )
    """A retryable failure is tried again after each of these pauses in turn (three retries
    after 1, 2 and 4 s by default); then the step fails."""
    breaker: BreakerRules = msgspec.field(default_factory=BreakerRules)


Execute = Callable[[Request], Awaitable[object]]
Settle = Callable[[], Awaitable[object | None]]


class Policy:
    """Applies the settings to every request of every device."""

    def __init__(
        self,
        settings: PolicySettings,
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self._sleep = sleep
        self._circuits: dict[Mac, Circuit] = {}

    async def run(
        self, mac: Mac, request: Request, execute: Execute, *, settle: Settle | None = None
    ) -> object:
        """`execute(request)` under the policy. After an ambiguous failure (the request may
        have taken effect), `settle()` is asked first: a reply from it ends the retries."""
        pauses = self.settings.retry_backoff_s
        for tried in range(len(pauses) + 1):
            outcome = await self._once(mac, request, execute)
            if not isinstance(outcome, StepError):
                return outcome
            error = outcome
            if not error.retryable or tried == len(pauses):
                raise error
            log.info(
                "%s failed (%s); trying again in %.1f s",
                type(request).__name__,
                error,
                pauses[tried],
            )
            await self._sleep(pauses[tried])
            if error.ambiguous and settle is not None:
                settled = await settle()
                if settled is not None:
                    return settled
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _once(self, mac: Mac, request: Request, execute: Execute) -> object:
        """The reply, or the StepError the attempt ended with (returned, not raised)."""
        to_device = isinstance(request, DEVICE_REQUESTS)
        circuit = self._circuits.get(mac, Circuit())
        if to_device and not allows(circuit, self._monotonic()):
            return StepError(
                ErrorCode.CIRCUIT_OPEN,
                "circuit_open",
                f"too many failed requests to {mac} in a row; "
                f"not trying again for {self.settings.breaker.open_s:.0f} s",
                retryable=False,
            )
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                reply = await execute(request)
        except TimeoutError:
            error = StepError(
                ErrorCode.DEVICE_TIMEOUT if to_device else ErrorCode.MQTT_UNAVAILABLE,
                "timeout",
                f"{type(request).__name__} got no answer within "
                f"{self.settings.request_timeout_s:.0f} s",
                retryable=True,
                ambiguous=True,
            )
        except StepError as step_error:
            error = step_error
        else:
            if to_device:
                self._circuits[mac] = after_success(circuit)
            return reply
        if to_device:
            self._circuits[mac] = after_failure(circuit, self._monotonic(), self.settings.breaker)
        return error

    def forget(self, mac: Mac) -> None:
        """Drop a device's breaker (its session ended)."""
        self._circuits.pop(mac, None)
