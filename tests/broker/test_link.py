"""What only a real Mosquitto with dynamic security shows: refused strangers, kicked devices,
undisturbed neighbours, the device agent's own link, lost and found connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import aiomqtt
import pytest

from orchestrator.broker.link import BrokerLink
from orchestrator.device.mqtt import status_link
from orchestrator.domain.mac import Mac
from orchestrator.ports.broker import BrokerUnavailableError, DeviceAccount
from orchestrator.protocol.messages import MqttCredentials
from orchestrator.sim.broker import Broker, mosquitto
from orchestrator.sim.fleet import FleetSpec, loopback_fleet
from tests.broker.conftest import (
    ADMIN,
    MAC_A,
    MAC_B,
    MAC_C,
    WAIT_S,
    Starter,
    account,
    link_settings,
    online,
    topic_prefix,
)

LINK_LOGGER = "orchestrator.broker.link"


def credentials(broker: Broker, device: DeviceAccount, prefix: str) -> MqttCredentials:
    return MqttCredentials(
        broker_url=broker.url,
        username=device.username,
        password=device.password,
        topic_prefix=prefix,
    )


async def test_strangers_are_refused() -> None:
    async with mosquitto(admin=ADMIN) as broker:
        for username, password in ((None, None), ("nobody", "x"), (ADMIN[0], "wrong")):
            with pytest.raises(aiomqtt.MqttCodeError, match="Not authorized"):
                async with aiomqtt.Client(
                    broker.host, broker.port, username=username, password=password, timeout=WAIT_S
                ):
                    pass


async def test_the_device_agents_own_link_goes_online_with_its_account() -> None:
    a = account(MAC_A)
    async with (
        mosquitto(admin=ADMIN) as broker,
        BrokerLink.open(link_settings(broker)) as link,
    ):
        await link.accounts.grant(a)
        async with status_link(credentials(broker, a, topic_prefix(MAC_A)), mac=MAC_A) as device:
            assert device.topic == a.status_topic
            await device.publish(online(MAC_A, "n-1"))
            async with asyncio.timeout(WAIT_S):
                found = await link.proofs.wait_online(a.status_topic, MAC_A, "n-1")
    assert found == online(MAC_A, "n-1")


async def test_revoking_disconnects_the_device() -> None:
    a = account(MAC_A)
    async with (
        mosquitto(admin=ADMIN) as broker,
        BrokerLink.open(link_settings(broker)) as link,
    ):
        await link.accounts.grant(a)
        async with status_link(credentials(broker, a, topic_prefix(MAC_A)), mac=MAC_A) as device:
            await link.accounts.revoke(a.username)
            async with asyncio.timeout(WAIT_S):
                await device.wait_closed()


async def test_account_changes_leave_other_clients_connected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b, c = account(MAC_A), account(MAC_B), account(MAC_C)
    async with (
        mosquitto(admin=ADMIN) as broker,
        BrokerLink.open(link_settings(broker)) as link,
    ):
        await link.accounts.grant(a)
        with caplog.at_level(logging.INFO, logger=LINK_LOGGER):
            async with status_link(
                credentials(broker, a, topic_prefix(MAC_A)), mac=MAC_A
            ) as device:
                await link.accounts.grant(b)
                await link.accounts.grant(c)
                await link.accounts.grant(account(MAC_B, "another-pw"))
                await link.accounts.revoke(b.username)
                await link.accounts.revoke(c.username)
                # Still connected: its online goes through on the same connection.
                await device.publish(online(MAC_A, "n-1"))
                async with asyncio.timeout(WAIT_S):
                    await link.proofs.wait_online(a.status_topic, MAC_A, "n-1")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_grants_in_parallel_get_their_own_answers() -> None:
    accounts = [account(Mac(f"02:DC:00:00:01:{n:02X}"), f"pw-{n}") for n in range(30)]
    async with (
        mosquitto(admin=ADMIN) as broker,
        BrokerLink.open(link_settings(broker)) as link,
    ):
        async with asyncio.TaskGroup() as group:
            for each in accounts:
                group.create_task(link.accounts.grant(each))
        async with asyncio.TaskGroup() as group:
            for each in accounts[::2]:
                group.create_task(link.accounts.revoke(each.username))
        first, second = accounts[0], accounts[1]
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username=second.username,
            password=second.password,
            identifier=second.client_id,
        ):
            pass
        with pytest.raises(aiomqtt.MqttCodeError):
            async with aiomqtt.Client(
                broker.host,
                broker.port,
                username=first.username,
                password=first.password,
                identifier=first.client_id,
            ):
                pass


async def test_a_retained_online_from_before_the_link_opened_counts() -> None:
    a = account(MAC_A)
    async with mosquitto(admin=ADMIN) as broker:
        async with BrokerLink.open(link_settings(broker)) as link:
            await link.accounts.grant(a)
        async with status_link(credentials(broker, a, topic_prefix(MAC_A)), mac=MAC_A) as device:
            await device.publish(online(MAC_A, "n-1"))
        async with BrokerLink.open(link_settings(broker)) as fresh:
            async with asyncio.timeout(WAIT_S):
                found = await fresh.proofs.wait_online(a.status_topic, MAC_A, "n-1")
    assert found == online(MAC_A, "n-1")


async def test_a_broker_restart_is_logged_once_each_way_without_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = account(MAC_A), account(MAC_B)
    start = Starter(tmp_path)
    where = f"127.0.0.1:{start.port}"
    brokers = contextlib.AsyncExitStack()
    try:
        broker = await start(brokers)
        with caplog.at_level(logging.DEBUG):
            async with BrokerLink.open(link_settings(broker)) as link:
                await link.accounts.grant(a)
                await brokers.aclose()
                await start(brokers)
                # Sent at once, maybe on the dead connection: it goes again on the new one.
                await link.accounts.grant(b)
                assert link.connected
    finally:
        await brokers.aclose()
    said = [
        r.getMessage()
        for r in caplog.records
        if r.name == LINK_LOGGER and r.levelno >= logging.INFO
    ]
    assert said[0] == f"connected to the broker at {where}"
    assert said[1].startswith(f"lost the broker at {where} (")
    assert said[2:] == [f"reconnected to the broker at {where}"]
    assert ADMIN[1] not in caplog.text
    assert b.password not in caplog.text


async def test_an_unreachable_broker_makes_account_changes_fail_in_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = link_settings(command_timeout_s=0.2)
    with caplog.at_level(logging.DEBUG):
        async with BrokerLink.open(settings) as link:
            with pytest.raises(
                BrokerUnavailableError, match=r"is not reachable within 0\.2 s"
            ) as failed:
                await link.accounts.grant(account(MAC_A, "device-secret"))
            with pytest.raises(BrokerUnavailableError):
                await link.accounts.revoke(account(MAC_A).username)
            assert not link.connected
    assert "device-secret" not in str(failed.value)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1
    assert warned[0].startswith("cannot reach the broker")
    assert ADMIN[1] not in caplog.text


async def test_a_wrong_admin_password_is_reported_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with mosquitto(admin=ADMIN) as broker:
        settings = link_settings(broker, password="not-the-admin-pw", command_timeout_s=0.2)
        with caplog.at_level(logging.DEBUG):
            async with BrokerLink.open(settings) as link:
                with pytest.raises(BrokerUnavailableError, match="not reachable"):
                    await link.accounts.grant(account(MAC_A))
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1
    assert "Not authorized" in warned[0]
    assert "not-the-admin-pw" not in caplog.text


async def test_the_simulated_fleet_can_put_its_broker_under_dynamic_security() -> None:
    async with loopback_fleet(FleetSpec(devices=1), broker_admin=ADMIN) as fleet:
        assert fleet.broker.admin == ADMIN
        assert ADMIN[1] not in repr(fleet.broker)
        async with BrokerLink.open(link_settings(fleet.broker)) as link:
            await link.accounts.grant(account(MAC_A))
