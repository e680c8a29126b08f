"""Timestamp and row encoding shared by both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from orchestrator.domain.allowlist import AllowlistEntry
from orchestrator.ports.storage import StorageError
from orchestrator.storage.codec import decode_json, decode_row, encode_time, to_utc


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "2025-01-02T03:04:05.000000Z"),
        (datetime(2025, 1, 2, 3, 4, 5, 7, tzinfo=UTC), "2025-01-02T03:04:05.000007Z"),
        (
            datetime(2025, 1, 2, 1, 4, 5, 999999, tzinfo=timezone(timedelta(hours=-2))),
            "2025-01-02T03:04:05.999999Z",
        ),
        (datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC), "0999-12-31T23:59:59.000000Z"),
    ],
)
def test_times_encode_fixed_width_and_decode_exactly(moment: datetime, text: str) -> None:
    assert encode_time(moment) == text
    decoded = msgspec.convert(text, datetime)
    assert decoded == moment
    assert decoded.tzinfo is UTC


def test_text_order_is_time_order() -> None:
    base = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    moments = [base + timedelta(microseconds=n) for n in (0, 1, 10, 999_999, 1_000_000)]
    texts = [encode_time(m) for m in moments]
    assert texts == sorted(texts)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_utc(datetime(2025, 1, 2))  # noqa: DTZ001


def test_undecodable_values_are_storage_errors() -> None:
    with pytest.raises(StorageError, match="AllowlistEntry does not decode"):
        decode_row(AllowlistEntry, {"mac": "AA", "added_at": "yesterday"})
    with pytest.raises(StorageError, match="JSON does not decode"):
        decode_json("{not json")
