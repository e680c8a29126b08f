"""The whole appliance provisioning a batch of 20 simulated devices with mixed fault profiles
on the namespace tier, composed from configuration as `orchestrator serve` composes it (bridge
backend, every discovery source, the device HTTP client, the broker link to a Mosquitto under
dynamic security), running in the Pi's namespace.

Every device ends in the state its fault predicts, with the expected reason; never more than
`max_concurrent_devices` are in flight; a stale retained online verifies nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.batch.allowlist import AllowlistDraft
from orchestrator.broker.settings import BrokerSettings, device_username
from orchestrator.device.faults import JOIN_FAULTS, FaultProfile
from orchestrator.discovery.leases import write_hook
from orchestrator.domain.audit import AuditEntry, Outcome
from orchestrator.domain.candidate import Candidate, CandidateState
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.domain.session import SessionConfig
from orchestrator.ports.storage import AuditQuery
from orchestrator.protocol.status import Online, StatusMessage
from orchestrator.provisioning.engine import EngineSettings, ProvisioningEngine
from orchestrator.service import Appliance, run_appliance
from orchestrator.settings import Settings
from orchestrator.sim.fleet import FleetSpec, unique_service_type
from orchestrator.sim.netns_fleet import NetnsFleet
from orchestrator.sim.setns import run_loop_in_namespace
from tests.discovery.test_discovery_netns import settings_for as discovery_settings
from tests.provisioning.netns import (
    WAIT_S,
    Progress,
    broker_accounts,
    can_connect,
    leave_retained_online,
    retained_status,
)
from tests.sim.conftest import make_netns_fleet
from tests.sim.test_fleet import FAST

__all__ = ["make_netns_fleet"]  # the fixture, imported for its use here

pytestmark = pytest.mark.netns
DEVICES = 20
WAVE = 4
VERIFICATION_S = 8
P = FaultProfile
FAULTS = {
    1: P.WRONG_PASSWORD,
    3: P.NETWORK_NOT_FOUND,
    5: P.REJECTS_CREDENTIALS,
    7: P.NEVER_ONLINE,
    9: P.STALE_RETAINED,
    11: P.LATE,
    13: P.FLAPS,
    15: P.NEVER_ONLINE,
}
PROFILES = [FAULTS.get(index, P.NONE) for index in range(DEVICES)]
STALE_VICTIM = 15
"""Never comes online, but an earlier attempt's online (another nonce) is retained on its
status topic before the batch starts."""
STALE_NONCE = "nonce-of-an-earlier-attempt"


class Verdict(msgspec.Struct, frozen=True):
    """Where a fault leads: the state, and for a failure its reason and contract code (a
    failure the device reports itself carries no code of ours: None is not checked)."""

    state: CandidateState
    reason: str | None = None
    code: ErrorCode | None = None

    def of(self, candidate: Candidate) -> Verdict:
        """What `candidate` shows, in the terms this verdict checks."""
        failure = candidate.failure
        return Verdict(
            candidate.state,
            failure.reason if failure else None,
            failure.code if failure and self.code is not None else None,
        )


VERIFIED = Verdict(CandidateState.VERIFIED)
VERDICTS = {
    P.NONE: VERIFIED,
    P.STALE_RETAINED: VERIFIED,
    P.LATE: VERIFIED,
    P.FLAPS: VERIFIED,
    P.WRONG_PASSWORD: Verdict(CandidateState.FAILED, "auth_error"),
    P.NETWORK_NOT_FOUND: Verdict(CandidateState.FAILED, "network_not_found"),
    P.REJECTS_CREDENTIALS: Verdict(
        CandidateState.FAILED, "device_rejected", ErrorCode.DEVICE_REJECTED
    ),
    P.NEVER_ONLINE: Verdict(
        CandidateState.FAILED, "verification_timeout", ErrorCode.VERIFICATION_TIMEOUT
    ),
}
VERIFIED_COUNT = sum(VERDICTS[p] is VERIFIED for p in PROFILES)
REPORTED_REASONS = frozenset(str(reason) for reason in JOIN_FAULTS.values())
"""Failures a device reports itself when it is back on the onboarding network."""


@pytest.fixture
def admin() -> tuple[str, str]:
    """The broker's dynamic security admin, which the orchestrator logs in as."""
    return "orchestrator", secrets.token_urlsafe(12)


@pytest.fixture
async def fleet(
    make_netns_fleet: Callable[..., AbstractAsyncContextManager[NetnsFleet]],
    tmp_path: Path,
    admin: tuple[str, str],
) -> AsyncIterator[NetnsFleet]:
    hook = write_hook(tmp_path / "dhcp-hook.sh", tmp_path / "dhcp-events")
    build = make_netns_fleet(
        FleetSpec(devices=DEVICES, seed=23),
        service_type=unique_service_type(),
        timing=FAST,
        profiles=PROFILES,
        dhcp_script=hook,
        broker_admin=admin,
    )
    async with build as fleet:
        yield fleet


