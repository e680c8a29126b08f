"""MAC identity: every accepted spelling parses to one canonical form; the rest is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import is_mac, parse_mac

CANONICAL = "AA:BB:CC:0D:E1:F9"


@pytest.mark.parametrize(
    "text",
    [
        "AA:BB:CC:0D:E1:F9",
        "aa:bb:cc:0d:e1:f9",
        "Aa:bB:cC:0d:E1:f9",
        "AA-BB-CC-0D-E1-F9",
        "aa-bb-cc-0d-e1-f9",
        "AABBCC0DE1F9",
        "aabbcc0de1f9",
        "  aa:bb:cc:0d:e1:f9\n",
    ],
)
def test_accepted_spellings_parse_to_the_canonical_form(text: str) -> None:
    assert parse_mac(text) == CANONICAL
    assert is_mac(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("AA:BB-CC:0D:E1:F9", id="mixed-separators"),
        pytest.param("AA-BB:CC-0D:E1-F9", id="alternating-separators"),
        pytest.param("AA:BB:CC:0D:E1F9", id="one-separator-missing"),
        pytest.param("AABB:CC0D:E1F9", id="grouped-by-four"),
        pytest.param("AA.BB.CC.0D.E1.F9", id="dot-separator"),
        pytest.param("AA BB CC 0D E1 F9", id="space-separator"),
        pytest.param("AA:BB:CC:0D:E1", id="five-pairs"),
        pytest.param("AA:BB:CC:0D:E1:F9:00", id="seven-pairs"),
        pytest.param("AABBCC0DE1F", id="eleven-digits"),
        pytest.param("AABBCC0DE1F90", id="thirteen-digits"),
        pytest.param("A:BB:CC:0D:E1:F9", id="short-pair"),
        pytest.param("GG:BB:CC:0D:E1:F9", id="non-hex"),
        pytest.param("AA:BB:CC:0D:E1:F9:", id="trailing-separator"),
        pytest.param(":AA:BB:CC:0D:E1:F9", id="leading-separator"),
        pytest.param("AA::BB:CC:0D:E1:F9", id="doubled-separator"),
        pytest.param("", id="empty"),
        pytest.param("AA:BB:CC:0D:E1:F9\nAA:BB:CC:0D:E1:F9", id="two-lines"),
        pytest.param("\uff21\uff21:BB:CC:0D:E1:F9", id="fullwidth-letters"),
        pytest.param("\u0661\u0662:BB:CC:0D:E1:F9", id="arabic-indic-digits"),
    ],
)
def test_malformed_macs_are_refused_with_details(text: str) -> None:
    with pytest.raises(OrchestratorError) as caught:
        parse_mac(text)
    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    assert isinstance(caught.value.details, str)
    assert caught.value.details
    assert not is_mac(text)


def test_details_quote_the_input_but_stay_short() -> None:
    with pytest.raises(OrchestratorError) as caught:
        parse_mac("ZZ" * 100)
    details = caught.value.details
    assert details is not None
    assert "ZZZZ" in details
    assert len(details) < 150


def _spellings(raw: bytes) -> list[str]:
    pairs = [f"{b:02x}" for b in raw]
    lower = [":".join(pairs), "-".join(pairs), "".join(pairs)]
    return lower + [s.upper() for s in lower]


@settings(max_examples=200, database=None)
@given(raw=st.binary(min_size=6, max_size=6), case_mask=st.integers(0, 2**12 - 1))
def test_every_spelling_of_six_bytes_parses_to_one_canonical_value(
    raw: bytes, case_mask: int
) -> None:
    expected = ":".join(f"{b:02X}" for b in raw)
    spellings = _spellings(raw)
    # And a random mix of cases within one spelling.
    digits = raw.hex()
    mixed = "".join(c.upper() if case_mask >> i & 1 else c for i, c in enumerate(digits))
    spellings.append(mixed)

    assert {parse_mac(s) for s in spellings} == {expected}
    canonical = parse_mac(spellings[0])
    assert parse_mac(canonical) == canonical


@settings(max_examples=200, database=None)
@given(text=st.text(max_size=20))
def test_parse_mac_either_refuses_or_yields_a_canonical_fixed_point(text: str) -> None:
    if not is_mac(text):
        with pytest.raises(OrchestratorError) as caught:
            parse_mac(text)
        assert caught.value.code is ErrorCode.VALIDATION_FAILED
        return
    parsed = parse_mac(text)
    assert len(parsed) == 17
    assert parsed.upper() == parsed
    assert parsed.split(":") == [parsed[i : i + 2] for i in range(0, 17, 3)]
    assert parse_mac(parsed) == parsed
