"""The provisioning engine: runs each submitted device through its family's strategy, in
waves of at most `max_concurrent_devices`, persisting the attempt before and after every step
so that a restart resumes each device where it was.

Per device: detect (GET /v1/info, pick the strategy), pre-check, provision (grant the broker
account, deliver credentials), confirm (the online status with this attempt's nonce), and on
failure rollback (revoke the account). Every stage is audited with its duration and outcome
and reported to the StageObserver (metrics); candidate moves go to the ProgressSink, which
stores, audits and streams them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Annotated, TypeVar

import msgspec

from orchestrator.batch.audit import Auditor
from orchestrator.context import mac_var, session_id_var
from orchestrator.domain.attempt import (
    Attempt,
    AttemptPhase,
    Resume,
    advance_attempt,
    catch_up,
    resume_plan,
)
from orchestrator.domain.audit import SYSTEM_ACTOR, Outcome
from orchestrator.domain.candidate import (
    CandidateEvent,
    CandidateState,
    CloudRegistration,
    Failure,
)
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.mac import Mac
from orchestrator.ports.broker import (
    BrokerUnavailableError,
    DeviceAccount,
    DeviceAccounts,
    OnlineProofs,
)
from orchestrator.ports.devices import (
    DeviceRejectedError,
    DeviceTimeoutError,
    DeviceTransport,
    DeviceUnreachableError,
    ProgressSink,
    WorkOrder,
)
from orchestrator.ports.storage import AttemptRepository
from orchestrator.ports.telemetry import StageObserver
from orchestrator.protocol import PROTOCOL_VERSION
from orchestrator.protocol.messages import DeliveryReceipt, DeviceInfo, DeviceState
from orchestrator.protocol.status import Online, status_topic
from orchestrator.provisioning.errors import StepError, reported
from orchestrator.provisioning.policy import Policy, PolicySettings
from orchestrator.provisioning.registry import StrategyRegistry
from orchestrator.provisioning.requests import (
    AwaitOnline,
    Deliver,
    Flow,
    GrantAccount,
    ReadInfo,
    Request,
    RevokeAccount,
    Stage,
)
from orchestrator.provisioning.strategy import Issued, ProvisioningStrategy, Target

log = logging.getLogger(__name__)

R = TypeVar("R")
Key = tuple[str, Mac]


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the engine runs devices."""

    max_concurrent_devices: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    """Devices between detection and verification at once (a wave). The Pi's own radio
    serves about 8 stations in AP mode; raise it only with a bigger access point."""
    resume_grace_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 15.0
    """After a restart, a delivered device whose verification window has passed gets this
    long for its (retained) online status to arrive before it fails."""
    cleanup_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    """How long a rollback may take when an attempt is abandoned (skip, stop)."""
    policy: PolicySettings = msgspec.field(default_factory=PolicySettings)


class BrokerPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Where devices report and how their accounts and topics are named."""

    device_url: str
    """The broker URL devices get (as reachable from the target network)."""
    topic_base: str

    def topic_prefix(self, mac: Mac) -> str:
        """`<topic_base>/<mac hex>`: the device publishes `<prefix>/status` and nothing else."""
        return f"{self.topic_base.rstrip('/')}/{_hex(mac)}"

    @staticmethod
    def username(mac: Mac) -> str:
        """`dev-<mac hex>`, which is also the device's MQTT client id."""
        return f"dev-{_hex(mac)}"


def _hex(mac: Mac) -> str:
    return mac.replace(":", "").lower()


def new_secret() -> str:
    """A nonce or password: 24 URL-safe characters (144 random bits)."""
    return secrets.token_urlsafe(18)


