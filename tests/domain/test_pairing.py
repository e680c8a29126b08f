"""Pair-by-code: an unambiguous alphabet, injected randomness, a strict expiry boundary."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.pairing import (
    PAIRING_ALPHABET,
    PAIRING_CODE_LENGTH,
    PAIRING_TTL,
    is_pairing_code,
    make_pairing_code,
    new_pairing_session,
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
