"""The Store contract: every test runs against MemoryStore and the SQLite store alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from orchestrator.domain.attempt import AttemptPhase, advance_attempt
from orchestrator.domain.audit import Outcome
from orchestrator.domain.candidate import CandidateState, CloudRegistration, Failure
from orchestrator.domain.errors import ErrorCode
from orchestrator.domain.session import CloudTarget, SessionState
from orchestrator.domain.totp import NO_STEP_USED, TotpEnrollment
from orchestrator.ports.storage import AuditQuery, StorageError, Store
from tests.storage.samples import (
    T0,
    at,
    mac,
    make_attempt,
    make_audit,
    make_candidate,
    make_device,
    make_entry,
    make_event,
    make_key,
    make_pairing,
    make_session,
)

SEALED = b"\x00sealed\xff\xfe password bytes"


async def test_health_is_ok(store: Store) -> None:
    assert await store.health() == "ok"


# --- sessions ---------------------------------------------------------------------------------


async def test_session_round_trips_exactly(store: Store) -> None:
    session = make_session(expires_at=at(3600.000001))
    await store.sessions.create(session, SEALED)
    got = await store.sessions.get(session.id)
    assert got == session
    assert got is not None
    assert got.created_at.tzinfo is not None
    assert got.created_at.microsecond == T0.microsecond


async def test_unknown_session_is_none(store: Store) -> None:
    assert await store.sessions.get("nope") is None
    assert await store.sessions.sealed_password("nope") is None


async def test_session_timestamps_come_back_in_utc(store: Store) -> None:
    local = T0.astimezone(timezone(timedelta(hours=2)))
    await store.sessions.create(make_session(created_at=local), SEALED)
    got = await store.sessions.get("sess_1")
    assert got is not None
    assert got.created_at == T0
    assert got.created_at.utcoffset() == timedelta(0)


async def test_naive_timestamps_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.sessions.create(make_session(created_at=T0.replace(tzinfo=None)), SEALED)
    assert await store.sessions.get("sess_1") is None


async def test_creating_a_used_session_id_fails(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    with pytest.raises(StorageError):
        await store.sessions.create(make_session(state=SessionState.PAUSED), b"other")
    assert await store.sessions.sealed_password("sess_1") == SEALED


async def test_save_overwrites_fields_and_keeps_the_sealed_password(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    closed = make_session(state=SessionState.CLOSED, updated_at=at(60))
    await store.sessions.save(closed)
    assert await store.sessions.get("sess_1") == closed
    assert await store.sessions.sealed_password("sess_1") == SEALED


async def test_saving_an_unknown_session_fails(store: Store) -> None:
    with pytest.raises(StorageError):
        await store.sessions.save(make_session())
    assert await store.sessions.get("sess_1") is None


async def test_list_unclosed_is_oldest_first_without_closed(store: Store) -> None:
    await store.sessions.create(make_session("c", created_at=at(3)), SEALED)
    await store.sessions.create(make_session("a", created_at=at(2)), SEALED)
    await store.sessions.create(make_session("b", created_at=at(2)), SEALED)
    await store.sessions.create(
        make_session("z", state=SessionState.CLOSED, created_at=at(1)), SEALED
    )
    await store.sessions.create(
        make_session("p", state=SessionState.PAUSED, created_at=at(4)), SEALED
    )
    assert [s.id for s in await store.sessions.list_unclosed()] == ["a", "b", "c", "p"]


async def test_history_is_newest_first_and_limited(store: Store) -> None:
    for n, session_id in enumerate(["s1", "s2", "s3", "s4"]):
        state = SessionState.CLOSED if n % 2 else SessionState.ACTIVE
        await store.sessions.create(make_session(session_id, state=state, created_at=at(n)), SEALED)
    assert [s.id for s in await store.sessions.history(3)] == ["s4", "s3", "s2"]
    assert [s.id for s in await store.sessions.history(10)] == ["s4", "s3", "s2", "s1"]
    assert await store.sessions.history(0) == []
    with pytest.raises(ValueError, match="negative"):
        await store.sessions.history(-1)


async def test_delete_closed_before_cascades_to_candidates(store: Store) -> None:
    closed = SessionState.CLOSED
    await store.sessions.create(make_session("old", state=closed, updated_at=at(10)), SEALED)
    await store.sessions.create(make_session("edge", state=closed, updated_at=at(20)), SEALED)
    await store.sessions.create(make_session("open", updated_at=at(0)), SEALED)
    await store.candidates.save_many(
        [make_candidate("old", 1), make_candidate("old", 2), make_candidate("open", 3)]
    )

    assert await store.sessions.delete_closed_before(at(20)) == 1

    assert await store.sessions.get("old") is None
    assert await store.sessions.sealed_password("old") is None
    assert await store.candidates.list_for("old") == []
    # Updated exactly at the cutoff is not "before" it; open sessions are never deleted.
    assert await store.sessions.get("edge") is not None
    assert [c.mac for c in await store.candidates.list_for("open")] == [mac(3)]
    assert await store.sessions.delete_closed_before(at(20)) == 0


async def test_a_session_s_cloud_target_and_sealed_secrets_round_trip(store: Store) -> None:
    target = CloudTarget(provider="thingsboard", host="tb.local", port=1883)
    session = msgspec.structs.replace(make_session(), cloud=target)
    await store.sessions.create(session, SEALED, b"\x01sealed cloud")
    assert await store.sessions.get(session.id) == session
    assert await store.sessions.sealed_cloud(session.id) == b"\x01sealed cloud"
    await store.sessions.create(make_session("plain"), SEALED)
    assert await store.sessions.sealed_cloud("plain") is None
    assert await store.sessions.sealed_cloud("nope") is None


async def test_a_candidate_keeps_its_cloud_registration(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    report = CloudRegistration(registered=False, message="provision key not found")
    candidate = msgspec.structs.replace(make_candidate(), cloud=report)
    await store.candidates.save(candidate)
    assert await store.candidates.list_for("sess_1") == [candidate]


# --- attempts ---------------------------------------------------------------------------------


async def test_attempts_round_trip_and_the_latest_wins(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    await store.candidates.save_many([make_candidate(n=1), make_candidate(n=2)])
    first = make_attempt(n=1, number=1)
    await store.attempts.save(first)
    delivering = advance_attempt(first, AttemptPhase.DELIVERING, at(1))
    delivered = advance_attempt(delivering, AttemptPhase.DELIVERED, at(2))
    await store.attempts.save(delivered)
    assert await store.attempts.latest("sess_1", mac(1)) == delivered
    second = make_attempt(n=1, number=2)
    await store.attempts.save(second)
    await store.attempts.save(make_attempt(n=2, number=1))
    assert await store.attempts.latest("sess_1", mac(1)) == second
    assert await store.attempts.latest("sess_1", mac(3)) is None
    assert [a.number for a in await store.attempts.latest_for_session("sess_1")] == [2, 1]


async def test_attempts_need_their_candidate_and_a_fresh_nonce(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    with pytest.raises(StorageError):
        await store.attempts.save(make_attempt(n=1))
    await store.candidates.save_many([make_candidate(n=1), make_candidate(n=2)])
    await store.attempts.save(make_attempt(n=1))
    reused = msgspec.structs.replace(make_attempt(n=2), nonce=make_attempt(n=1).nonce)
    with pytest.raises(StorageError):
        await store.attempts.save(reused)


async def test_attempts_go_with_their_session(store: Store) -> None:
    closed = SessionState.CLOSED
    await store.sessions.create(make_session("old", state=closed, updated_at=at(10)), SEALED)
    await store.candidates.save(make_candidate("old", 1))
    await store.attempts.save(make_attempt("old", 1))
    assert await store.sessions.delete_closed_before(at(20)) == 1
    assert await store.attempts.latest("old", mac(1)) is None


# --- candidates -------------------------------------------------------------------------------


async def test_candidates_round_trip_with_failures(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    failed = make_candidate(
        n=1,
        state=CandidateState.FAILED,
        failure=Failure(
            reason="auth_error", message="wrong password", code=ErrorCode.DEVICE_REJECTED
        ),
    )
    skipped = make_candidate(
        n=2, state=CandidateState.FAILED, failure=Failure(reason="skipped", message="skipped")
    )
    verified = msgspec.structs.replace(
        make_candidate(n=3, state=CandidateState.VERIFIED),
        retry_count=2,
        provisioned_at=at(5),
        verified_at=at(6.5),
    )
    await store.candidates.save_many([failed, skipped, verified])
    assert await store.candidates.list_for("sess_1") == [failed, skipped, verified]


async def test_save_replaces_a_candidate(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    await store.candidates.save(make_candidate(n=1))
    moved = msgspec.structs.replace(
        make_candidate(n=1), state=CandidateState.PROVISIONING, updated_at=at(1)
    )
    await store.candidates.save(moved)
    assert await store.candidates.list_for("sess_1") == [moved]


async def test_candidates_are_in_discovery_then_mac_order(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    await store.sessions.create(make_session("other"), SEALED)
    await store.candidates.save(make_candidate(n=9, discovered_at=at(2)))
    await store.candidates.save(make_candidate(n=5, discovered_at=at(1)))
    await store.candidates.save(make_candidate(n=3, discovered_at=at(2)))
    await store.candidates.save(make_candidate("other", 1, discovered_at=at(0)))
    listed = await store.candidates.list_for("sess_1")
    assert [c.mac for c in listed] == [mac(5), mac(3), mac(9)]
    assert await store.candidates.list_for("unknown") == []


async def test_candidates_need_their_session(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    with pytest.raises(StorageError):
        await store.candidates.save(make_candidate("ghost", 1))
    # save_many is all or nothing.
    with pytest.raises(StorageError):
        await store.candidates.save_many([make_candidate(n=1), make_candidate("ghost", 2)])
    assert await store.candidates.list_for("sess_1") == []
    await store.candidates.save_many([])


async def test_concurrent_batches_do_not_interleave(store: Store) -> None:
    await store.sessions.create(make_session(), SEALED)
    batches = [[make_candidate(n=10 * b + i) for i in range(10)] for b in range(8)]
    await asyncio.gather(*(store.candidates.save_many(batch) for batch in batches))
    assert len(await store.candidates.list_for("sess_1")) == 80


# --- allowlist --------------------------------------------------------------------------------


async def test_allowlist_get_put_and_replace(store: Store) -> None:
    assert await store.allowlist.get(mac(1)) is None
    await store.allowlist.put(make_entry(1))
    assert await store.allowlist.get(mac(1)) == make_entry(1)
    used = make_entry(1, used_at=at(9))
    await store.allowlist.put(used)
    assert await store.allowlist.get(mac(1)) == used


async def test_allowlist_lists_by_mac_and_filters_used(store: Store) -> None:
    await store.allowlist.put_many(
        [make_entry(3), make_entry(1, used_at=at(1)), make_entry(2), make_entry(300)]
    )
    await store.allowlist.put_many([])
    assert [e.mac for e in await store.allowlist.list()] == [mac(1), mac(2), mac(3), mac(300)]
    available = await store.allowlist.list(available_only=True)
    assert [e.mac for e in available] == [mac(2), mac(3), mac(300)]


async def test_remove_returns_only_the_macs_that_existed(store: Store) -> None:
    await store.allowlist.put_many([make_entry(1), make_entry(2), make_entry(3)])
    removed = await store.allowlist.remove([mac(3), mac(9), mac(1), mac(3)])
    assert removed == [mac(3), mac(1)]
    assert [e.mac for e in await store.allowlist.list()] == [mac(2)]
    assert await store.allowlist.remove([mac(1)]) == []
    assert await store.allowlist.remove([]) == []


async def test_clear_counts_what_it_deleted(store: Store) -> None:
    assert await store.allowlist.clear() == 0
    await store.allowlist.put_many([make_entry(n) for n in range(5)])
    assert await store.allowlist.clear() == 5
    assert await store.allowlist.list() == []


# --- provisioning (seed 000) ------------------------------------------------------------------


async def test_devices_save_find_and_replace(store: Store) -> None:
    assert await store.provisioning.find_device_by_id("ZM-ICU-MON-04") is None
    await store.provisioning.save_device(make_device())
    assert await store.provisioning.find_device_by_id("ZM-ICU-MON-04") == make_device()
    await store.provisioning.save_device(make_device(label="ICU 4 (moved)"))
    found = await store.provisioning.find_device_by_id("ZM-ICU-MON-04")
    assert found == make_device(label="ICU 4 (moved)")


async def test_pairing_code_is_found_only_before_it_expires(store: Store) -> None:
    pairing = make_pairing(expires_at=at(600))
    await store.provisioning.save_session(pairing)
    find = store.provisioning.find_session_by_code
    assert await find("X7Y9Z2", T0) == pairing
    assert await find("X7Y9Z2", at(600) - timedelta(microseconds=1)) == pairing
    assert await find("X7Y9Z2", at(600)) is None
    assert await find("X7Y9Z2", at(601)) is None
    assert await find("NOPE42", T0) is None


async def test_saving_a_pairing_code_again_replaces_it(store: Store) -> None:
    await store.provisioning.save_session(make_pairing(expires_at=at(10)))
    renewed = make_pairing(expires_at=at(700), device_id="other")
    await store.provisioning.save_session(renewed)
    assert await store.provisioning.find_session_by_code("X7Y9Z2", at(100)) == renewed


async def test_delete_expired_sessions_returns_the_count(store: Store) -> None:
    await store.provisioning.save_session(make_pairing("AAAAA1", expires_at=at(100)))
    await store.provisioning.save_session(make_pairing("AAAAA2", expires_at=at(200)))
    await store.provisioning.save_session(make_pairing("AAAAA3", expires_at=at(300)))
    # Expired at expires_at exactly, like PairingSession.is_expired.
    assert await store.provisioning.delete_expired_sessions(at(200)) == 2
    assert await store.provisioning.delete_expired_sessions(at(200)) == 0
    assert await store.provisioning.find_session_by_code("AAAAA3", at(200)) is not None


async def test_a_code_is_never_issued_twice_even_after_its_session_is_purged(store: Store) -> None:
    repo = store.provisioning
    assert await repo.issue_session(make_pairing("KM9X3T", expires_at=at(600)))
    assert not await repo.issue_session(make_pairing("KM9X3T", device_id="other"))
    assert (await repo.find_session_by_code("KM9X3T", T0)) == make_pairing(
        "KM9X3T", expires_at=at(600)
    )
    assert await repo.delete_expired_sessions(at(600)) == 1
    assert not await repo.issue_session(make_pairing("KM9X3T", expires_at=at(1200)))
    assert await repo.find_session_by_code("KM9X3T", at(600)) is None


async def test_a_saved_session_s_code_counts_as_issued(store: Store) -> None:
    await store.provisioning.save_session(make_pairing("KM9X3T"))
    assert not await store.provisioning.issue_session(make_pairing("KM9X3T", device_id="other"))


async def test_issuing_replaces_the_device_s_earlier_sessions(store: Store) -> None:
    repo = store.provisioning
    assert await repo.issue_session(make_pairing("AAAAA1", expires_at=at(100)))
    assert await repo.issue_session(make_pairing("AAAAA2", expires_at=at(100), device_id="other"))
    assert await repo.issue_session(make_pairing("AAAAA3", expires_at=at(700)))
    assert await repo.find_session_by_code("AAAAA1", T0) is None
    assert await repo.find_session_by_code("AAAAA2", T0) is not None
    assert await repo.find_session_by_code("AAAAA3", T0) is not None


async def test_the_live_session_of_a_device_is_unexpired_and_unclaimed(store: Store) -> None:
    repo = store.provisioning
    device = "ZM-ICU-MON-04"
    assert await repo.find_live_session_for_device(device, T0) is None
    live = make_pairing("KM9X3T", expires_at=at(600))
    await repo.issue_session(live)
    assert await repo.find_live_session_for_device(device, T0) == live
    assert await repo.find_live_session_for_device("other", T0) is None
    assert await repo.find_live_session_for_device(device, at(600)) is None
    assert await repo.claim_session("KM9X3T", "key-a", at(1)) is not None
    assert await repo.find_live_session_for_device(device, at(2)) is None


async def test_a_claim_goes_to_the_first_claimant_and_its_repeats(store: Store) -> None:
    repo = store.provisioning
    await repo.issue_session(make_pairing("KM9X3T", expires_at=at(600)))
    claimed = await repo.claim_session("KM9X3T", "key-a", at(10))
    expected = make_pairing("KM9X3T", expires_at=at(600))
    expected = msgspec.structs.replace(expected, claimed_by="key-a", claimed_at=at(10))
    assert claimed == expected
    assert await repo.claim_session("KM9X3T", "key-b", at(11)) is None
    # A repeat by the same claimant (a retried request) gets it again, claimed_at unchanged.
    assert await repo.claim_session("KM9X3T", "key-a", at(12)) == expected
    assert await repo.find_session_by_code("KM9X3T", at(13)) == expected


async def test_nobody_claims_an_unknown_or_expired_code(store: Store) -> None:
    repo = store.provisioning
    await repo.issue_session(make_pairing("KM9X3T", expires_at=at(600)))
    assert await repo.claim_session("NOPE42", "key-a", T0) is None
    assert await repo.claim_session("KM9X3T", "key-a", at(600)) is None


async def test_of_concurrent_claims_exactly_one_wins(store: Store) -> None:
    await store.provisioning.issue_session(make_pairing("KM9X3T", expires_at=at(600)))
    claims = await asyncio.gather(
        *(store.provisioning.claim_session("KM9X3T", f"key-{n}", at(1)) for n in range(8))
    )
    winners = [claim for claim in claims if claim is not None]
    assert len(winners) == 1
    assert winners[0].claimed_by in {f"key-{n}" for n in range(8)}


async def test_claimed_sessions_are_purged_at_expiry_too(store: Store) -> None:
    await store.provisioning.issue_session(make_pairing("KM9X3T", expires_at=at(600)))
    await store.provisioning.claim_session("KM9X3T", "key-a", at(1))
    assert await store.provisioning.delete_expired_sessions(at(600)) == 1


async def test_a_saved_claim_round_trips(store: Store) -> None:
    claimed = msgspec.structs.replace(make_pairing(), claimed_by="key-a", claimed_at=at(5))
    await store.provisioning.save_session(claimed)
    assert await store.provisioning.find_session_by_code("X7Y9Z2", at(6)) == claimed


# --- audit ------------------------------------------------------------------------------------


async def test_audit_ids_increase_and_pages_are_newest_first(store: Store) -> None:
    first = await store.audit.append(make_audit("a", when=at(1)))
    second = await store.audit.append(msgspec.structs.replace(make_audit("b", when=at(2)), id=999))
    assert second > first
    page = await store.audit.page(AuditQuery())
    assert [(e.id, e.action) for e in page] == [(second, "b"), (first, "a")]
    assert page[1] == msgspec.structs.replace(make_audit("a", when=at(1)), id=first)


async def test_audit_filters_and_paging(store: Store) -> None:
    ids = [
        await store.audit.append(make_audit("allowlist.add", when=at(1), device=mac(1))),
        await store.audit.append(make_audit("session.create", when=at(2))),
        await store.audit.append(make_audit("allowlist.add", when=at(3), device=mac(2))),
        await store.audit.append(
            make_audit("device.provision", when=at(4), device=mac(1), outcome=Outcome.DENIED)
        ),
    ]

    async def page_ids(**filters: object) -> list[int | None]:
        query = msgspec.convert(filters, AuditQuery, builtin_types=(datetime,))
        return [entry.id for entry in await store.audit.page(query)]

    assert await page_ids(mac=mac(1)) == [ids[3], ids[0]]
    assert await page_ids(action="allowlist.add") == [ids[2], ids[0]]
    assert await page_ids(since=at(2)) == [ids[3], ids[2], ids[1]]
    assert await page_ids(before_id=ids[2]) == [ids[1], ids[0]]
    assert await page_ids(limit=2) == [ids[3], ids[2]]
    assert await page_ids(limit=0) == []
    assert await page_ids(mac=mac(1), action="allowlist.add") == [ids[0]]
    assert await page_ids(action="allowlist.add", before_id=ids[2], since=at(1)) == [ids[0]]
    assert await page_ids(mac=mac(7)) == []
    with pytest.raises(ValueError, match="negative"):
        await page_ids(limit=-1)


# --- events -----------------------------------------------------------------------------------


async def test_event_seqs_strictly_increase_and_replay_the_bytes(store: Store) -> None:
    seqs = [await store.events.append(make_event(n)) for n in range(1, 4)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    stored = await store.events.since(0)
    assert [e.seq for e in stored] == seqs
    assert stored[0].data == msgspec.json.encode(make_event(1))
    assert stored[0].session_id == "sess_1"
    system = await store.events.append(make_event(4, session_id=None))
    assert (await store.events.since(seqs[-1]))[0].session_id is None
    assert (await store.events.since(seqs[-1]))[0].seq == system


async def test_since_and_bounds(store: Store) -> None:
    assert await store.events.bounds() is None
    assert await store.events.since(0) == []
    seqs = [await store.events.append(make_event(n)) for n in range(5)]
    assert await store.events.bounds() == (seqs[0], seqs[-1])
    assert [e.seq for e in await store.events.since(seqs[1])] == seqs[2:]
    assert [e.seq for e in await store.events.since(seqs[1], limit=2)] == seqs[2:4]
    assert await store.events.since(seqs[-1]) == []
    assert await store.events.since(0, limit=0) == []
    with pytest.raises(ValueError, match="negative"):
        await store.events.since(0, limit=-1)


async def test_trim_keeps_the_newest_and_never_reuses_a_seq(store: Store) -> None:
    seqs = [await store.events.append(make_event(n)) for n in range(5)]
    assert await store.events.trim(keep_last=10) == 0
    assert await store.events.trim(keep_last=2) == 3
    assert await store.events.bounds() == (seqs[3], seqs[4])
    assert await store.events.trim(keep_last=0) == 2
    assert await store.events.bounds() is None
    assert await store.events.trim(keep_last=0) == 0
    after = await store.events.append(make_event(9))
    assert after > seqs[-1]
    assert await store.events.bounds() == (after, after)
    with pytest.raises(ValueError, match="negative"):
        await store.events.trim(keep_last=-1)


async def test_concurrent_appends_get_distinct_seqs(store: Store) -> None:
    seqs = await asyncio.gather(*(store.events.append(make_event(n)) for n in range(20)))
    assert len(set(seqs)) == 20
    assert [e.seq for e in await store.events.since(0)] == sorted(seqs)


# --- API keys ---------------------------------------------------------------------------------


async def test_api_keys_add_get_list(store: Store) -> None:
    assert await store.api_keys.get("key_1") is None
    await store.api_keys.add(make_key("key_b", created_at=at(5)))
    await store.api_keys.add(make_key("key_a", created_at=at(5)))
    await store.api_keys.add(make_key("key_c", created_at=at(1)))
    assert await store.api_keys.get("key_a") == make_key("key_a", created_at=at(5))
    assert [r.id for r in await store.api_keys.list()] == ["key_c", "key_a", "key_b"]


async def test_adding_a_used_key_id_fails(store: Store) -> None:
    await store.api_keys.add(make_key())
    with pytest.raises(StorageError):
        await store.api_keys.add(make_key(created_at=at(1)))
    assert await store.api_keys.get("key_1") == make_key()


async def test_revoking_twice_is_false_the_second_time(store: Store) -> None:
    await store.api_keys.add(make_key())
    assert await store.api_keys.revoke("key_1", at(30)) is True
    assert await store.api_keys.revoke("key_1", at(40)) is False
    assert await store.api_keys.revoke("unknown", at(40)) is False
    record = await store.api_keys.get("key_1")
    assert record is not None
    assert record.revoked_at == at(30)
    assert not record.is_active


async def test_revoke_refuses_naive_time(store: Store) -> None:
    await store.api_keys.add(make_key())
    with pytest.raises(ValueError, match="naive"):
        await store.api_keys.revoke("key_1", datetime(2025, 1, 1))  # noqa: DTZ001
    record = await store.api_keys.get("key_1")
    assert record is not None
    assert record.is_active
    assert record.created_at.tzinfo is UTC


# --- TOTP enrollment --------------------------------------------------------------------------


async def test_totp_is_unenrolled_until_a_seed_is_stored(store: Store) -> None:
    assert await store.totp.get() is None
    assert await store.totp.claim_step(1) is False
    await store.totp.enroll(SEALED, T0)
    assert await store.totp.get() == TotpEnrollment(
        sealed_seed=SEALED, enrolled_at=T0, last_used_step=NO_STEP_USED
    )


async def test_claim_step_only_moves_forward(store: Store) -> None:
    await store.totp.enroll(SEALED, T0)
    assert await store.totp.claim_step(100) is True
    assert await store.totp.claim_step(100) is False
    assert await store.totp.claim_step(99) is False
    assert await store.totp.claim_step(101) is True
    enrollment = await store.totp.get()
    assert enrollment is not None
    assert enrollment.last_used_step == 101


async def test_concurrent_claims_of_one_step_have_one_winner(store: Store) -> None:
    await store.totp.enroll(SEALED, T0)
    won = await asyncio.gather(*(store.totp.claim_step(7) for _ in range(10)))
    assert sorted(won) == [False] * 9 + [True]


async def test_enrolling_again_replaces_the_seed_and_forgets_used_steps(store: Store) -> None:
    await store.totp.enroll(SEALED, T0)
    assert await store.totp.claim_step(500) is True
    local = at(60).astimezone(timezone(timedelta(hours=-5)))
    await store.totp.enroll(b"another sealed seed", local)
    enrollment = await store.totp.get()
    assert enrollment == TotpEnrollment(
        sealed_seed=b"another sealed seed", enrolled_at=at(60), last_used_step=NO_STEP_USED
    )
    assert enrollment.enrolled_at.tzinfo is UTC
    assert await store.totp.claim_step(3) is True


async def test_totp_enroll_refuses_naive_time(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.totp.enroll(SEALED, datetime(2025, 1, 1))  # noqa: DTZ001
    assert await store.totp.get() is None
