"""Pair-by-code: an unambiguous alphabet, injected randomness, a strict expiry boundary, claims,
and the limit on wrong codes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.pairing import (
    PAIRING_ALPHABET,
    PAIRING_CODE_LENGTH,
    PAIRING_TTL,
    FailureWindow,
    GuessLimiter,
    claim_url,
    code_hint,
    is_pairing_code,
    make_pairing_code,
    new_pairing_session,
    parse_pairing_code,
)
from tests.domain.samples import T0

LOOK_ALIKES = "0O1IL2Z5S8B"


@pytest.mark.parametrize("char", list(LOOK_ALIKES))
def test_the_alphabet_has_no_look_alikes(char: str) -> None:
    assert char not in PAIRING_ALPHABET


def test_the_alphabet_is_upper_case_alphanumerics_without_repeats() -> None:
    assert PAIRING_ALPHABET.isalnum()
    assert PAIRING_ALPHABET.upper() == PAIRING_ALPHABET
    assert len(set(PAIRING_ALPHABET)) == len(PAIRING_ALPHABET)
    # Large enough that guessing a live code is hopeless: 25**6 is about 2.4e8.
    assert len(PAIRING_ALPHABET) ** PAIRING_CODE_LENGTH > 10**8


def test_make_pairing_code_draws_each_character_from_the_injected_chooser() -> None:
    offered: list[str] = []
    picks = iter("KM9X3T")

    def choose(alphabet: str) -> str:
        offered.append(alphabet)
        return next(picks)

    assert make_pairing_code(choose) == "KM9X3T"
    assert offered == [PAIRING_ALPHABET] * PAIRING_CODE_LENGTH == [PAIRING_ALPHABET] * 6


def test_a_constant_chooser_gives_a_constant_code() -> None:
    assert make_pairing_code(lambda alphabet: alphabet[-1]) == "YYYYYY"


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("KM9X3T", True),
        ("km9x3t", True),
        (" KM9X3T\n", True),
        ("KM9X3", False),
        ("KM9X3TT", False),
        ("KM9X3O", False),
        ("KM9X31", False),
        ("KM9 3T", False),
        ("", False),
    ],
)
def test_is_pairing_code(text: str, valid: bool) -> None:
    assert is_pairing_code(text) is valid


class TestExpiry:
    def test_a_new_session_lives_ten_minutes(self) -> None:
        session = new_pairing_session(
            code="KM9X3T", device_id="dev-1", device_ip="10.0.0.9", now=T0
        )
        assert timedelta(minutes=10) == PAIRING_TTL
        assert session.created_at == T0
        assert session.expires_at == T0 + timedelta(minutes=10)
        assert (session.pairing_code, session.device_id, session.device_ip) == (
            "KM9X3T",
            "dev-1",
            "10.0.0.9",
        )

    def test_a_code_is_valid_strictly_before_expires_at(self) -> None:
        session = new_pairing_session(
            code="KM9X3T", device_id="dev-1", device_ip="10.0.0.9", now=T0
        )
        assert not session.is_expired(T0)
        assert not session.is_expired(session.expires_at - timedelta(microseconds=1))
        assert session.is_expired(session.expires_at)
        assert session.is_expired(session.expires_at + timedelta(seconds=1))


@pytest.mark.parametrize(("text", "code"), [("KM9X3T", "KM9X3T"), (" km9x3t\n", "KM9X3T")])
def test_parse_pairing_code_canonicalises(text: str, code: str) -> None:
    assert parse_pairing_code(text) == code


@pytest.mark.parametrize("text", ["KM9X3", "KM9X30", "", "SECRET-GUESS-1"])
def test_parse_pairing_code_refuses_without_repeating_the_text(text: str) -> None:
    with pytest.raises(OrchestratorError) as caught:
        parse_pairing_code(text)
    error = caught.value
    assert error.code is ErrorCode.VALIDATION_FAILED
    assert error.details is not None
    assert PAIRING_ALPHABET in error.details
    if text:
        assert text not in f"{error.message} {error.details}"


def test_code_hint_shows_the_first_character_and_the_length_only() -> None:
    assert code_hint("KM9X3T") == "K*****"
    assert code_hint("") == ""


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://pi.local:8080", "http://pi.local:8080/console/pair?code=KM9X3T"),
        ("https://pi.example/ops/", "https://pi.example/ops/console/pair?code=KM9X3T"),
    ],
)
def test_claim_url(base: str, url: str) -> None:
    assert claim_url(base, "KM9X3T") == url


class TestClaims:
    SESSION = new_pairing_session(code="KM9X3T", device_id="dev-1", device_ip="10.0.0.9", now=T0)

    def test_a_new_session_is_live_until_it_expires(self) -> None:
        assert self.SESSION.is_live(T0)
        assert not self.SESSION.is_live(self.SESSION.expires_at)

    def test_a_claimed_session_is_not_live_and_belongs_to_its_claimant(self) -> None:
        later = T0 + timedelta(minutes=1)
        claimed = self.SESSION.claimed("key-a", later)
        assert (claimed.claimed_by, claimed.claimed_at) == ("key-a", later)
        assert not claimed.is_live(later)
        assert claimed.claimable_by("key-a", later)
        assert not claimed.claimable_by("key-b", later)

    def test_a_repeated_claim_keeps_the_first_claim_time(self) -> None:
        first = self.SESSION.claimed("key-a", T0 + timedelta(minutes=1))
        again = first.claimed("key-a", T0 + timedelta(minutes=2))
        assert again == first

    def test_nobody_claims_an_expired_session(self) -> None:
        assert not self.SESSION.claimable_by("key-a", self.SESSION.expires_at)


class TestFailureWindow:
    def test_full_at_the_limit_until_the_oldest_failure_ages_out(self) -> None:
        window = FailureWindow(3, timedelta(seconds=60))
        for offset in (0, 10, 20):
            assert window.retry_after(T0 + timedelta(seconds=offset)) is None
            window.add(T0 + timedelta(seconds=offset))
        assert window.retry_after(T0 + timedelta(seconds=20)) == 40
        assert window.retry_after(T0 + timedelta(seconds=59.5)) == 1
        assert window.retry_after(T0 + timedelta(seconds=60)) is None
        assert not window.is_empty
        assert window.retry_after(T0 + timedelta(seconds=80)) is None
        assert window.is_empty

    def test_memory_is_bounded_by_the_limit(self) -> None:
        window = FailureWindow(2, timedelta(seconds=60))
        for offset in range(100):
            window.add(T0 + timedelta(seconds=offset / 100))
        # Only the newest two (at 0.98 s and 0.99 s) are kept: the window reopens at 60.98 s.
        assert window.retry_after(T0 + timedelta(seconds=60.97)) == 1
        assert window.retry_after(T0 + timedelta(seconds=60.98)) is None

    @pytest.mark.parametrize(("limit", "seconds"), [(0, 60), (1, 0)])
    def test_refuses_a_useless_window(self, limit: int, seconds: int) -> None:
        with pytest.raises(ValueError, match="limit"):
            FailureWindow(limit, timedelta(seconds=seconds))


class TestGuessLimiter:
    @staticmethod
    def limiter() -> GuessLimiter:
        return GuessLimiter(
            per_claimant=2,
            per_claimant_window=timedelta(seconds=60),
            overall=5,
            overall_window=timedelta(seconds=600),
        )

    def test_each_claimant_has_its_own_limit(self) -> None:
        limiter = self.limiter()
        limiter.count_failure("a", T0)
        assert limiter.retry_after("a", T0) is None
        limiter.count_failure("a", T0)
        assert limiter.retry_after("a", T0) == 60
        assert limiter.retry_after("b", T0) is None
        assert limiter.retry_after("a", T0 + timedelta(seconds=60)) is None

    def test_all_claimants_together_have_a_limit(self) -> None:
        limiter = self.limiter()
        for claimant in ("a", "b", "c", "d", "e"):
            limiter.count_failure(claimant, T0)
        assert limiter.retry_after("f", T0) == 600
        assert limiter.retry_after("a", T0 + timedelta(seconds=599)) == 1
        assert limiter.retry_after("f", T0 + timedelta(seconds=600)) is None

    def test_the_longer_wait_wins(self) -> None:
        limiter = self.limiter()
        for claimant in ("a", "a", "b", "c", "d"):
            limiter.count_failure(claimant, T0)
        assert limiter.retry_after("a", T0 + timedelta(seconds=30)) == 570

    def test_a_forgiven_failure_no_longer_counts(self) -> None:
        limiter = self.limiter()
        limiter.count_failure("a", T0)
        limiter.count_failure("a", T0 + timedelta(seconds=1))
        assert limiter.retry_after("a", T0 + timedelta(seconds=1)) == 59
        limiter.forgive("a", T0 + timedelta(seconds=1))
        assert limiter.retry_after("a", T0 + timedelta(seconds=1)) is None
        limiter.forgive("a", T0)
        limiter.forgive("a", T0)  # nothing left to forgive: harmless
        limiter.forgive("nobody", T0)
        for claimant in ("b", "c", "d", "e"):
            limiter.count_failure(claimant, T0)
        assert limiter.retry_after("f", T0) is None
