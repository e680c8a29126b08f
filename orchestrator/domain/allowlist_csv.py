"""The allowlist as a CSV file (`mac,description,container_id`), as operators keep it in a
spreadsheet next to the boxes of devices.

A header row is optional; with one, columns may come in any order. Blank lines and lines
starting with `#` are skipped. The whole file is checked before anything is imported: an
import either takes every row or none, and names every bad line.
"""

from __future__ import annotations

import csv

import msgspec

from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac, parse_mac

COLUMNS = ("mac", "description", "container_id")
MAX_ROWS = 10_000
_SHOWN_ERRORS = 10


class CsvEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One row: a MAC and what the operator wrote about it."""

    mac: Mac
    description: str | None = None
    container_id: str | None = None


def parse_allowlist_csv(text: str) -> list[CsvEntry]:
    """Every row of `text`, or VALIDATION_FAILED naming the bad lines."""
    rows = [
        (number, cells)
        for number, cells in enumerate(csv.reader(text.removeprefix("\ufeff").splitlines()), 1)
        if cells and any(c.strip() for c in cells) and not cells[0].lstrip().startswith("#")
    ]
    columns = list(COLUMNS)
    if rows and "mac" in {cell.strip().lower() for cell in rows[0][1]}:
        _, header = rows.pop(0)
        columns = [name.strip().lower() for name in header]
        unknown = [name for name in columns if name not in COLUMNS]
        if unknown or len(set(columns)) != len(columns):
            raise OrchestratorError(
                ErrorCode.VALIDATION_FAILED,
                "the CSV header is not understood",
                details=f"columns must be some of {', '.join(COLUMNS)}; got {', '.join(header)}",
            )
    if len(rows) > MAX_ROWS:
        raise OrchestratorError(
            ErrorCode.VALIDATION_FAILED, f"the CSV has {len(rows)} rows; at most {MAX_ROWS}"
        )
    entries: list[CsvEntry] = []
    errors: list[str] = []
    first_line: dict[Mac, int] = {}
    for number, cells in rows:
        if len(cells) > len(columns):
            errors.append(f"line {number}: {len(cells)} columns, expected at most {len(columns)}")
            continue
        fields = {name: cell.strip() or None for name, cell in zip(columns, cells, strict=False)}
        try:
            mac = parse_mac(fields.get("mac") or "")
        except OrchestratorError:
            errors.append(f"line {number}: {fields.get('mac') or '(empty)'!r} is not a MAC address")
            continue
        if mac in first_line:
            errors.append(f"line {number}: {mac} is already on line {first_line[mac]}")
            continue
        first_line[mac] = number
        description, container = fields.get("description"), fields.get("container_id")
        entries.append(CsvEntry(mac=mac, description=description, container_id=container))
    if errors:
        shown = "; ".join(errors[:_SHOWN_ERRORS])
        more = f"; and {len(errors) - _SHOWN_ERRORS} more" if len(errors) > _SHOWN_ERRORS else ""
        raise OrchestratorError(
            ErrorCode.VALIDATION_FAILED,
            f"{len(errors)} bad line{'s' if len(errors) != 1 else ''} in the CSV; nothing imported",
            details=shown + more,
        )
    return entries
