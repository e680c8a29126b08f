"""RFC 6238 code classification: pure functions of (seed, code, now, last used step)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from orchestrator.security.totp import (
    STEP_S,
    Classification,
    Verdict,
    classify,
    code_at,
    new_seed,
    provisioning_uri,
    time_step,
)

# RFC 6238 appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
RFC_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
NOW = datetime.fromtimestamp(2_000_000_000, UTC)
STEP = time_step(NOW)


def code(offset: int) -> str:
    """The RFC seed's code `offset` steps away from NOW."""
    return code_at(RFC_SEED, STEP + offset)


def wrong_code() -> str:
    """Six digits that are not the code of any step from 20 back to 5 ahead."""
    near = {code(offset) for offset in range(-20, 6)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in near)


@pytest.mark.parametrize(
    ("unix_time", "expected"),
    [
        # RFC 6238 appendix B's 8-digit values; a 6-digit code is their last six digits.
        (59, "287082"),
        (1_111_111_109, "081804"),
        (1_111_111_111, "050471"),
        (1_234_567_890, "005924"),
        (2_000_000_000, "279037"),
    ],
)
def test_codes_match_the_rfc_6238_vectors(unix_time: int, expected: str) -> None:
    assert code_at(RFC_SEED, time_step(datetime.fromtimestamp(unix_time, UTC))) == expected


def test_time_steps_are_30_seconds_from_the_epoch() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert time_step(epoch + timedelta(seconds=29.999)) == 0
    assert time_step(epoch + timedelta(seconds=30)) == 1
    assert time_step(datetime.fromtimestamp(59, UTC)) == 1
    assert STEP_S == 30


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        time_step(datetime(2025, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_within_one_step_are_accepted_with_their_step(offset: int) -> None:
    assert classify(RFC_SEED, code(offset), NOW, -1) == Classification(Verdict.OK, STEP + offset)


@pytest.mark.parametrize("offset", [-2, -5, -10])
def test_older_right_codes_are_expired(offset: int) -> None:
    assert classify(RFC_SEED, code(offset), NOW, -1) == Classification(
        Verdict.EXPIRED, STEP + offset
    )


@pytest.mark.parametrize("offset", [-11, -15, 2, 3])
def test_codes_far_from_now_are_invalid(offset: int) -> None:
    assert classify(RFC_SEED, code(offset), NOW, -1) == Classification(Verdict.INVALID)


def test_the_window_moves_with_the_clock_at_step_boundaries() -> None:
    start = datetime.fromtimestamp(STEP * STEP_S, UTC)
    last_second = start + timedelta(seconds=STEP_S - 0.001)
    # The next step's code is accepted ahead of time (phone clock fast) ...
    assert classify(RFC_SEED, code(1), last_second, -1).verdict is Verdict.OK
    assert classify(RFC_SEED, code(2), last_second, -1).verdict is Verdict.INVALID
    # ... and one step later the code two steps back has just expired.
    assert classify(RFC_SEED, code(-1), start, -1).verdict is Verdict.OK
    assert classify(RFC_SEED, code(-1), start + timedelta(seconds=STEP_S), -1).verdict is (
        Verdict.EXPIRED
    )
    assert classify(RFC_SEED, code(2), start + timedelta(seconds=STEP_S), -1).verdict is Verdict.OK


def test_a_used_step_and_older_ones_are_replays() -> None:
    assert classify(RFC_SEED, code(0), NOW, STEP) == Classification(Verdict.REPLAY, STEP)
    assert classify(RFC_SEED, code(-1), NOW, STEP) == Classification(Verdict.REPLAY, STEP - 1)
    assert classify(RFC_SEED, code(0), NOW, STEP + 1) == Classification(Verdict.REPLAY, STEP)
    assert classify(RFC_SEED, code(1), NOW, STEP) == Classification(Verdict.OK, STEP + 1)


def test_an_expired_code_is_expired_even_if_its_step_was_used() -> None:
    assert classify(RFC_SEED, code(-3), NOW, STEP).verdict is Verdict.EXPIRED


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "12345",
        "1234567",
        "abcdef",
        "\uff12\uff17\uff19\uff10\uff13\uff17",  # full-width digits
        "279037 1",
        "-27903",
    ],
)
def test_malformed_codes_are_invalid(presented: str) -> None:
    assert classify(RFC_SEED, presented, NOW, -1) == Classification(Verdict.INVALID)


def test_a_wrong_code_is_invalid() -> None:
    assert classify(RFC_SEED, wrong_code(), NOW, -1) == Classification(Verdict.INVALID)


def test_spaces_inside_a_code_are_ignored() -> None:
    spaced = f" {code(0)[:3]} {code(0)[3:]} "
    assert classify(RFC_SEED, spaced, NOW, -1) == Classification(Verdict.OK, STEP)


def test_another_seeds_code_is_invalid() -> None:
    other = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    assert code_at(other, STEP) not in {code(offset) for offset in range(-10, 2)}
    assert classify(RFC_SEED, code_at(other, STEP), NOW, -1) == Classification(Verdict.INVALID)


def test_new_seeds_are_random_160_bit_base32() -> None:
    seeds = {new_seed() for _ in range(20)}
    assert len(seeds) == 20
    for seed in seeds:
        assert len(seed) == 32
        assert set(seed) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def test_codes_agree_with_pyotp_verify_over_its_window() -> None:
    totp = pyotp.TOTP(RFC_SEED)
    for offset in range(-3, 4):
        accepted = classify(RFC_SEED, code(offset), NOW, -1).verdict is Verdict.OK
        assert accepted == totp.verify(code(offset), for_time=NOW, valid_window=1)


def test_the_provisioning_uri_names_issuer_account_and_parameters() -> None:
    uri = provisioning_uri(RFC_SEED, account="pi-7", issuer="Delicasa Orchestrator")
    assert uri.startswith("otpauth://totp/Delicasa%20Orchestrator:pi-7?")
    assert f"secret={RFC_SEED}" in uri
    assert "issuer=Delicasa%20Orchestrator" in uri
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.digits == 6
    assert parsed.interval == 30
    assert parsed.at(NOW) == code(0)
