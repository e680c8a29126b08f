"""The thermal camera's start-up with ThingsBoard (seed 004): provision if provision.txt asks
for it, otherwise connect with the stored credentials; report how it went.

    provision.txt present:  provision.json -> register (flow, over thingsboard) ->
                            thermal_config.json (backup, atomic replace) ->
                            provision.txt.processed
    provision.txt absent:   the credentials in thermal_config.json, checked with one CONNECT

Every run has its own correlation id (on every log line, through the context variable) and
walks the seed's states; a failure ends in a FAILED_* state with one of the seed's error types.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar, assert_never

import msgspec

from orchestrator.context import correlation_id_var
from orchestrator.device.cloud import states
from orchestrator.device.cloud.credentials import DeviceCredentials
from orchestrator.device.cloud.errors import CloudError, ErrorCode, ErrorType
from orchestrator.device.cloud.files import ConfigDir
from orchestrator.device.cloud.flow import (
    Command,
    Confirm,
    Flow,
    Pause,
    Prove,
    Publish,
    Reply,
    Save,
    confirm_stored,
    register,
)
from orchestrator.device.cloud.names import pending_for
from orchestrator.device.cloud.settings import DEFAULT_TIMEOUT_S, ProvisionSettings, Server
from orchestrator.device.cloud.states import ProvisioningState
from orchestrator.device.cloud.thingsboard import check_token, provision_session
from orchestrator.device.settings import Sleep
from orchestrator.protocol.messages import CloudProvisioning
from orchestrator.protocol.status import CloudReport

log = logging.getLogger(__name__)

THINGSBOARD = "thingsboard"
T = TypeVar("T")
Clock = Callable[[], float]
"""Unix time in seconds."""


class Outcome(StrEnum):
    """How a start-up went. Values are reported to the orchestrator: never rename them."""

    REGISTERED = "registered"
    """provision.txt asked; the device is registered and its new token stored."""
    CONNECTED = "connected"
    """No provisioning asked; ThingsBoard accepts the stored token."""
    FAILED = "failed"
    """See `error`."""


class CloudFailure(msgspec.Struct, frozen=True, kw_only=True):
    """Why a start-up failed (seed 001's ProvisioningError, without secrets)."""

    error_type: ErrorType
    code: ErrorCode
    message: str
    """What went wrong and what to do about it."""
    retryable: bool
    attempts: int


class CloudResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the orchestrator is told about the device's cloud registration (no secrets)."""

    outcome: Outcome
    state: ProvisioningState
    """COMPLETED or FAILED_* after provisioning; IDLE when none was asked for."""
    correlation_id: str
    device_name: str | None = None
    recovered: bool = False
    """A lost answer was recovered by confirming the token chosen before the request."""
    fallback: bool = False
    """Provisioning failed; the credentials already stored are used (unchecked)."""
    error: CloudFailure | None = None
    warnings: tuple[str, ...] = ()
    """Registered and stored, but some tidying failed (e.g. renaming provision.txt)."""

    @property
    def registered(self) -> bool:
        """Whether the device holds working ThingsBoard credentials after this start."""
        return self.outcome is not Outcome.FAILED

    def report(self) -> CloudReport:
        """What the device's online status says about it."""
        error = None
        if self.error is not None:
            error = f"{self.error.message} ({self.error.error_type}, {self.error.code})"
        return CloudReport(registered=self.registered, device_name=self.device_name, error=error)


@dataclass(frozen=True, slots=True)
class CloudStart:
    """The result to report, and the credentials to connect with (None: none usable)."""

    result: CloudResult
    credentials: DeviceCredentials | None = field(default=None, repr=False)


def settings_from(
    cloud: CloudProvisioning, *, timeout_seconds: int = DEFAULT_TIMEOUT_S
) -> ProvisionSettings:
    """provision.json for what the orchestrator delivered; CloudError if it cannot be one."""
    if cloud.provider != THINGSBOARD:
        raise CloudError(
            ErrorCode.UNSUPPORTED_PROVIDER,
            f"cloud provider {cloud.provider!r} is not supported (only {THINGSBOARD!r})",
        )
    host = f"[{cloud.host}]" if ":" in cloud.host else cloud.host
    fields: dict[str, object] = {
        "server_url": host,
        "server_port": cloud.port,
        "provision_device_key": cloud.provision_device_key,
        "provision_device_secret": cloud.provision_device_secret,
        "timeout_seconds": timeout_seconds,
    }
    if cloud.device_name_prefix is not None:
        fields["device_name_prefix"] = cloud.device_name_prefix
    try:
        return msgspec.convert(fields, ProvisionSettings)
    except msgspec.ValidationError as exc:
        raise CloudError(
            ErrorCode.PROVISION_JSON_INVALID, f"the cloud provisioning is not valid: {exc}"
        ) from exc


async def request_provisioning(
    config_dir: Path, cloud: CloudProvisioning, *, timeout_seconds: int = DEFAULT_TIMEOUT_S
) -> None:
    """Write provision.json and provision.txt from the orchestrator's delivery, so that the
    next `start_up` registers the device."""
    settings = settings_from(cloud, timeout_seconds=timeout_seconds)
    await asyncio.to_thread(ConfigDir(config_dir).write_provisioning, settings)


async def start_up(
    config_dir: Path,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.time,
    address: tuple[str, int] | None = None,
) -> CloudStart:
    """Provision (provision.txt present) or check the stored credentials; never raises for
    an expected failure. `address` overrides where the server's host name points (a
    simulated network's routing); `sleep` paces the retries."""
    correlation_id = uuid.uuid4().hex[:12]
    reset = correlation_id_var.set(correlation_id)
    try:
        run = _Run(ConfigDir(config_dir), correlation_id, sleep, clock, address)
        return await run.start()
    finally:
        correlation_id_var.reset(reset)


class _Run:
    """One start-up: its state, its commands carried out."""

    def __init__(
        self,
        config: ConfigDir,
        correlation_id: str,
        sleep: Sleep,
        clock: Clock,
        address: tuple[str, int] | None,
    ) -> None:
        self.config = config
        self.correlation_id = correlation_id
        self.state = ProvisioningState.IDLE
        self._sleep = sleep
        self._clock = clock
        self._address = address
        self._device_name: str | None = None
        self._timeout_s: float = DEFAULT_TIMEOUT_S

    async def start(self) -> CloudStart:
        self._move(ProvisioningState.DETECTING_FILES)
        if not await asyncio.to_thread(self.config.triggered):
            self._move(ProvisioningState.IDLE)
            return await self._connect_stored()
        log.info("provisioning attempt %s: provision.txt found", self.correlation_id)
        try:
            credentials, recovered, warnings = await self._provision()
        except CloudError as exc:
            self.state = states.failed(self.state, exc.code)
            log.error(  # noqa: TRY400 - an expected failure: its message says it all
                "provisioning attempt %s ended %s (%s, %s): %s",
                self.correlation_id, self.state, exc.error_type, exc.code, exc.message,
            )  # fmt: skip
            return await self._fall_back(exc)
        log.info(
            "provisioning attempt %s completed: registered as %r%s",
            self.correlation_id, credentials.device_name,
            " (a lost answer recovered)" if recovered else "",
        )  # fmt: skip
        return CloudStart(
            result=self._result(Outcome.REGISTERED, recovered=recovered, warnings=warnings),
            credentials=credentials,
        )

    async def _provision(self) -> tuple[DeviceCredentials, bool, tuple[str, ...]]:
        self._move(ProvisioningState.LOADING_CONFIG)
        config = self.config
        settings = await asyncio.to_thread(config.read_settings)
        self._timeout_s = settings.timeout_seconds
        await asyncio.to_thread(config.clean_temp)
        await asyncio.to_thread(config.read_config)  # it must be an object we can merge into
        await asyncio.to_thread(config.check_writable)
        earlier = await asyncio.to_thread(config.read_pending)
        pending = pending_for(settings, earlier)
        self._device_name = pending.device_name
        log.info(
            "registering as %r with %s:%d%s",
            pending.device_name, settings.server.host, settings.server.port,
            " (resuming an earlier attempt)" if pending is earlier else "",
        )  # fmt: skip
        registered = await self._drive(register(settings, pending), settings.server)
        credentials = DeviceCredentials(
            device_name=pending.device_name,
            access_token=registered.access_token,
            device_id=registered.device_id,
            server=settings.server,
        )
        self._enter(ProvisioningState.VALIDATING_RESPONSE)  # a confirmed token skips the answer
        self._move(ProvisioningState.UPDATING_CONFIG)
        now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        warnings = await asyncio.to_thread(config.commit, credentials, now)
        self._move(ProvisioningState.COMPLETED)
        return credentials, registered.recovered, warnings

    async def _connect_stored(self) -> CloudStart:
        """No provisioning asked: the stored credentials, checked with one CONNECT."""
        try:
            await asyncio.to_thread(self.config.forget_pending)  # a finished run's leftover
            credentials = await asyncio.to_thread(self.config.stored)
        except CloudError as exc:
            return CloudStart(result=self._failure(exc))
        if credentials is None:
            error = CloudError(
                ErrorCode.NOT_PROVISIONED,
                "no provision.txt, and thermal_config.json holds no ThingsBoard credentials: "
                "deliver a cloud registration (provision.json and provision.txt) first",
            )
            return CloudStart(result=self._failure(error))
        self._device_name = credentials.device_name
        try:
            await self._drive(confirm_stored(credentials.access_token), credentials.server)
        except CloudError as exc:
            log.error(  # noqa: TRY400 - an expected failure: its message says it all
                "stored credentials of %r: %s", credentials.device_name, exc.message
            )
            return CloudStart(result=self._failure(exc), credentials=credentials)
        log.info("connected to ThingsBoard as %r (stored credentials)", credentials.device_name)
        return CloudStart(result=self._result(Outcome.CONNECTED), credentials=credentials)

    async def _fall_back(self, exc: CloudError) -> CloudStart:
        """A failed provisioning: the configuration there was stays in use (seed 004)."""
        try:
            stored = await asyncio.to_thread(self.config.stored)
        except CloudError:
            stored = None
        if stored is not None:
            log.warning("going on with the credentials already stored (%r)", stored.device_name)
        return CloudStart(
            result=self._failure(exc, fallback=stored is not None), credentials=stored
        )

    async def _drive(self, flow: Flow[T], server: Server) -> T:
        """Carry out `flow`'s commands until it returns (or raises)."""
        reply: Reply = None
        error: CloudError | None = None
        while True:
            try:
                command = flow.send(reply) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            reply, error = None, None
            try:
                reply = await self._carry_out(command, server)
            except CloudError as exc:
                error = exc

    async def _carry_out(self, command: Command, server: Server) -> Reply:
        where = self._route(server)
        name = self._device_name or "device"
        match command:
            case Save(pending=pending):
                await asyncio.to_thread(self.config.save_pending, pending)
                return None
            case Confirm(token=token):
                if self.state is not ProvisioningState.IDLE:
                    self._enter(ProvisioningState.CONNECTING)
                    log.info("confirming the token chosen by an earlier attempt")
                return await check_token(where, token, client_id=name, timeout_s=self._timeout_s)
            case Prove(token=token):
                log.info("proving the new token with one connect")
                return await check_token(where, token, client_id=name, timeout_s=self._timeout_s)
            case Publish(request=request):
                self._enter(ProvisioningState.CONNECTING)
                async with provision_session(
                    where, client_id=name, timeout_s=self._timeout_s
                ) as session:
                    self._move(ProvisioningState.SENDING_REQUEST)
                    await session.send(request)
                    self._move(ProvisioningState.WAITING_RESPONSE)
                    payload = await session.answer()
                self._move(ProvisioningState.VALIDATING_RESPONSE)
                return payload
            case Pause(seconds=seconds, retry=retry, retries=retries, reason=reason):
                log.warning("%s; retry %d of %d in %g s", reason, retry, retries, seconds)
                await self._sleep(seconds)
                return None
        assert_never(command)

    def _route(self, server: Server) -> Server:
        if self._address is None:
            return server
        host, port = self._address
        return Server(host=host, port=port, use_ssl=server.use_ssl)

    def _move(self, target: ProvisioningState) -> None:
        previous, self.state = self.state, states.advance(self.state, target)
        log.info("provisioning %s -> %s", previous, target)

    def _enter(self, target: ProvisioningState) -> None:
        # Retries come back to the state they failed in: no move, the pause was logged.
        if self.state is not target:
            self._move(target)

    def _failure(self, exc: CloudError, *, fallback: bool = False) -> CloudResult:
        failure = CloudFailure(
            error_type=exc.error_type,
            code=exc.code,
            message=exc.message,
            retryable=exc.retryable,
            attempts=exc.attempts,
        )
        return self._result(Outcome.FAILED, error=failure, fallback=fallback)

    def _result(
        self,
        outcome: Outcome,
        *,
        recovered: bool = False,
        fallback: bool = False,
        error: CloudFailure | None = None,
        warnings: tuple[str, ...] = (),
    ) -> CloudResult:
        return CloudResult(
            outcome=outcome,
            state=self.state,
            correlation_id=self.correlation_id,
            device_name=self._device_name,
            recovered=recovered,
            fallback=fallback,
            error=error,
            warnings=warnings,
        )
