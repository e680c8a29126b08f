"""A batch with a cloud section, end to end on the loopback tier: the appliance (composed
from settings as `orchestrator serve` composes it) provisions a fleet of ESP32 and thermal
cameras; the thermal cameras register with the ThingsBoard stand-in on the target network
and report it in their online status, which their candidates show."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from orchestrator.broker.settings import BrokerSettings
from orchestrator.discovery.settings import DiscoverySettings, NetworkBackend, NetworkSettings
from orchestrator.domain.candidate import Candidate, CandidateState
from orchestrator.domain.discovery import SourceKind
from orchestrator.domain.session import SessionConfig
from orchestrator.protocol.messages import CloudProvisioning
from orchestrator.security.stepup import SecuritySettings
from orchestrator.service import run_appliance
from orchestrator.settings import Settings, StorageSettings
from orchestrator.sim.broker import free_port
from orchestrator.sim.fleet import Fleet, FleetSpec, loopback_fleet
from orchestrator.sim.thingsboard import ProvisionProfile, ThingsBoardSpec, thingsboard_standin
from tests.sim.test_fleet import FAST

KEY, SECRET = "line-a-key", "line-a-secret"
WAIT_S = 30.0


def settings_for(fleet: Fleet, data_dir: Path, admin: tuple[str, str], port: int) -> Settings:
    return Settings(
        storage=StorageSettings(data_dir=str(data_dir)),
        security=SecuritySettings(totp_required_for=frozenset()),
        network=NetworkSettings(backend=NetworkBackend.STANDBY, address="127.0.0.1"),
        discovery=DiscoverySettings(
            sources=frozenset({SourceKind.MDNS}),
            mdns_service_type=fleet.service_type,
            device_port=port,
        ),
        broker=BrokerSettings(url=fleet.broker.url, username=admin[0], password=admin[1]),
    )


async def run_batch(tmp_path: Path, secret: str) -> tuple[list[Candidate], dict[str, object]]:
    admin = ("orchestrator", secrets.token_urlsafe(12))
    port = free_port()
    spec = ThingsBoardSpec(profiles=(ProvisionProfile(key=KEY, secret=SECRET),))
    async with (
        thingsboard_standin(spec) as tb,
        loopback_fleet(
            FleetSpec(devices=4), timing=FAST, broker_admin=admin, device_port=port
        ) as fleet,
        run_appliance(settings_for(fleet, tmp_path / "data", admin, port)) as appliance,
    ):
        batches = appliance.services.batches
        cloud = CloudProvisioning(
            provider="thingsboard", host=tb.host, port=tb.port,
            provision_device_key=KEY, provision_device_secret=secret,
        )  # fmt: skip
        snapshot, _ = await batches.start(
            fleet.spec.target_ssid, fleet.spec.target_password, SessionConfig(), cloud=cloud
        )
        subscription, _ = appliance.bus.subscribe(None)
        try:
            async with asyncio.timeout(WAIT_S):
                while len(await appliance.store.candidates.list_for(snapshot.id)) < 4:
                    await subscription.next(1.0)
                await batches.provision_all(snapshot.id, only_allowlisted=False)
                done = (CandidateState.VERIFIED, CandidateState.FAILED)
                while True:
                    candidates = await appliance.store.candidates.list_for(snapshot.id)
                    if all(c.state in done for c in candidates):
                        break
                    await subscription.next(1.0)
        finally:
            appliance.bus.unsubscribe(subscription)
        families = {d.mac: d.agent.identity.family for d in fleet.devices}
        registered = dict(tb.devices)
    return list(candidates), {"families": families, "devices": registered}


async def test_thermal_cameras_register_and_their_candidates_say_so(tmp_path: Path) -> None:
    candidates, seen = await run_batch(tmp_path, SECRET)
    families = seen["families"]
    assert isinstance(families, dict)
    assert all(c.state is CandidateState.VERIFIED for c in candidates)
    thermal = [c for c in candidates if families[c.mac] == "thermal-camera"]
    esp = [c for c in candidates if families[c.mac] == "esp32-cam"]
    assert thermal
    assert esp
    for candidate in thermal:
        assert candidate.cloud is not None
        assert candidate.cloud.registered
        assert candidate.cloud.device_name in seen["devices"]  # type: ignore[operator]
    assert all(c.cloud is None for c in esp)


async def test_a_wrong_provision_secret_is_reported_not_hidden(tmp_path: Path) -> None:
    candidates, seen = await run_batch(tmp_path, "not-the-secret")
    families = seen["families"]
    assert isinstance(families, dict)
    thermal = [c for c in candidates if families[c.mac] == "thermal-camera"]
    for candidate in thermal:
        assert candidate.state is CandidateState.VERIFIED  # it is online all the same
        assert candidate.cloud is not None
        assert not candidate.cloud.registered
        assert candidate.cloud.message
        assert "not-the-secret" not in candidate.cloud.message
    assert seen["devices"] == {}
