"""Allowlist entries: edits keep what they leave out; `used` follows `used_at`."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from orchestrator.domain.allowlist import AllowlistEntry, AllowlistEntryView, revise
from orchestrator.domain.mac import parse_mac
from tests.domain.samples import T0

MAC = parse_mac("aa-bb-cc-dd-ee-01")
FULL = AllowlistEntry(mac=MAC, added_at=T0, description="line 3 fridge", container_id="ctr-7")


class TestRevise:
    def test_fields_given_as_none_keep_their_value(self) -> None:
        assert revise(FULL, description=None, container_id=None) == FULL

    def test_a_given_description_replaces_only_the_description(self) -> None:
        revised = revise(FULL, description="line 4 freezer", container_id=None)
        assert revised.description == "line 4 freezer"
        assert revised.container_id == "ctr-7"
        assert (revised.mac, revised.added_at, revised.used_at) == (MAC, T0, None)

    def test_a_given_container_replaces_only_the_container(self) -> None:
        revised = revise(FULL, description=None, container_id="ctr-9")
        assert (revised.description, revised.container_id) == ("line 3 fridge", "ctr-9")

    def test_fields_can_be_filled_in_later(self) -> None:
        bare = AllowlistEntry(mac=MAC, added_at=T0)
        revised = revise(bare, description="a", container_id="b")
        assert (revised.description, revised.container_id) == ("a", "b")

    def test_revise_returns_a_new_value(self) -> None:
        revise(FULL, description="changed", container_id="changed")
        assert FULL.description == "line 3 fridge"


class TestView:
    def test_an_unused_entry_is_not_used_and_omits_every_unset_field(self) -> None:
        view = AllowlistEntryView.of(AllowlistEntry(mac=MAC, added_at=T0))
        assert view.used is False
        decoded = msgspec.json.decode(msgspec.json.encode(view))
        assert decoded == {
            "mac": "AA:BB:CC:DD:EE:01",
            "added_at": "2025-01-02T03:04:05Z",
            "used": False,
        }

    def test_an_entry_with_used_at_is_used(self) -> None:
        used_at = T0 + timedelta(hours=2)
        entry = msgspec.structs.replace(FULL, used_at=used_at)
        view = AllowlistEntryView.of(entry)
        assert view.used is True
        assert view.used_at == used_at
        assert (view.description, view.container_id) == ("line 3 fridge", "ctr-7")

    @pytest.mark.parametrize("used", [False, True])
    def test_used_is_exactly_whether_used_at_is_set(self, used: bool) -> None:
        entry = msgspec.structs.replace(FULL, used_at=T0 if used else None)
        assert AllowlistEntryView.of(entry).used is used


def test_revise_clears_a_field_given_as_an_empty_string() -> None:
    entry = AllowlistEntry(
        mac=parse_mac("02:00:00:00:00:01"), added_at=T0, description="cam", container_id="c1"
    )
    revised = revise(entry, description="", container_id=None)
    assert revised.description is None
    assert revised.container_id == "c1"
