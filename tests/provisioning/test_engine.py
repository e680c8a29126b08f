"""The engine against faithful fakes: strategies, waves, the policy, verification by nonce,
rollback, and resuming from every persisted phase."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from orchestrator.batch.audit import Auditor
from orchestrator.broker.memory import MemoryAccounts, MemoryProofs
from orchestrator.domain.attempt import Attempt, AttemptPhase
from orchestrator.domain.candidate import CandidateEvent, CandidateState, CloudRegistration
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.mac import Mac
from orchestrator.domain.session import SessionConfig
from orchestrator.ports.storage import AuditQuery
from orchestrator.protocol.messages import CloudProvisioning, DeviceState
from orchestrator.protocol.status import Online, encode_status
from orchestrator.provisioning.engine import BrokerPlan, EngineSettings, ProvisioningEngine
from orchestrator.provisioning.policy import PolicySettings
from orchestrator.storage.memory import MemoryStore
from tests.fakes import T0
from tests.provisioning.fakes import Behaviour, FakeDevice, FakeHost, FakeTransport
from tests.storage.samples import make_candidate, make_session

TOPIC_BASE = "delicasa/devices"


@dataclass
class Stages:
    """StageObserver recording every stage."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    def stage_finished(self, stage: str, outcome: str, duration_s: float) -> None:
        assert duration_s >= 0
        self.seen.append((stage, outcome))


@dataclass
class World:
    store: MemoryStore
    host: FakeHost
    transport: FakeTransport
    accounts: MemoryAccounts
    proofs: MemoryProofs
    engine: ProvisioningEngine
    stages: Stages
    pauses: list[float]
    clock: list[float]

    async def device(
        self, n: int, behaviour: Behaviour = Behaviour.GOOD, *, family: str = "esp32-cam"
    ) -> FakeDevice:
        candidate = make_candidate(n=n, state=CandidateState.PROVISIONING)
        await self.store.candidates.save(candidate)
        self.host.add(candidate.mac, candidate.ip)
        return self.transport.add(
            FakeDevice(mac=candidate.mac, ip=candidate.ip, family=family, behaviour=behaviour)
        )

    async def run(self, devices: list[FakeDevice], timeout_s: float = 10.0) -> None:
        macs = [d.mac for d in devices]
        await self.engine.submit("sess_1", macs)
        await self.host.settled(macs, timeout_s)


async def make_world(config: SessionConfig | None = None, wave: int = 8) -> World:
    store = MemoryStore()
    await store.sessions.create(make_session(), b"sealed")
    proofs = MemoryProofs(topic_base=TOPIC_BASE)
    accounts = MemoryAccounts()
    transport = FakeTransport(proofs)
    pauses: list[float] = []
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock[0] += seconds
        await asyncio.sleep(0)

    stages = Stages()
    engine = ProvisioningEngine(
        attempts=store.attempts,
        transport=transport,
        accounts=accounts,
        proofs=proofs,
        broker=BrokerPlan(device_url="mqtt://10.42.0.1:1883", topic_base=TOPIC_BASE),
        auditor=Auditor(store.audit, lambda: T0),
        observer=stages,
        settings=EngineSettings(max_concurrent_devices=wave, policy=PolicySettings()),
        clock=lambda: T0,
        monotonic=lambda: clock[0],
        sleep=sleep,
    )
    host = FakeHost(config)
    engine.attach(host)
    return World(store, host, transport, accounts, proofs, engine, stages, pauses, clock)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    built = await make_world()
    async with built.engine:
        yield built


async def test_good_devices_are_verified_with_one_delivery_each(world: World) -> None:
    devices = [await world.device(n) for n in range(1, 6)]
    devices.append(await world.device(6, family="thermal-camera"))
    await world.run(devices)
    for device in devices:
        candidate = world.host.candidates[device.mac]
        assert candidate.state is CandidateState.VERIFIED
        assert len(device.deliveries) == 1
        attempt = await world.store.attempts.latest("sess_1", device.mac)
        assert attempt is not None
        assert attempt.phase is AttemptPhase.VERIFIED
        assert attempt.nonce == device.deliveries[0].nonce
        sent = device.deliveries[0]
        assert sent.mqtt.topic_prefix == f"{TOPIC_BASE}/{device.mac.replace(':', '').lower()}"
        account = world.accounts.accounts[sent.mqtt.username]
        assert account.password == sent.mqtt.password
        assert account.status_topic == f"{sent.mqtt.topic_prefix}/status"
    assert world.host.events.count((devices[0].mac, CandidateEvent.VERIFIED)) == 1
    assert devices[-1].deliveries[0].device_name.startswith("thermal-")
    assert {s for s, _ in world.stages.seen} == {"detect", "pre_check", "provision", "confirm"}
    audit = await world.store.audit.page(AuditQuery(limit=100))
    assert {e.action for e in audit} >= {"provisioning.detect", "provisioning.confirm"}
    assert all(e.detail and " ms" in e.detail for e in audit)


