"""What the fakes add for tests of their users: records, an off switch, lost messages; and the
board's bounds."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.broker.memory import MemoryAccounts, MemoryProofs
from orchestrator.broker.onlines import OnlineBoard
from orchestrator.ports.broker import BrokerUnavailableError
from orchestrator.protocol.status import encode_status
from tests.broker.conftest import MAC_A, MAC_B, account, online


async def test_accounts_record_grants_and_revokes() -> None:
    accounts = MemoryAccounts()
    a = account(MAC_A)
    await accounts.grant(a)
    await accounts.revoke(a.username)
    await accounts.revoke(a.username)
    assert accounts.grants == [a]
    assert accounts.revokes == [a.username, a.username]
    assert dict(accounts.accounts) == {}


async def test_an_unavailable_broker_fails_both_and_records_nothing() -> None:
    accounts = MemoryAccounts()
    accounts.available = False
    with pytest.raises(BrokerUnavailableError):
        await accounts.grant(account(MAC_A))
    with pytest.raises(BrokerUnavailableError):
        await accounts.revoke(account(MAC_A).username)
    assert accounts.grants == []
    assert accounts.revokes == []


async def test_while_disconnected_only_retained_messages_get_through() -> None:
    proofs = MemoryProofs()
    a, b = account(MAC_A), account(MAC_B)
    proofs.disconnect()
    proofs.publish(a.status_topic, encode_status(online(MAC_A, "lost")), retain=False)
    proofs.publish(b.status_topic, encode_status(online(MAC_B, "kept")), retain=True)
    proofs.publish(b.status_topic, encode_status(online(MAC_B, "cleared")), retain=True)
    proofs.publish(b.status_topic, b"", retain=True)  # clears the retained message
    proofs.publish(a.status_topic, encode_status(online(MAC_A, "kept")), retain=True)
    proofs.reconnect()
    async with asyncio.timeout(1):
        assert await proofs.wait_online(a.status_topic, MAC_A, "kept") == online(MAC_A, "kept")
    async with asyncio.TaskGroup() as group:
        waiting = group.create_task(proofs.wait_online(a.status_topic, MAC_A, "lost"))
        other = group.create_task(proofs.wait_online(b.status_topic, MAC_B, "cleared"))
        await asyncio.sleep(0)
        assert not waiting.done()
        assert not other.done()
        waiting.cancel()
        other.cancel()


async def test_the_board_forgets_the_stalest_topic_first() -> None:
    board = OnlineBoard("delicasa/devices", max_topics=1)
    a, b = account(MAC_A), account(MAC_B)
    board.receive(a.status_topic, encode_status(online(MAC_A, "n")))
    board.receive(b.status_topic, encode_status(online(MAC_B, "n")))
    async with asyncio.timeout(1):
        assert await board.wait_online(b.status_topic, MAC_B, "n") == online(MAC_B, "n")
    async with asyncio.TaskGroup() as group:
        forgotten = group.create_task(board.wait_online(a.status_topic, MAC_A, "n"))
        await asyncio.sleep(0)
        assert not forgotten.done()
        forgotten.cancel()


async def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    board = OnlineBoard("delicasa/devices")
    a = account(MAC_A)
    waiting = asyncio.create_task(board.wait_online(a.status_topic, MAC_A, "n"))
    await asyncio.sleep(0)
    assert board.waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert board.waiting == 0
