"""StepUp with an injected clock: codes accepted once (also under concurrency), expired versus
wrong, the failure limit, tokens, the gate's decisions, and no secret in the audit trail."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from orchestrator.batch.audit import Auditor
from orchestrator.domain.audit import AuditEntry, Outcome
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.totp import GatedOperation
from orchestrator.ports.storage import AuditQuery, Store
from orchestrator.security.secretbox import SecretBox
from orchestrator.security.stepup import (
    AUDIT_GATE,
    AUDIT_STEP_UP,
    DEFAULT_GATED,
    SEAL_CONTEXT,
    SecuritySettings,
    StepUp,
)
from orchestrator.security.totp import code_at, time_step
from orchestrator.security.totp_enrollment import enroll_totp
from orchestrator.storage import MemoryStore, open_sqlite_store
from tests.fakes import T0, FakeClock

ALICE, BOB = "key_alice", "key_bob"
START = GatedOperation.SESSION_START


class Rig:
    """A StepUp over a store, with its clock, sealer and an enrolled seed."""

    def __init__(self, store: Store, clock: FakeClock, settings: SecuritySettings) -> None:
        self.store = store
        self.clock = clock
        self.box = SecretBox(bytes(range(32)))
        self.step_up = StepUp(
            store.totp, self.box, Auditor(store.audit, clock.now), clock.now, settings
        )
        self.seed = ""

    async def enroll(self) -> str:
        self.seed = await self.step_up.enroll()
        return self.seed

    def code(self, offset: int = 0) -> str:
        """The current code (or one `offset` steps away)."""
        return code_at(self.seed, time_step(self.clock.now()) + offset)

    def wrong_code(self) -> str:
        near = {self.code(offset) for offset in range(-12, 3)}
        return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)

    async def audit(self) -> list[AuditEntry]:
        return list(reversed(await self.store.audit.page(AuditQuery(limit=1000))))

    async def refused(self, actor: str, code: str) -> OrchestratorError:
        with pytest.raises(OrchestratorError) as info:
            await self.step_up.verify_code(actor, code)
        return info.value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def rig(clock: FakeClock) -> Rig:
    rig = Rig(MemoryStore(), clock, SecuritySettings())
    await rig.enroll()
    return rig


@pytest.fixture
async def sqlite_rig(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Rig]:
    async with open_sqlite_store(tmp_path / "db") as store:
        rig = Rig(store, clock, SecuritySettings())
        await rig.enroll()
        yield rig


# --- enrollment -------------------------------------------------------------------------------


async def test_the_seed_is_stored_sealed(rig: Rig) -> None:
    enrollment = await rig.store.totp.get()
    assert enrollment is not None
    assert rig.seed.encode() not in enrollment.sealed_seed
    assert rig.box.open(enrollment.sealed_seed, SEAL_CONTEXT) == rig.seed
    assert enrollment.enrolled_at == T0
    assert await rig.step_up.is_enrolled()


async def test_nothing_is_enrolled_at_first(clock: FakeClock) -> None:
    rig = Rig(MemoryStore(), clock, SecuritySettings())
    assert not await rig.step_up.is_enrolled()
    error = await rig.refused(ALICE, "123456")
    assert error.code is ErrorCode.UNAUTHORIZED
    assert "orchestrator totp enroll" in error.message


# --- codes ------------------------------------------------------------------------------------


async def test_a_code_is_accepted_once(rig: Rig) -> None:
    code = rig.code()
    await rig.step_up.verify_code(ALICE, code)
    error = await rig.refused(ALICE, code)
    assert error.code is ErrorCode.TOTP_INVALID
    assert "already used" in error.message
    # Another API key cannot use it either: the step is spent for the appliance.
    assert (await rig.refused(BOB, code)).code is ErrorCode.TOTP_INVALID


async def test_the_previous_code_is_refused_once_a_newer_one_was_used(rig: Rig) -> None:
    await rig.clock.advance(5)
    previous = rig.code(-1)
    await rig.step_up.verify_code(ALICE, rig.code())
    error = await rig.refused(ALICE, previous)
    assert error.code is ErrorCode.TOTP_INVALID
    assert "already used" in error.message


async def test_the_next_step_brings_a_new_code(rig: Rig) -> None:
    await rig.step_up.verify_code(ALICE, rig.code())
    await rig.clock.advance(30)
    await rig.step_up.verify_code(ALICE, rig.code())


async def test_codes_one_step_either_side_are_accepted(rig: Rig) -> None:
    await rig.step_up.verify_code(ALICE, rig.code(-1))
    await rig.step_up.verify_code(ALICE, rig.code(0))
    await rig.step_up.verify_code(ALICE, rig.code(1))


async def test_an_old_code_is_expired_and_a_wrong_one_invalid(rig: Rig) -> None:
    code = rig.code()
    await rig.clock.advance(90)
    expired = await rig.refused(ALICE, code)
    assert expired.code is ErrorCode.TOTP_EXPIRED
    assert "expired" in expired.message
    wrong = await rig.refused(ALICE, rig.wrong_code())
    assert wrong.code is ErrorCode.TOTP_INVALID
    assert "wrong" in wrong.message


async def test_a_code_after_the_window_is_no_longer_accepted(rig: Rig) -> None:
    code = rig.code()
    await rig.clock.advance(59)  # still the previous step
    await rig.clock.advance(1)  # two steps on: expired
    assert (await rig.refused(ALICE, code)).code is ErrorCode.TOTP_EXPIRED


async def test_two_concurrent_requests_with_one_code_have_one_winner(sqlite_rig: Rig) -> None:
    code = sqlite_rig.code()
    results = await asyncio.gather(
        sqlite_rig.step_up.verify_code(ALICE, code),
        sqlite_rig.step_up.verify_code(BOB, code),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, OrchestratorError)]
    assert results.count(None) == 1
    assert len(errors) == 1
    assert errors[0].code is ErrorCode.TOTP_INVALID
    assert "already used" in errors[0].message
    outcomes = sorted(e.outcome for e in await sqlite_rig.audit() if e.action == AUDIT_STEP_UP)
    assert outcomes == [Outcome.DENIED, Outcome.OK]


async def test_many_concurrent_requests_with_one_code_have_one_winner(sqlite_rig: Rig) -> None:
    code = sqlite_rig.code()
    actors = [f"key_{n}" for n in range(8)]
    results = await asyncio.gather(
        *(sqlite_rig.step_up.verify_code(actor, code) for actor in actors),
        return_exceptions=True,
    )
    assert results.count(None) == 1
    assert all(isinstance(r, OrchestratorError) for r in results if r is not None)


# --- failure limit ----------------------------------------------------------------------------


async def test_five_failures_in_the_window_rate_limit_until_the_oldest_leaves(rig: Rig) -> None:
    for _ in range(5):
        assert (await rig.refused(ALICE, rig.wrong_code())).code is ErrorCode.TOTP_INVALID
        await rig.clock.advance(10)
    # Failures at T0, +10 ... +40; now +50: the first leaves the window at +300.
    limited = await rig.refused(ALICE, rig.code())
    assert limited.code is ErrorCode.RATE_LIMITED
    assert limited.retry_after_s == 250
    assert "250 s" in limited.message
    await rig.clock.advance(249)
    assert (await rig.refused(ALICE, rig.code())).retry_after_s == 1
    # Refusals while limited are not failures: the window is not extended by them.
    await rig.clock.advance(1)
    await rig.step_up.verify_code(ALICE, rig.code())


async def test_the_limit_counts_expired_and_replayed_codes_too(rig: Rig) -> None:
    used = rig.code()
    await rig.step_up.verify_code(ALICE, used)
    for _ in range(2):
        await rig.refused(ALICE, used)
    await rig.clock.advance(120)
    for _ in range(3):
        assert (await rig.refused(ALICE, used)).code is ErrorCode.TOTP_EXPIRED
    limited = await rig.refused(ALICE, rig.code())
    assert limited.code is ErrorCode.RATE_LIMITED
    assert limited.retry_after_s == 300 - 120


async def test_the_limit_is_per_api_key(rig: Rig) -> None:
    for _ in range(5):
        await rig.refused(ALICE, rig.wrong_code())
    assert (await rig.refused(ALICE, rig.code())).code is ErrorCode.RATE_LIMITED
    await rig.step_up.verify_code(BOB, rig.code())


async def test_a_success_clears_the_failures(rig: Rig) -> None:
    for _ in range(4):
        await rig.refused(ALICE, rig.wrong_code())
    await rig.step_up.verify_code(ALICE, rig.code())
    for _ in range(4):
        assert (await rig.refused(ALICE, rig.wrong_code())).code is ErrorCode.TOTP_INVALID


async def test_concurrent_wrong_codes_cannot_slip_past_the_limit(sqlite_rig: Rig) -> None:
    wrong = sqlite_rig.wrong_code()
    results = await asyncio.gather(
        *(sqlite_rig.step_up.verify_code(ALICE, wrong) for _ in range(12)),
        return_exceptions=True,
    )
    codes = [r.code for r in results if isinstance(r, OrchestratorError)]
    assert sorted(codes) == sorted([ErrorCode.TOTP_INVALID] * 5 + [ErrorCode.RATE_LIMITED] * 7)


async def test_the_limit_and_window_are_configuration(clock: FakeClock) -> None:
    rig = Rig(MemoryStore(), clock, SecuritySettings(max_failures=2, failure_window_s=60))
    await rig.enroll()
    await rig.refused(ALICE, rig.wrong_code())
    await rig.clock.advance(5)
    await rig.refused(ALICE, rig.wrong_code())
    assert (await rig.refused(ALICE, rig.code())).retry_after_s == 55


# --- tokens -----------------------------------------------------------------------------------


async def test_a_token_works_until_it_expires(rig: Rig) -> None:
    issued = await rig.step_up.step_up(ALICE, rig.code())
    assert issued.token.startswith("su_")
    assert issued.expires_at == T0 + timedelta(seconds=600)
    assert issued.token not in repr(issued)
    await rig.step_up.check(ALICE, START, code=None, token=issued.token)
    await rig.clock.advance(599)
    await rig.step_up.check(ALICE, START, code=None, token=issued.token)
    await rig.clock.advance(1)
    with pytest.raises(OrchestratorError) as info:
        await rig.step_up.check(ALICE, START, code=None, token=issued.token)
    assert info.value.code is ErrorCode.UNAUTHORIZED
    assert "expired" in info.value.message


async def test_a_token_is_bound_to_its_api_key(rig: Rig) -> None:
    issued = await rig.step_up.step_up(ALICE, rig.code())
    assert await rig.step_up.token_is_valid(ALICE, issued.token)
    assert not await rig.step_up.token_is_valid(BOB, issued.token)
    with pytest.raises(OrchestratorError) as info:
        await rig.step_up.check(BOB, START, code=None, token=issued.token)
    assert info.value.code is ErrorCode.UNAUTHORIZED


async def test_a_made_up_token_is_refused(rig: Rig) -> None:
    assert not await rig.step_up.token_is_valid(ALICE, "su_" + "A" * 43)
    with pytest.raises(OrchestratorError) as info:
        await rig.step_up.check(ALICE, START, code=None, token="su_guess")
    assert info.value.code is ErrorCode.UNAUTHORIZED


async def test_a_new_seed_ends_the_old_tokens(rig: Rig, tmp_path: Path) -> None:
    issued = await rig.step_up.step_up(ALICE, rig.code())
    await rig.clock.advance(1)
    # As `orchestrator totp enroll --replace` does from another process.
    await enroll_totp(
        rig.store,
        rig.box,
        issuer="Test",
        account="pi",
        out=io.StringIO(),
        clock=rig.clock.now,
        replace=True,
    )
    assert not await rig.step_up.token_is_valid(ALICE, issued.token)


async def test_the_token_lifetime_is_configuration(clock: FakeClock) -> None:
    rig = Rig(MemoryStore(), clock, SecuritySettings(step_up_token_ttl_s=60))
    await rig.enroll()
    issued = await rig.step_up.step_up(ALICE, rig.code())
    await rig.clock.advance(60)
    assert not await rig.step_up.token_is_valid(ALICE, issued.token)
    assert rig.step_up.token_ttl_s == 60


async def test_a_refused_code_issues_no_token(rig: Rig) -> None:
    with pytest.raises(OrchestratorError):
        await rig.step_up.step_up(ALICE, rig.wrong_code())


# --- the gate's check -------------------------------------------------------------------------


async def test_check_without_code_or_token_names_both_headers(rig: Rig) -> None:
    with pytest.raises(OrchestratorError) as info:
        await rig.step_up.check(ALICE, START, code=None, token=None)
    assert info.value.code is ErrorCode.UNAUTHORIZED
    assert "X-TOTP-Code" in info.value.message
    assert "X-Step-Up-Token" in info.value.message


async def test_check_accepts_a_code_once(rig: Rig) -> None:
    code = rig.code()
    await rig.step_up.check(ALICE, START, code=code, token=None)
    with pytest.raises(OrchestratorError) as info:
        await rig.step_up.check(ALICE, START, code=code, token=None)
    assert info.value.code is ErrorCode.TOTP_INVALID


async def test_check_falls_back_to_the_code_when_the_token_expired(rig: Rig) -> None:
    issued = await rig.step_up.step_up(ALICE, rig.code())
    await rig.clock.advance(600)
    await rig.step_up.check(ALICE, START, code=rig.code(), token=issued.token)


async def test_a_valid_token_spends_no_code(rig: Rig) -> None:
    issued = await rig.step_up.step_up(ALICE, rig.code())
    await rig.clock.advance(30)
    code = rig.code()
    await rig.step_up.check(ALICE, START, code=code, token=issued.token)
    await rig.step_up.verify_code(ALICE, code)


async def test_check_without_enrollment_says_how_to_enroll_or_ungate(clock: FakeClock) -> None:
    rig = Rig(MemoryStore(), clock, SecuritySettings())
    with pytest.raises(OrchestratorError) as info:
        await rig.step_up.check(ALICE, START, code="123456", token=None)
    assert info.value.code is ErrorCode.UNAUTHORIZED
    assert "orchestrator totp enroll" in info.value.message
    assert "security.totp_required_for" in info.value.message


def test_the_default_gates_the_four_sensitive_operations() -> None:
    assert SecuritySettings().totp_required_for == DEFAULT_GATED
    assert sorted(DEFAULT_GATED) == [
        "allowlist.write",
        "history.clear",
        "session.discard",
        "session.start",
    ]


async def test_is_gated_follows_the_configuration(clock: FakeClock) -> None:
    only = SecuritySettings(totp_required_for=frozenset({GatedOperation.HISTORY_CLEAR}))
    rig = Rig(MemoryStore(), clock, only)
    assert rig.step_up.is_gated(GatedOperation.HISTORY_CLEAR)
    assert not rig.step_up.is_gated(START)
    assert rig.step_up.required_for == {GatedOperation.HISTORY_CLEAR}


def test_settings_read_operation_names_and_refuse_unknown_ones() -> None:
    settings = msgspec.convert(
        {"totp_required_for": ["session.start", "history.clear"], "max_failures": "3"},
        SecuritySettings,
        strict=False,
    )
    assert settings.totp_required_for == {START, GatedOperation.HISTORY_CLEAR}
    assert settings.max_failures == 3
    assert msgspec.convert({"totp_required_for": []}, SecuritySettings).totp_required_for == set()
    with pytest.raises(msgspec.ValidationError, match=r"session\.stat"):
        msgspec.convert({"totp_required_for": ["session.stat"]}, SecuritySettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"totp_issuer": "a:b"}, SecuritySettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"unknown": 1}, SecuritySettings)


# --- audit ------------------------------------------------------------------------------------


async def test_every_outcome_is_audited_without_a_secret(rig: Rig) -> None:
    code = rig.code()
    issued = await rig.step_up.step_up(ALICE, code)
    await rig.refused(ALICE, code)
    wrong = rig.wrong_code()
    for _ in range(4):
        await rig.refused(ALICE, wrong)
    await rig.refused(ALICE, rig.code())  # rate limited: the replay was the first failure
    with pytest.raises(OrchestratorError):
        await rig.step_up.check(BOB, START, code=None, token=None)
    with pytest.raises(OrchestratorError):
        await rig.step_up.check(BOB, START, code=None, token=issued.token)

    entries = await rig.audit()
    summary = [(e.action, e.outcome, e.actor, e.detail) for e in entries[1:]]
    assert summary == [
        (AUDIT_STEP_UP, Outcome.OK, ALICE, "step-up: ok"),
        (AUDIT_STEP_UP, Outcome.DENIED, ALICE, "step-up: replay code"),
        *[(AUDIT_STEP_UP, Outcome.DENIED, ALICE, "step-up: invalid code")] * 4,
        (AUDIT_STEP_UP, Outcome.DENIED, ALICE, "step-up: rate limited"),
        (AUDIT_GATE, Outcome.DENIED, BOB, "session.start: no TOTP code or step-up token"),
        (AUDIT_GATE, Outcome.DENIED, BOB, "session.start: invalid or expired step-up token"),
    ]
    dumped = msgspec.json.encode(entries).decode()
    for secret in (rig.seed, code, wrong, issued.token, issued.token.removeprefix("su_")):
        assert secret not in dumped


# --- enrollment from the command line ---------------------------------------------------------


async def test_enroll_totp_prints_the_uri_and_a_qr_code(clock: FakeClock) -> None:
    store = MemoryStore()
    box = SecretBox(bytes(32))
    out = io.StringIO()
    enrolled = await enroll_totp(
        store, box, issuer="Delicasa Orchestrator", account="pi-7", out=out, clock=clock.now
    )
    assert enrolled
    text = out.getvalue()
    uri = next(line for line in text.splitlines() if line.startswith("otpauth://"))
    assert uri.startswith("otpauth://totp/Delicasa%20Orchestrator:pi-7?")
    seed = parse_qs(urlsplit(uri).query)["secret"][0]
    enrollment = await store.totp.get()
    assert enrollment is not None
    assert box.open(enrollment.sealed_seed, SEAL_CONTEXT) == seed
    assert seed.encode() not in enrollment.sealed_seed
    assert "\u2588" in text  # the QR code, drawn with block characters
    assert "\x1b[" not in text  # and without escape sequences, so it survives a pipe
    entry = (await store.audit.page(AuditQuery()))[0]
    assert (entry.action, entry.actor, entry.detail) == (
        "auth.totp_enroll",
        "cli",
        "TOTP seed enrolled",
    )
    assert seed not in msgspec.json.encode(entry).decode()


async def test_enroll_totp_keeps_an_existing_seed_unless_told_to_replace(
    clock: FakeClock,
) -> None:
    store = MemoryStore()
    box = SecretBox(bytes(32))
    assert await enroll_totp(
        store, box, issuer="I", account="a", out=io.StringIO(), clock=clock.now
    )
    first = await store.totp.get()
    out = io.StringIO()
    assert not await enroll_totp(store, box, issuer="I", account="a", out=out, clock=clock.now)
    assert out.getvalue() == ""
    assert await store.totp.get() == first
    await clock.advance(1)
    assert await enroll_totp(
        store, box, issuer="I", account="a", out=io.StringIO(), clock=clock.now, replace=True
    )
    second = await store.totp.get()
    assert second is not None
    assert first is not None
    assert second.sealed_seed != first.sealed_seed
    assert (await store.audit.page(AuditQuery()))[0].detail == "TOTP seed replaced"