async def test_thermal_cameras_get_the_cloud_section_and_report_back(world: World) -> None:
    world.host.cloud = CloudProvisioning(
        provider="thingsboard", host="tb.local", port=1883,
        provision_device_key="k", provision_device_secret="s",
    )  # fmt: skip
    thermal = await world.device(1, family="thermal-camera")
    esp = await world.device(2)
    await world.run([thermal, esp])
    assert thermal.deliveries[0].cloud == world.host.cloud
    assert esp.deliveries[0].cloud is None
    registered = world.host.candidates[thermal.mac].cloud
    assert registered == CloudRegistration(registered=True, device_name="thermal-camera-ABC123")
    assert world.host.candidates[esp.mac].cloud is None


async def test_nonces_and_passwords_differ_per_device(world: World) -> None:
    devices = [await world.device(n) for n in range(1, 4)]
    await world.run(devices)
    sent = [d.deliveries[0] for d in devices]
    assert len({c.nonce for c in sent}) == 3
    assert len({c.mqtt.password for c in sent}) == 3


async def test_waves_never_exceed_the_limit() -> None:
    built = await make_world(wave=3)
    gate = asyncio.Event()
    built.transport.gate = gate
    async with built.engine:
        devices = [await built.device(n) for n in range(1, 11)]
        await built.engine.submit("sess_1", [d.mac for d in devices])
        async with asyncio.timeout(5), built.transport.arrived:
            await built.transport.arrived.wait_for(lambda: built.transport.waiting == 3)
        assert built.engine.in_flight == 3
        gate.set()
        await built.host.settled([d.mac for d in devices])
    assert built.engine.peak_in_flight == 3
    assert all(built.host.candidates[d.mac].state is CandidateState.VERIFIED for d in devices)


async def test_an_unknown_family_fails_before_anything_is_sent(world: World) -> None:
    device = await world.device(1, family="toaster")
    await world.run([device])
    candidate = world.host.candidates[device.mac]
    assert candidate.state is CandidateState.FAILED
    assert candidate.failure is not None
    assert candidate.failure.code is ErrorCode.VALIDATION_FAILED
    assert candidate.failure.reason == "unsupported_device"
    assert "toaster" in candidate.failure.message
    assert "esp32-cam" in candidate.failure.message
    assert device.deliveries == []
    assert world.accounts.grants == []


async def test_a_rejected_delivery_is_not_retried_and_is_rolled_back(world: World) -> None:
    device = await world.device(1, Behaviour.REJECTS)
    await world.run([device])
    candidate = world.host.candidates[device.mac]
    assert candidate.failure is not None
    assert candidate.failure.code is ErrorCode.DEVICE_REJECTED
    assert world.pauses == []
    assert [a.username for a in world.accounts.grants] == world.accounts.revokes
    assert world.accounts.accounts == {}
    attempt = await world.store.attempts.latest("sess_1", device.mac)
    assert attempt is not None
    assert attempt.phase is AttemptPhase.FAILED
    assert attempt.failure_reason == "device_rejected"


async def test_an_unreachable_device_is_tried_again_after_1_2_and_4_s(world: World) -> None:
    device = await world.device(1, Behaviour.SILENT)
    await world.run([device])
    candidate = world.host.candidates[device.mac]
    assert candidate.failure is not None
    assert candidate.failure.code is ErrorCode.DEVICE_UNREACHABLE
    assert world.pauses == [1.0, 2.0, 4.0]


async def test_a_flaky_device_succeeds_on_a_retry(world: World) -> None:
    device = await world.device(1, Behaviour.FLAKY_INFO)
    await world.run([device])
    assert world.host.candidates[device.mac].state is CandidateState.VERIFIED
    assert world.pauses == [1.0, 2.0]


async def test_the_circuit_opens_after_five_failures_in_a_row(world: World) -> None:
    device = await world.device(1, Behaviour.SILENT)
    await world.run([device])
    world.host.retry(device.mac)
    world.pauses.clear()
    await world.run([device])
    candidate = world.host.candidates[device.mac]
    assert candidate.failure is not None
    assert candidate.failure.code is ErrorCode.CIRCUIT_OPEN
    assert world.pauses == [1.0]  # the fifth failure opened it; the next try was refused
    # After the cool-down the device is tried again.
    world.clock[0] += 31
    world.transport.devices[device.ip].behaviour = Behaviour.GOOD
    world.host.retry(device.mac)
    await world.run([device])
    assert world.host.candidates[device.mac].state is CandidateState.VERIFIED


