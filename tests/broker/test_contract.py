"""The broker ports' contract, run against the in-memory fakes and a real Mosquitto alike."""

from __future__ import annotations

import asyncio
import logging

import pytest

from orchestrator.domain.mac import Mac
from orchestrator.ports.broker import DeviceAccount, OnlineProofs
from orchestrator.protocol.status import Offline, Online, encode_status
from tests.broker.conftest import (
    ADMIN,
    MAC_A,
    MAC_B,
    MAC_C,
    WAIT_S,
    HarnessFactory,
    account,
    online,
)


async def wait_for(proofs: OnlineProofs, device: DeviceAccount, mac: Mac, nonce: str) -> Online:
    async with asyncio.timeout(WAIT_S):
        return await proofs.wait_online(device.status_topic, mac, nonce)


async def test_a_granted_account_connects_with_its_password_and_client_id_only(
    make_harness: HarnessFactory,
) -> None:
    a = account(MAC_A)
    async with make_harness() as world:
        assert not await world.can_connect(a.username, a.password, a.client_id)
        await world.accounts.grant(a)
        assert await world.can_connect(a.username, a.password, a.client_id)
        assert not await world.can_connect(a.username, "wrong-password", a.client_id)
        assert not await world.can_connect(a.username, a.password, "dev-someone-else")


async def test_granting_again_replaces_the_password(make_harness: HarnessFactory) -> None:
    first, second = account(MAC_A, "first-pw"), account(MAC_A, "second-pw")
    async with make_harness() as world:
        await world.accounts.grant(first)
        await world.accounts.grant(second)
        assert not await world.can_connect(first.username, first.password, first.client_id)
        assert await world.can_connect(second.username, second.password, second.client_id)


async def test_revoking_is_final_and_idempotent(make_harness: HarnessFactory) -> None:
    a = account(MAC_A)
    async with make_harness() as world:
        await world.accounts.grant(a)
        await world.accounts.revoke(a.username)
        assert not await world.can_connect(a.username, a.password, a.client_id)
        await world.accounts.revoke(a.username)
        await world.accounts.revoke(account(MAC_B).username)  # never granted
        await world.accounts.grant(a)  # and it can come back
        assert await world.can_connect(a.username, a.password, a.client_id)


async def test_an_account_publishes_on_its_own_status_topic_only(
    make_harness: HarnessFactory,
) -> None:
    a, b = account(MAC_A), account(MAC_B)
    async with make_harness() as world:
        await world.accounts.grant(a)
        await world.accounts.grant(b)
        assert await world.reaches_others(a, a.status_topic)
        assert not await world.reaches_others(a, "delicasa/elsewhere")
        assert not await world.reaches_others(a, b.status_topic)
        assert not await world.reaches_others(a, a.status_topic + "/more")


async def test_the_orchestrators_own_account_is_never_touched(
    make_harness: HarnessFactory,
) -> None:
    own = DeviceAccount(
        username=ADMIN[0], password="x", client_id="x", status_topic=account(MAC_A).status_topic
    )
    async with make_harness() as world:
        with pytest.raises(ValueError, match="own account"):
            await world.accounts.grant(own)
        with pytest.raises(ValueError, match="own account"):
            await world.accounts.revoke(ADMIN[0])


async def test_a_live_online_with_the_nonce_is_the_proof(make_harness: HarnessFactory) -> None:
    a = account(MAC_A)
    async with make_harness() as world:
        await world.accounts.grant(a)
        async with asyncio.TaskGroup() as group:
            waiting = group.create_task(wait_for(world.proofs, a, MAC_A, "n-1"))
            await asyncio.sleep(0)  # let it start waiting
            await world.publish_as(a, encode_status(online(MAC_A, "n-1")), retain=True)
    assert waiting.result() == online(MAC_A, "n-1")


async def test_an_online_that_came_before_the_wait_counts(make_harness: HarnessFactory) -> None:
    a = account(MAC_A)
    async with make_harness() as world:
        await world.accounts.grant(a)
        await world.publish_as(a, encode_status(online(MAC_A, "n-1")), retain=True)
        assert await wait_for(world.proofs, a, MAC_A, "n-1") == online(MAC_A, "n-1")


async def test_stale_nonces_wrong_macs_offline_and_garbage_never_count(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    a = account(MAC_A)
    async with make_harness() as world:
        await world.accounts.grant(a)
        # A retained online of an earlier attempt is there before the wait starts.
        await world.publish_as(a, encode_status(online(MAC_A, "old", ip="10.0.0.1")), retain=True)
        with caplog.at_level(logging.WARNING):
            async with asyncio.TaskGroup() as group:
                waiting = group.create_task(wait_for(world.proofs, a, MAC_A, "new"))
                await asyncio.sleep(0)
                for payload in (
                    encode_status(online(MAC_B, "new", ip="10.0.0.2")),  # another device's
                    encode_status(Offline(mac=MAC_A)),
                    b'{"state": "online", "nonce": "new", "payload": "secret-ish"}',
                    b"\xff not json",
                    encode_status(online(MAC_A, "new", ip="10.0.0.3")),
                ):
                    await world.publish_as(a, payload, retain=True)
    assert waiting.result() == online(MAC_A, "new", ip="10.0.0.3")
    garbage = [r.getMessage() for r in caplog.records if "unreadable status" in r.getMessage()]
    assert len(garbage) == 2
    assert all(a.status_topic in line and "secret-ish" not in line for line in garbage)


async def test_the_mac_is_compared_in_canonical_form(make_harness: HarnessFactory) -> None:
    a = account(MAC_A)
    async with make_harness() as world:
        await world.accounts.grant(a)
        spelled = online(Mac(MAC_A.lower().replace(":", "-")), "n-1")
        await world.publish_as(a, encode_status(spelled), retain=True)
        assert await wait_for(world.proofs, a, MAC_A, "n-1") == spelled


async def test_waiting_goes_on_across_a_broker_restart(make_harness: HarnessFactory) -> None:
    a, c = account(MAC_A), account(MAC_C)
    async with make_harness() as world:
        await world.accounts.grant(a)
        await world.publish_as(a, encode_status(online(MAC_A, "old")), retain=True)
        async with asyncio.TaskGroup() as group:
            waiting = group.create_task(wait_for(world.proofs, a, MAC_A, "n-2"))
            await asyncio.sleep(0)
            async with world.restart():
                # The device is back before the orchestrator: its retained online waits on
                # the broker until the link has subscribed again.
                await world.publish_as(a, encode_status(online(MAC_A, "n-2")), retain=True)
        assert waiting.result() == online(MAC_A, "n-2")
        # The accounts survived the restart, and account changes work again.
        assert await world.can_connect(a.username, a.password, a.client_id)
        await world.accounts.grant(c)
        assert await world.can_connect(c.username, c.password, c.client_id)


async def test_only_status_topics_can_be_waited_on(make_harness: HarnessFactory) -> None:
    async with make_harness() as world:
        for topic in (
            "delicasa/devices/status",
            "other/02dc0000000a/status",
            "delicasa/devices/+/status",
        ):
            with pytest.raises(ValueError, match="not a status topic"):
                await world.proofs.wait_online(topic, MAC_A, "n")