class ProvisioningEngine:
    """The Engine port. Use as an async context manager; `attach` the host before submitting."""

    def __init__(
        self,
        *,
        attempts: AttemptRepository,
        transport: DeviceTransport,
        accounts: DeviceAccounts,
        proofs: OnlineProofs,
        broker: BrokerPlan,
        auditor: Auditor,
        observer: StageObserver,
        settings: EngineSettings,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        registry: StrategyRegistry | None = None,
        new_secret: Callable[[], str] = new_secret,
    ) -> None:
        self._attempts = attempts
        self._transport = transport
        self._accounts = accounts
        self._proofs = proofs
        self._broker = broker
        self._auditor = auditor
        self._observer = observer
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._registry = registry or StrategyRegistry.default()
        self._new_secret = new_secret
        self._policy = Policy(settings.policy, monotonic=monotonic, sleep=sleep)
        self._wave = asyncio.Semaphore(settings.max_concurrent_devices)
        self._host: ProgressSink | None = None
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._abandoning: set[Key] = set()
        self._again: set[Key] = set()
        self._group: asyncio.TaskGroup | None = None
        self.in_flight = 0
        """Devices holding a wave slot right now (for tests and metrics)."""
        self.peak_in_flight = 0

    def attach(self, host: ProgressSink) -> None:
        """The service that hands out work orders and takes the reports."""
        self._host = host

    async def __aenter__(self) -> ProvisioningEngine:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Shutting down is not giving up: attempts stay as persisted, and the next run
        # resumes them.
        for key, task in self._running.items():
            if key not in self._abandoning:  # clean-ups finish (bounded by their budget)
                task.cancel()
        if self._group is not None:
            await self._group.__aexit__(exc_type, exc, tb)
            self._group = None

    # -- the Engine port -----------------------------------------------------------------

    async def submit(self, session_id: str, macs: Sequence[Mac]) -> None:
        """Queue devices. A device whose work is still running is looked at again once it
        ends: its report may have been seen (and retried) before its task finished; if there
        is nothing to do then, the second look does nothing."""
        if self._group is None:
            raise RuntimeError("ProvisioningEngine used outside its `async with` block")
        for mac in macs:
            key = (session_id, mac)
            if key in self._running:
                self._again.add(key)
            else:
                self._launch(key)

    def _launch(self, key: Key) -> None:
        if self._group is None:
            return
        task = self._group.create_task(self._device(*key))
        self._running[key] = task
        task.add_done_callback(functools.partial(self._forget, key))

    async def cancel(self, session_id: str, mac: Mac) -> None:
        """Abandon one device's work (rolled back) and wait until it has stopped."""
        await self._abandon([(session_id, mac)])

    async def stop_session(self, session_id: str) -> None:
        """Abandon all work of a closing session."""
        await self._abandon([key for key in self._running if key[0] == session_id])

    async def _abandon(self, keys: list[Key]) -> None:
        tasks = []
        for key in keys:
            self._again.discard(key)
            task = self._running.get(key)
            if task is None:
                continue
            if key not in self._abandoning:  # a second cancel would cut its clean-up short
                self._abandoning.add(key)
                task.cancel()
            tasks.append(task)
        if tasks:
            await asyncio.wait(tasks)

    async def join(self) -> None:
        """Wait until no device work is queued or running."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    def _forget(self, key: Key, done: asyncio.Task[None]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        self._abandoning.discard(key)
        if key in self._again and not done.cancelled():
            self._again.discard(key)
            self._launch(key)

    # -- one device ----------------------------------------------------------------------

    async def _device(self, session_id: str, mac: Mac) -> None:
        session_id_var.set(session_id)
        mac_var.set(mac)
        host = self._host
        if host is None:
            raise RuntimeError("ProvisioningEngine.attach was never called")
        try:
            async with self._slot():
                order = await host.order(session_id, mac)
                if order is None:
                    log.info("not working on %s now (paused, closed or settled)", mac)
                    return
                await self._work(host, order)
        except asyncio.CancelledError:
            # Shutting down is not giving up: attempts stay as persisted for the next run.
            # Abandoned (skipped, session stopped, the device reported its failure): the
            # attempt ends here, wherever the cancellation landed, and is rolled back.
            if (session_id, mac) not in self._abandoning:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await self._clean_up_abandoned(session_id, mac)
            log.info("work on %s abandoned", mac)
        except Exception as exc:  # a bug must fail one device, not the batch
            log.exception("provisioning %s failed unexpectedly", mac)
            with contextlib.suppress(Exception):
                failure = Failure(
                    reason="internal_error",
                    message=f"the orchestrator failed unexpectedly: {type(exc).__name__}",
                    code=ErrorCode.INTERNAL_ERROR,
                )
                await host.record(session_id, mac, CandidateEvent.FAIL, failure)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        async with self._wave:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                yield
            finally:
                self.in_flight -= 1

    async def _work(self, host: ProgressSink, order: WorkOrder) -> None:
        latest = await self._attempts.latest(order.session_id, order.mac)
        plan = resume_plan(order.state, latest)
        if latest is None or plan is Resume.START:
            started = await self._start(host, order, latest.number if latest else 0)
        else:
            log.info("resuming %s: attempt %d is %s", order.mac, latest.number, latest.phase)
            match plan:
                case Resume.VERIFIED:
                    await self._catch_up(host, order, order.state, CandidateState.VERIFIED)
                    return
                case Resume.RECHECK:
                    started = await self._recheck(host, order, latest)
                case _:
                    started = latest, order.state
        if started is not None:
            attempt, state = started
            await self._confirm(host, order, state, attempt)

    async def _start(
        self, host: ProgressSink, order: WorkOrder, previous: int
    ) -> tuple[Attempt, CandidateState] | None:
        """Detect, pre-check and provision a new attempt: the delivered attempt and the
        candidate's state after it, or None when it failed (and was reported)."""
        target = Target(ssid=order.target_ssid, password=order.target_password, cloud=order.cloud)
        try:
            async with asyncio.timeout(order.config.provisioning_timeout_seconds):
                async with self._stage(Stage.DETECT, order.session_id, order.mac):
                    info = await self._read_info(order)
                    strategy = self._registry.choose(info)
                async with self._stage(Stage.PRE_CHECK, order.session_id, order.mac):
                    strategy.pre_check(info, target)
        except TimeoutError:
            await self._fail(host, order, _provisioning_timeout(order), None)
            return None
        except StepError as error:
            await self._fail(host, order, error, None)
            return None
        return await self._provision(
            host, order, strategy=strategy, info=info, target=target, number=previous + 1
        )

    async def _provision(
        self,
        host: ProgressSink,
        order: WorkOrder,
        *,
        strategy: ProvisioningStrategy,
        info: DeviceInfo,
        target: Target,
        number: int,
    ) -> tuple[Attempt, CandidateState] | None:
        now = self._clock()
        username = self._broker.username(order.mac)
        prefix = self._broker.topic_prefix(order.mac)
        issued = Issued(
            mac=order.mac,
            nonce=self._new_secret(),
            account=DeviceAccount(
                username=username,
                password=self._new_secret(),
                client_id=username,
                status_topic=status_topic(prefix),
            ),
            broker_url=self._broker.device_url,
            topic_prefix=prefix,
            container_id=order.container_id,
        )
        attempt = Attempt(
            session_id=order.session_id,
            mac=order.mac,
            number=number,
            nonce=issued.nonce,
            phase=AttemptPhase.PREPARED,
            strategy=strategy.name,
            device_name=strategy.device_name(info),
            username=username,
            status_topic=issued.account.status_topic,
            created_at=now,
            updated_at=now,
        )
        await self._attempts.save(attempt)
        current = attempt

        async def carry(request: Request) -> object:
            nonlocal current
            if not isinstance(request, Deliver):
                return await self._carry(request, order.ip)
            current = await self._advance(current, AttemptPhase.DELIVERING)
            return await self._policy.run(
                order.mac,
                request,
                lambda r: self._carry(r, order.ip),
                settle=lambda: self._settle_delivery(order, issued.nonce),
            )

        try:
            async with asyncio.timeout(order.config.provisioning_timeout_seconds):
                async with self._stage(Stage.PROVISION, order.session_id, order.mac):
                    flow = strategy.provision(info, target, issued, attempt.device_name)
                    await self._drive(flow, carry)
        except (StepError, TimeoutError) as exc:
            error = exc if isinstance(exc, StepError) else _provisioning_timeout(order)
            await self._fail(host, order, error, current, strategy)
            return None
        delivered = await self._advance(current, AttemptPhase.DELIVERED)
        state = await self._catch_up(host, order, order.state, CandidateState.PROVISIONED)
        return delivered, state

    async def _recheck(
        self, host: ProgressSink, order: WorkOrder, attempt: Attempt
    ) -> tuple[Attempt, CandidateState] | None:
        """A delivery may or may not have reached the device: ask it. Holding credentials
        (or gone to use them) means delivered; waiting for credentials means it never got
        them, so this attempt ends and a new one starts. Nothing is re-sent for it."""
        try:
            async with self._stage(Stage.DETECT, order.session_id, order.mac):
                info = await self._read_info(order)
        except StepError:
            info = None
        if info is not None and info.state is DeviceState.FAILED and info.last_failure:
            # It may have failed with this very attempt; starting another would hide that.
            # (It may also be an earlier attempt's report: the operator's retry sorts that out.)
            error = reported(info.last_failure)
            await self._fail(host, order, error, attempt, None)
            return None
        if info is None or info.state is DeviceState.PROVISIONED:
            log.info("attempt %d of %s counts as delivered", attempt.number, order.mac)
            if attempt.phase is not AttemptPhase.DELIVERED:
                if attempt.phase is AttemptPhase.PREPARED:
                    attempt = await self._advance(attempt, AttemptPhase.DELIVERING)
                attempt = await self._advance(attempt, AttemptPhase.DELIVERED)
            state = await self._catch_up(host, order, order.state, CandidateState.PROVISIONED)
            return attempt, state
        log.info("attempt %d never reached %s; starting a new one", attempt.number, order.mac)
        await self._advance(attempt, AttemptPhase.FAILED, failure_reason="not_delivered")
        await self._rollback(attempt, None)
        return await self._start(host, order, attempt.number)

    async def _confirm(
        self, host: ProgressSink, order: WorkOrder, state: CandidateState, attempt: Attempt
    ) -> None:
        strategy = self._strategy_named(attempt.strategy)
        await self._catch_up(host, order, state, CandidateState.VERIFYING)
        window = float(order.config.verification_timeout_seconds)
        if attempt.delivered_at is not None:
            elapsed = (self._clock() - attempt.delivered_at).total_seconds()
            window = max(window - elapsed, min(window, self._settings.resume_grace_s))
        try:
            async with self._stage(Stage.CONFIRM, order.session_id, order.mac):
                try:
                    async with asyncio.timeout(window):
                        online = await self._drive(
                            strategy.confirm(attempt), self._confirm_carrier(order)
                        )
                except TimeoutError as exc:
                    raise StepError(
                        ErrorCode.VERIFICATION_TIMEOUT,
                        "verification_timeout",
                        f"no online status with this attempt's nonce within "
                        f"{order.config.verification_timeout_seconds} s; if the device could "
                        "not join, it reports why when it is back on the onboarding network",
                        retryable=False,
                    ) from exc
        except StepError as error:
            await self._fail(host, order, error, attempt, strategy)
            return
        await self._advance(attempt, AttemptPhase.VERIFIED)
        await host.record(
            order.session_id, order.mac, CandidateEvent.VERIFIED, cloud=_registration(online)
        )

    def _confirm_carrier(self, order: WorkOrder) -> Callable[[Request], Awaitable[object]]:
        async def carry(request: Request) -> object:
            # The wait for the proof is bounded by the verification window, not the
            # per-request timeout, and is never retried.
            return await self._carry(request, order.ip)

        return carry

    # -- failure, rollback, cancellation -------------------------------------------------

    async def _fail(
        self,
        host: ProgressSink,
        order: WorkOrder,
        error: StepError,
        attempt: Attempt | None,
        strategy: ProvisioningStrategy | None = None,
    ) -> None:
        log.info("%s failed: %s", order.mac, error.message)
        if attempt is not None:
            failed = await self._advance(attempt, AttemptPhase.FAILED, failure_reason=error.reason)
            await self._rollback(failed, strategy)
        await host.record(order.session_id, order.mac, CandidateEvent.FAIL, error.failure)

    async def _clean_up_abandoned(self, session_id: str, mac: Mac) -> None:
        """End an abandoned device's open attempt and revoke its account, within the
        cleanup budget (a broker that does not answer must not hold a session's stop up)."""
        try:
            async with asyncio.timeout(self._settings.cleanup_timeout_s):
                attempt = await self._attempts.latest(session_id, mac)
                if attempt is None or attempt.is_finished:
                    return
                failed = await self._advance(
                    attempt, AttemptPhase.FAILED, failure_reason="abandoned"
                )
                await self._rollback(failed, None)
        except Exception:  # best effort: the next attempt replaces the account anyway
            log.warning("clean-up of abandoned %s incomplete", mac, exc_info=True)

    async def _rollback(self, attempt: Attempt, strategy: ProvisioningStrategy | None) -> None:
        mac = attempt.mac
        try:
            async with self._stage(Stage.ROLLBACK, attempt.session_id, mac):
                flow = (strategy or self._strategy_named(attempt.strategy)).rollback(attempt)
                await self._drive(
                    flow, lambda r: self._policy.run(mac, r, lambda q: self._carry(q, None))
                )
        except StepError as error:
            # The account stays until the next attempt replaces it; say so, go on.
            log.warning("rollback of %s incomplete: %s", mac, error.message)

    # -- carrying requests ---------------------------------------------------------------

    async def _drive(self, flow: Flow[R], carry: Callable[[Request], Awaitable[object]]) -> R:
        """Run a strategy stage: send it each reply until it returns."""
        reply: object = None
        try:
            while True:
                request = flow.send(reply)
                reply = await carry(request)
        except StopIteration as done:
            result: R = done.value
            return result
        finally:
            flow.close()

    async def _carry(self, request: Request, ip: str | None) -> object:
        """One request to its adapter (device requests to `ip`), with library errors
        translated to StepError."""
        try:
            match request:
                case ReadInfo() if ip is not None:
                    return await self._transport.info(ip)
                case Deliver(credentials=credentials, scheme=scheme) if ip is not None:
                    return await self._transport.deliver(ip, credentials, scheme)
                case GrantAccount(account=account):
                    await self._accounts.grant(account)
                    return None
                case RevokeAccount(username=username):
                    await self._accounts.revoke(username)
                    return None
                case AwaitOnline(status_topic=topic, mac=mac, nonce=nonce):
                    return await self._proofs.wait_online(topic, mac, nonce)
        except DeviceTimeoutError as exc:
            raise StepError(
                ErrorCode.DEVICE_TIMEOUT, "device_timeout", str(exc), retryable=True, ambiguous=True
            ) from exc
        except DeviceRejectedError as exc:
            raise StepError(
                ErrorCode.DEVICE_REJECTED, "device_rejected", str(exc), retryable=False
            ) from exc
        except DeviceUnreachableError as exc:
            raise StepError(
                ErrorCode.DEVICE_UNREACHABLE, "device_unreachable", str(exc), retryable=True
            ) from exc
        except BrokerUnavailableError as exc:
            raise StepError(
                ErrorCode.MQTT_UNAVAILABLE, "broker_unavailable", str(exc), retryable=True
            ) from exc
        raise TypeError(f"no adapter carries {type(request).__name__}")

    async def _read_info(self, order: WorkOrder) -> DeviceInfo:
        reply = await self._policy.run(order.mac, ReadInfo(), lambda r: self._carry(r, order.ip))
        if not isinstance(reply, DeviceInfo):
            raise TypeError(f"ReadInfo was answered with {type(reply).__name__}")
        return reply

    async def _settle_delivery(self, order: WorkOrder, nonce: str) -> DeliveryReceipt | None:
        """Before a delivery is sent again, ask the device. One that holds credentials got
        this delivery (it takes none while it has some); one back with a failure got it and
        failed (StepError with its reason). Either way nothing is sent twice."""
        try:
            info = await self._transport.info(order.ip)
        except DeviceUnreachableError:
            return None
        if info.state is DeviceState.PROVISIONED:
            return DeliveryReceipt(protocol_version=PROTOCOL_VERSION, nonce=nonce, state=info.state)
        if info.state is DeviceState.FAILED and info.last_failure is not None:
            raise reported(info.last_failure)
        return None

    def _strategy_named(self, name: str) -> ProvisioningStrategy:
        return self._registry.named(name)

    # -- bookkeeping -------------------------------------------------------------------------

    async def _advance(
        self, attempt: Attempt, phase: AttemptPhase, *, failure_reason: str | None = None
    ) -> Attempt:
        moved = advance_attempt(attempt, phase, self._clock(), failure_reason=failure_reason)
        await self._attempts.save(moved)
        return moved

    async def _catch_up(
        self, host: ProgressSink, order: WorkOrder, current: CandidateState, target: CandidateState
    ) -> CandidateState:
        """Report the events that bring the candidate to `target`; its state afterwards."""
        events = catch_up(current, target)
        for event in events:
            await host.record(order.session_id, order.mac, event)
        return target if events else current

    @contextlib.asynccontextmanager
    async def _stage(self, stage: Stage, session_id: str, mac: Mac) -> AsyncIterator[None]:
        """Time a stage; audit it and report it to the observer with its outcome."""
        started = self._monotonic()
        outcome = "ok"
        try:
            yield
        except StepError as error:
            outcome = error.reason
            raise
        except TimeoutError:
            outcome = "timeout"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            duration = self._monotonic() - started
            self._observer.stage_finished(stage, outcome, duration)
            with contextlib.suppress(Exception):
                await self._auditor.record(
                    f"provisioning.{stage}",
                    Outcome.OK if outcome == "ok" else Outcome.FAILED,
                    session_id=session_id,
                    mac=mac,
                    actor=SYSTEM_ACTOR,
                    detail=f"{outcome} in {duration * 1000:.0f} ms",
                )


def _registration(online: Online) -> CloudRegistration | None:
    """What the device's online status says about its cloud registration."""
    report = online.cloud
    if report is None:
        return None
    return CloudRegistration(
        registered=report.registered, device_name=report.device_name, message=report.error
    )


def _provisioning_timeout(order: WorkOrder) -> StepError:
    return StepError(
        ErrorCode.DEVICE_TIMEOUT,
        "provisioning_timeout",
        f"the device was not provisioned within {order.config.provisioning_timeout_seconds} s",
        retryable=False,
    )