async def test_a_lost_delivery_answer_is_settled_by_asking_not_by_resending(world: World) -> None:
    device = await world.device(1, Behaviour.LOSES_ANSWER)
    await world.run([device])
    assert world.host.candidates[device.mac].state is CandidateState.VERIFIED
    assert len(device.deliveries) == 1


async def test_no_proof_in_time_fails_with_verification_timeout() -> None:
    built = await make_world(SessionConfig(verification_timeout_seconds=1))
    async with built.engine:
        device = await built.device(1, Behaviour.NEVER_ONLINE)
        await built.run([device])
    candidate = built.host.candidates[device.mac]
    assert candidate.failure is not None
    assert candidate.failure.code is ErrorCode.VERIFICATION_TIMEOUT
    assert built.accounts.accounts == {}  # rolled back


async def test_a_stale_retained_online_verifies_nothing() -> None:
    built = await make_world(SessionConfig(verification_timeout_seconds=1))
    async with built.engine:
        device = await built.device(1, Behaviour.NEVER_ONLINE)
        stale = Online(
            nonce="an-older-attempts-nonce",
            mac=device.mac,
            ip="10.42.0.9",
            firmware_version="1.4.2",
            device_name="old",
        )
        topic = f"{TOPIC_BASE}/{device.mac.replace(':', '').lower()}/status"
        built.proofs.publish(topic, encode_status(stale), retain=True)
        await built.run([device])
    assert built.host.candidates[device.mac].state is CandidateState.FAILED


async def test_a_paused_session_starts_nothing(world: World) -> None:
    device = await world.device(1)
    world.host.paused = True
    await world.engine.submit("sess_1", [device.mac])
    await world.engine.stop_session("other")
    async with asyncio.timeout(5):
        await world.engine.join()
    assert device.deliveries == []
    assert world.host.candidates[device.mac].state is CandidateState.PROVISIONING


# --- abandoning and shutting down ------------------------------------------------------------


async def _delivered(world: World, device: FakeDevice) -> Attempt:
    """Wait until the device's delivery is on record (the candidate says so after it)."""
    in_confirm = (CandidateState.PROVISIONED, CandidateState.VERIFYING)
    async with asyncio.timeout(5), world.host.changed:
        await world.host.changed.wait_for(
            lambda: world.host.candidates[device.mac].state is CandidateState.VERIFYING
        )
    assert world.host.candidates[device.mac].state in in_confirm
    attempt = await world.store.attempts.latest("sess_1", device.mac)
    assert attempt is not None
    assert attempt.phase is AttemptPhase.DELIVERED
    return attempt


async def test_skipping_a_device_rolls_its_attempt_back(world: World) -> None:
    device = await world.device(1, Behaviour.NEVER_ONLINE)
    await world.engine.submit("sess_1", [device.mac])
    await _delivered(world, device)
    await world.engine.cancel("sess_1", device.mac)
    attempt = await world.store.attempts.latest("sess_1", device.mac)
    assert attempt is not None
    assert attempt.phase is AttemptPhase.FAILED
    assert attempt.failure_reason == "abandoned"
    assert world.accounts.accounts == {}
    assert (device.mac, CandidateEvent.FAIL) not in world.host.events


async def test_a_device_abandoned_between_stages_is_rolled_back_too(world: World) -> None:
    device = await world.device(1, Behaviour.NEVER_ONLINE)
    world.host.hold = (CandidateEvent.DELIVERED, asyncio.Event())
    await world.engine.submit("sess_1", [device.mac])
    async with asyncio.timeout(5):
        await world.host.held.wait()
    await world.engine.cancel("sess_1", device.mac)
    attempt = await world.store.attempts.latest("sess_1", device.mac)
    assert attempt is not None
    assert (attempt.phase, attempt.failure_reason) == (AttemptPhase.FAILED, "abandoned")
    assert world.accounts.accounts == {}


async def test_a_second_stop_does_not_cut_a_rollback_short(world: World) -> None:
    device = await world.device(1, Behaviour.NEVER_ONLINE)
    await world.engine.submit("sess_1", [device.mac])
    await _delivered(world, device)
    revoking = asyncio.Event()
    release = asyncio.Event()
    revoke = world.accounts.revoke

    async def slow_revoke(username: str) -> None:
        revoking.set()
        await release.wait()
        await revoke(username)

    world.accounts.revoke = slow_revoke  # type: ignore[method-assign]
    skip = asyncio.create_task(world.engine.cancel("sess_1", device.mac))
    async with asyncio.timeout(5):
        await revoking.wait()
    stop = asyncio.create_task(world.engine.stop_session("sess_1"))
    await asyncio.sleep(0)
    release.set()
    async with asyncio.timeout(5):
        await asyncio.gather(skip, stop)
    assert world.accounts.accounts == {}


