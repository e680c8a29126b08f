"""ApiKeys over the in-memory and the SQLite repository: keys are shown once, stored as hashes,
and only an exact, active key verifies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from orchestrator.domain.apikey import hash_key
from orchestrator.security.apikeys import ApiKeys
from orchestrator.storage import MemoryStore, open_sqlite_store
from tests.fakes import T0, FakeClock

KEY_SHAPE = re.compile(r"dk_(?P<id>[a-z0-9]{10})_(?P<secret>[A-Za-z0-9_-]{43})")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
async def keys(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[ApiKeys]:
    """ApiKeys over the fake and over the real repository."""
    if request.param == "memory":
        yield ApiKeys(MemoryStore().api_keys, clock.now)
        return
    async with open_sqlite_store(tmp_path / "db.sqlite3") as store:
        yield ApiKeys(store.api_keys, clock.now)


async def test_create_returns_the_record_and_a_key_shown_once(keys: ApiKeys) -> None:
    record, key = await keys.create("tablet")

    match = KEY_SHAPE.fullmatch(key)
    assert match is not None, key
    assert match["id"] == record.id
    assert key.startswith(f"dk_{record.id}_")
    assert record.name == "tablet"
    assert record.created_at == T0
    assert record.revoked_at is None
    assert record.key_hash == hash_key(key)
    assert record.key_hash != key


async def test_the_key_is_stored_nowhere_in_the_record(keys: ApiKeys) -> None:
    record, key = await keys.create("tablet")
    secret = key.removeprefix(f"dk_{record.id}_")

    for stored in (record, *(await keys.list())):
        encoded = msgspec.json.encode(stored).decode()
        assert key not in encoded
        assert secret not in encoded


async def test_keys_and_ids_are_unique(keys: ApiKeys) -> None:
    created = [await keys.create(f"tablet-{i}") for i in range(5)]

    assert len({record.id for record, _ in created}) == 5
    assert len({key for _, key in created}) == 5


async def test_verify_returns_the_record_of_a_valid_key(keys: ApiKeys) -> None:
    record, key = await keys.create("tablet")
    await keys.create("other")

    assert await keys.verify(key) == record


async def test_verify_refuses_the_right_id_with_another_secret(keys: ApiKeys) -> None:
    record, key = await keys.create("tablet")
    secret = key.removeprefix(f"dk_{record.id}_")
    forged = f"dk_{record.id}_{secret[::-1]}"
    assert forged != key

    assert await keys.verify(forged) is None


async def test_verify_refuses_another_keys_secret_under_this_id(keys: ApiKeys) -> None:
    first, _ = await keys.create("tablet")
    second, second_key = await keys.create("laptop")

    swapped = second_key.replace(f"dk_{second.id}_", f"dk_{first.id}_", 1)

    assert await keys.verify(swapped) is None


@pytest.mark.parametrize(
    "garbage",
    ["", "dk__", "dk_x", "dk_x_", "dk__secret", "nonsense", "DK_abc_def", "dk_unknownid_secret"],
)
async def test_verify_refuses_garbage(keys: ApiKeys, garbage: str) -> None:
    await keys.create("tablet")

    assert await keys.verify(garbage) is None


async def test_verify_refuses_a_key_with_extra_or_missing_characters(keys: ApiKeys) -> None:
    _, key = await keys.create("tablet")

    for variant in (key + "x", key[:-1], " " + key, key + "\n", key.upper()):
        assert await keys.verify(variant) is None, variant


async def test_revoked_key_no_longer_verifies(keys: ApiKeys, clock: FakeClock) -> None:
    record, key = await keys.create("tablet")
    await clock.advance(60)

    assert await keys.revoke(record.id) is True

    assert await keys.verify(key) is None


async def test_revoking_one_key_leaves_the_others_working(keys: ApiKeys) -> None:
    revoked, _ = await keys.create("tablet")
    kept, kept_key = await keys.create("laptop")

    assert await keys.revoke(revoked.id) is True

    assert await keys.verify(kept_key) == kept


async def test_revoke_unknown_or_already_revoked_is_false(keys: ApiKeys) -> None:
    record, _ = await keys.create("tablet")

    assert await keys.revoke("nosuchkey0") is False
    assert await keys.revoke(record.id) is True
    assert await keys.revoke(record.id) is False


async def test_list_shows_revoked_keys_with_revoked_at(keys: ApiKeys, clock: FakeClock) -> None:
    tablet, _ = await keys.create("tablet")
    await clock.advance(1)
    laptop, _ = await keys.create("laptop")
    await clock.advance(60)
    await keys.revoke(tablet.id)

    listed = await keys.list()

    assert [(r.id, r.name) for r in listed] == [(tablet.id, "tablet"), (laptop.id, "laptop")]
    by_id = {r.id: r for r in listed}
    assert by_id[tablet.id].revoked_at == T0 + timedelta(seconds=61)
    assert not by_id[tablet.id].is_active
    assert by_id[laptop.id].revoked_at is None
    assert by_id[laptop.id].is_active


async def test_list_is_empty_before_any_key(keys: ApiKeys) -> None:
    assert await keys.list() == []