def settings_for(fleet: NetnsFleet, data_dir: Path, admin: tuple[str, str]) -> Settings:
    """What an operator would write in the appliance's TOML for this bed: discovery as on
    the discovery tier, waves of four, and the bed's broker."""
    username, password = admin
    return msgspec.structs.replace(
        discovery_settings(fleet, data_dir),
        engine=EngineSettings(max_concurrent_devices=WAVE),
        broker=BrokerSettings(url=fleet.bed.broker.url, username=username, password=password),
    )


def verdicts_of(fleet: NetnsFleet) -> dict[Mac, Verdict]:
    """Where each device of the fleet should end, by MAC, in the fleet's order."""
    return {parse_mac(device.host.mac): VERDICTS[device.fault] for device in fleet.devices}


@dataclass
class Observed:
    """What the batch left behind, as the appliance and the broker tell it."""

    candidates: dict[Mac, Candidate]
    peak_holding: int
    peak_in_flight: int
    used: dict[Mac, bool]
    audit: dict[Mac, list[AuditEntry]]
    stages: Counter[tuple[str, str]]
    stale_before: StatusMessage | None
    stale_after: StatusMessage | None
    stale_password_works: bool
    accounts: set[str]
    borrowed_password_works: bool


async def settle(
    progress: Progress, appliance: Appliance, session_id: str, verdicts: dict[Mac, Verdict]
) -> dict[Mac, Candidate]:
    """The session's candidates once every device is verified or failed and each device
    that reports its own failure has done so (its report may amend a timeout); as they are
    at the deadline otherwise, for the assertions to show the difference."""
    await progress.until(lambda p: p.settled(set(verdicts)), "every device verified or failed")

    async def read() -> dict[Mac, Candidate]:
        return {c.mac: c for c in await appliance.store.candidates.list_for(session_id)}

    reported = {mac for mac, verdict in verdicts.items() if verdict.reason in REPORTED_REASONS}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT_S):
            while True:
                candidates = await read()
                if all(verdicts[mac].of(candidates[mac]) == verdicts[mac] for mac in reported):
                    break
                await progress.step()
    return await read()


def stage_counts(appliance: Appliance) -> Counter[tuple[str, str]]:
    """`orchestrator_stage_total` as a scrape reads it, by (stage, outcome)."""
    assert appliance.services.metrics is not None
    body, _ = appliance.services.metrics.render()
    return Counter(
        {
            (sample.labels["stage"], sample.labels["outcome"]): int(sample.value)
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples
            if sample.name == "orchestrator_stage_total"
        }
    )


async def provision_batch(fleet: NetnsFleet, data_dir: Path, admin: tuple[str, str]) -> Observed:
    """In the Pi's namespace: leave a stale online behind, allowlist the fleet, open a
    session, provision every device once all are discovered, and collect what followed."""
    settings = settings_for(fleet, data_dir, admin)
    macs = [parse_mac(device.host.mac) for device in fleet.devices]
    verdicts = {
        mac: VERDICTS[device.fault] for mac, device in zip(macs, fleet.devices, strict=True)
    }
    victim = fleet.devices[STALE_VICTIM]
    stale = Online(
        nonce=STALE_NONCE,
        mac=victim.host.mac,
        ip=str(victim.host.target_ip),
        firmware_version="1.4.2",
        device_name="from-an-earlier-attempt",
    )
    stale_password = await leave_retained_online(settings.broker, macs[STALE_VICTIM], stale)
    stale_before = await retained_status(settings.broker, macs[STALE_VICTIM])

    async with run_appliance(settings) as appliance:
        subscription, _ = appliance.bus.subscribe(None)
        try:
            progress = Progress(subscription)
            services = appliance.services
            await services.allowlist.add_many([AllowlistDraft(mac=mac) for mac in macs])
            config = SessionConfig(verification_timeout_seconds=VERIFICATION_S)
            snapshot, _ = await services.batches.start(
                fleet.spec.target_ssid, fleet.spec.target_password, config
            )
            await progress.until(lambda p: p.discovered >= set(macs), "every device discovered")
            started = await services.batches.provision_all(snapshot.id, only_allowlisted=True)
            assert started.initiated_count == DEVICES
            candidates = await settle(progress, appliance, snapshot.id, verdicts)
            # Stopping waits for whatever the engine still does (rolling back an abandoned
            # attempt): what is read afterwards is final.
            await services.batches.stop(snapshot.id)
            used = {mac: (await services.allowlist.get(mac)).used_at is not None for mac in macs}
            audit = {
                mac: await services.auditor.page(AuditQuery(mac=mac, limit=500)) for mac in macs
            }
            stages = stage_counts(appliance)
            engine = appliance.engine
            assert isinstance(engine, ProvisioningEngine)
            peak_in_flight = engine.peak_in_flight
        finally:
            appliance.bus.unsubscribe(subscription)

    verified = [d for d in fleet.devices if VERDICTS[d.fault] is VERIFIED]
    first, second = (d.agent.credentials for d in verified[:2])
    assert first is not None
    assert second is not None
    return Observed(
        candidates=candidates,
        peak_holding=progress.peak_holding,
        peak_in_flight=peak_in_flight,
        used=used,
        audit=audit,
        stages=stages,
        stale_before=stale_before,
        stale_after=await retained_status(settings.broker, macs[STALE_VICTIM]),
        stale_password_works=await can_connect(
            settings.broker, device_username(macs[STALE_VICTIM]), stale_password
        ),
        accounts=await broker_accounts(settings.broker),
        borrowed_password_works=await can_connect(
            settings.broker, first.mqtt.username, second.mqtt.password
        ),
    )


