"""How domain values become column values and back: timestamps and row decoding."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from orchestrator.ports.storage import StorageError

T = TypeVar("T")


def to_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is refused because its instant is unknown."""
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} cannot be stored: give it a tz")
    return moment.astimezone(UTC)


def encode_time(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).

    Always six fraction digits and a four-digit year, so text order is time order and SQL can
    compare the column with `<`.
    """
    utc = to_utc(moment)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}Z"
    )


def encode_optional_time(moment: datetime | None) -> str | None:
    """`encode_time`, passing None through."""
    return None if moment is None else encode_time(moment)


def decode_row(kind: type[T], fields: Mapping[str, Any]) -> T:
    """Build a domain value from column values (timestamps as text are parsed to UTC).

    A row that does not fit the type means the file was damaged or written by other code.
    """
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        raise StorageError(f"stored {kind.__name__} does not decode: {exc}") from exc


def decode_json(text: str | bytes) -> Any:
    """A stored JSON column as builtins, for `decode_row` to type."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise StorageError(f"stored JSON does not decode: {exc}") from exc