async def test_shutting_down_leaves_attempts_as_they_are() -> None:
    built = await make_world()
    async with built.engine:
        device = await built.device(1, Behaviour.NEVER_ONLINE)
        await built.engine.submit("sess_1", [device.mac])
        await _delivered(built, device)
    attempt = await built.store.attempts.latest("sess_1", device.mac)
    assert attempt is not None
    assert attempt.phase is AttemptPhase.DELIVERED
    assert len(built.accounts.accounts) == 1


# --- resuming ------------------------------------------------------------------------------------


async def _crashed_attempt(
    world: World, device: FakeDevice, phase: AttemptPhase, state: CandidateState
) -> Attempt:
    """What a run killed mid-attempt leaves in the store."""
    token = device.mac.replace(":", "").lower()
    attempt = Attempt(
        session_id="sess_1",
        mac=device.mac,
        number=1,
        nonce=f"nonce-of-the-crashed-run-{token}",
        phase=phase,
        strategy="esp32-cam",
        device_name=f"esp32cam-{token[-6:]}",
        username=f"dev-{token}",
        status_topic=f"{TOPIC_BASE}/{token}/status",
        created_at=T0,
        updated_at=T0,
        delivered_at=T0 if phase is AttemptPhase.DELIVERED else None,
    )
    await world.store.attempts.save(attempt)
    world.host.add(device.mac, device.ip, state)
    return attempt


def _online(world: World, attempt: Attempt) -> None:
    message = Online(
        nonce=attempt.nonce, mac=attempt.mac, ip="10.42.0.9", firmware_version="1", device_name="d"
    )
    world.proofs.publish(attempt.status_topic, encode_status(message), retain=True)


@pytest.mark.parametrize(
    ("phase", "state"),
    [
        (AttemptPhase.DELIVERING, CandidateState.PROVISIONING),
        (AttemptPhase.DELIVERED, CandidateState.PROVISIONING),
        (AttemptPhase.DELIVERED, CandidateState.PROVISIONED),
        (AttemptPhase.DELIVERED, CandidateState.VERIFYING),
    ],
)
async def test_a_device_that_has_its_credentials_is_verified_not_reprovisioned(
    world: World, phase: AttemptPhase, state: CandidateState
) -> None:
    device = await world.device(1)
    device.state = DeviceState.PROVISIONED
    attempt = await _crashed_attempt(world, device, phase, state)
    _online(world, attempt)
    await world.run([device])
    assert world.host.candidates[device.mac].state is CandidateState.VERIFIED
    assert device.deliveries == []
    latest = await world.store.attempts.latest("sess_1", device.mac)
    assert latest is not None
    assert (latest.number, latest.phase) == (1, AttemptPhase.VERIFIED)


async def test_a_delivery_that_never_arrived_starts_a_new_attempt(world: World) -> None:
    device = await world.device(1)  # says unprovisioned: it never got attempt 1
    crashed = await _crashed_attempt(
        world, device, AttemptPhase.DELIVERING, CandidateState.PROVISIONING
    )
    await world.run([device])
    assert world.host.candidates[device.mac].state is CandidateState.VERIFIED
    assert len(device.deliveries) == 1
    assert device.deliveries[0].nonce != crashed.nonce
    latest = await world.store.attempts.latest("sess_1", device.mac)
    assert latest is not None
    assert latest.number == 2


async def test_a_device_gone_mid_delivery_counts_as_delivered(world: World) -> None:
    device = await world.device(1, Behaviour.SILENT)  # left to join the target network
    attempt = await _crashed_attempt(
        world, device, AttemptPhase.DELIVERING, CandidateState.PROVISIONING
    )
    _online(world, attempt)
    await world.run([device])
    assert world.host.candidates[device.mac].state is CandidateState.VERIFIED


async def test_a_recorded_proof_only_catches_the_candidate_up(world: World) -> None:
    device = await world.device(1)
    await _crashed_attempt(world, device, AttemptPhase.DELIVERED, CandidateState.VERIFYING)
    latest = await world.store.attempts.latest("sess_1", device.mac)
    assert latest is not None
    from orchestrator.domain.attempt import advance_attempt

    await world.store.attempts.save(advance_attempt(latest, AttemptPhase.VERIFIED, T0))
    await world.run([device])
    assert world.host.candidates[device.mac].state is CandidateState.VERIFIED
    assert device.info_calls == 0


def _unused(mac: Mac) -> None:
    del mac