async def test_a_mixed_batch_ends_as_each_fault_predicts_in_waves(
    fleet: NetnsFleet, tmp_path: Path, admin: tuple[str, str]
) -> None:
    main = functools.partial(provision_batch, fleet, tmp_path / "data", admin)
    seen = await run_loop_in_namespace(fleet.bed.pi_namespace, main)
    expected = verdicts_of(fleet)
    macs = list(expected)

    # Every device where its fault leads, for the reason it leads there.
    shown = {mac: expected[mac].of(seen.candidates[mac]) for mac in macs}
    assert shown == expected

    # Never more than a wave in flight at once, and more than one: waves, not a queue.
    assert 2 <= seen.peak_holding <= WAVE
    assert seen.peak_in_flight == WAVE  # 20 devices fill every slot, and never more

    # A verified device used up its allowlist entry; a failed one did not.
    assert seen.used == {mac: expected[mac] is VERIFIED for mac in macs}
    for mac in macs:
        candidate = seen.candidates[mac]
        assert (candidate.verified_at is not None) is (expected[mac] is VERIFIED)

    # The stale online was on the victim's topic all along and verified nothing.
    victim = macs[STALE_VICTIM]
    assert isinstance(seen.stale_before, Online)
    assert seen.stale_before.nonce == STALE_NONCE
    assert seen.stale_after == seen.stale_before
    assert seen.candidates[victim].verified_at is None

    # One broker account per verified device; every failed attempt's account is rolled
    # back, the stale attempt's password opens nothing, and nobody logs in with another's.
    verified = {device_username(mac) for mac in macs if expected[mac] is VERIFIED}
    failed = {device_username(mac) for mac in macs if expected[mac] is not VERIFIED}
    assert verified <= seen.accounts
    assert failed & seen.accounts == set(), "failed attempts whose account was not rolled back"
    credentials = [d.agent.credentials for d in fleet.devices if VERDICTS[d.fault] is VERIFIED]
    assert len({c.mqtt.password for c in credentials if c is not None}) == VERIFIED_COUNT
    assert not seen.stale_password_works
    assert not seen.borrowed_password_works

    # Every stage audited per device, and counted in the metrics.
    faults = {mac: device.fault for mac, device in zip(macs, fleet.devices, strict=True)}
    for mac in macs:
        actions = {(e.action, e.outcome) for e in seen.audit[mac]}
        assert ("provisioning.detect", Outcome.OK) in actions, mac
        if expected[mac] is VERIFIED:
            assert ("provisioning.confirm", Outcome.OK) in actions, mac
        else:
            assert ("provisioning.rollback", Outcome.OK) in actions, (mac, faults[mac])
        if faults[mac] is P.NEVER_ONLINE:
            assert ("provisioning.confirm", Outcome.FAILED) in actions, mac
        if faults[mac] is P.REJECTS_CREDENTIALS:
            assert ("provisioning.provision", Outcome.FAILED) in actions, mac
    assert seen.stages[("detect", "ok")] == DEVICES
    assert seen.stages[("confirm", "ok")] == VERIFIED_COUNT
    assert seen.stages[("confirm", "verification_timeout")] == PROFILES.count(P.NEVER_ONLINE)
    assert seen.stages[("provision", "device_rejected")] == 1
    assert seen.stages[("rollback", "ok")] == DEVICES - VERIFIED_COUNT
