"""The allowlist CSV format: what parses, and how bad lines are named."""

from __future__ import annotations

import pytest

from orchestrator.domain.allowlist_csv import MAX_ROWS, CsvEntry, parse_allowlist_csv
from orchestrator.domain.errors import ErrorCode, OrchestratorError


def entry(mac: str, description: str | None = None, container: str | None = None) -> CsvEntry:
    return CsvEntry(mac=mac, description=description, container_id=container)  # type: ignore[arg-type]


def rejected(text: str) -> OrchestratorError:
    with pytest.raises(OrchestratorError) as caught:
        parse_allowlist_csv(text)
    assert caught.value.code is ErrorCode.VALIDATION_FAILED
    return caught.value


def test_positional_rows_without_a_header() -> None:
    text = "aa-bb-cc-dd-ee-01,Front door,C-1\n\n# a comment\naabbccddee02\n"
    assert parse_allowlist_csv(text) == [
        entry("AA:BB:CC:DD:EE:01", "Front door", "C-1"),
        entry("AA:BB:CC:DD:EE:02"),
    ]


def test_a_header_names_the_columns_in_any_order() -> None:
    text = '\ufeffContainer_ID, MAC ,description\r\nC-9,aa:bb:cc:dd:ee:03,"Dock, bay 3"\r\n'
    assert parse_allowlist_csv(text) == [entry("AA:BB:CC:DD:EE:03", "Dock, bay 3", "C-9")]


def test_every_bad_line_is_named_and_nothing_is_taken() -> None:
    text = (
        "mac,description\nnot-a-mac,x\naa:bb:cc:dd:ee:04\n,empty\nAA:BB:CC:DD:EE:04,again\na,b,c\n"
    )
    error = rejected(text)
    assert error.message == "4 bad lines in the CSV; nothing imported"
    assert error.details == (
        "line 2: 'not-a-mac' is not a MAC address; line 4: '(empty)' is not a MAC address; "
        "line 5: AA:BB:CC:DD:EE:04 is already on line 3; line 6: 3 columns, expected at most 2"
    )


def test_an_unknown_header_is_refused() -> None:
    assert "columns must be some of mac, description, container_id" in str(
        rejected("mac,serial\naa:bb:cc:dd:ee:05,1\n").details
    )


def test_too_many_rows_are_refused() -> None:
    text = "\n".join(
        f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
        for i in range(MAX_ROWS + 1)
    )
    assert rejected(text).message == f"the CSV has {MAX_ROWS + 1} rows; at most {MAX_ROWS}"


def test_an_empty_file_is_no_rows() -> None:
    assert parse_allowlist_csv("") == []
    assert parse_allowlist_csv("mac,description,container_id\n") == []
