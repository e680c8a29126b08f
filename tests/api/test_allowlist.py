"""Allowlist routes."""

from __future__ import annotations

from tests.api.conftest import Harness
from tests.api.test_transport import assert_error

M1, M2, M3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"


async def test_add_get_list_and_update_is_idempotent(harness: Harness) -> None:
    created = await harness.post("/allowlist", {"mac": M1, "description": "cam 1"})
    assert created.status_code == 201
    entry = created.json()["data"]["entry"]
    assert entry["mac"] == M1
    assert entry["description"] == "cam 1"
    assert entry["used"] is False
    assert "added_at" in entry
    again = await harness.post("/allowlist", {"mac": M1.lower(), "container_id": "ctr-7"})
    assert again.status_code == 201
    updated = again.json()["data"]["entry"]
    assert (updated["description"], updated["container_id"]) == ("cam 1", "ctr-7")
    assert updated["added_at"] == entry["added_at"]
    fetched = (await harness.get(f"/allowlist/{M1}")).json()["data"]["entry"]
    assert fetched == updated
    listed = (await harness.get("/allowlist")).json()["data"]["entries"]
    assert [e["mac"] for e in listed] == [M1]


async def test_bad_mac_is_validation_failed_with_details(harness: Harness) -> None:
    body = assert_error(
        await harness.post("/allowlist", {"mac": "zz:zz"}), 400, "VALIDATION_FAILED"
    )
    assert "zz:zz" in body["error"]["details"]
    assert_error(await harness.get("/allowlist/not-a-mac"), 400, "VALIDATION_FAILED")


async def test_unknown_entry_is_not_in_allowlist(harness: Harness) -> None:
    assert_error(await harness.get(f"/allowlist/{M2}"), 403, "DEVICE_NOT_IN_ALLOWLIST")
    assert_error(await harness.delete(f"/allowlist/{M2}"), 403, "DEVICE_NOT_IN_ALLOWLIST")
    response = await harness.client.patch(
        f"/api/v1/provisioning/allowlist/{M2}", json={"description": "x"}
    )
    assert_error(response, 403, "DEVICE_NOT_IN_ALLOWLIST")


async def test_patch_changes_only_given_fields(harness: Harness) -> None:
    await harness.post("/allowlist", {"mac": M1, "description": "cam 1", "container_id": "c1"})
    response = await harness.client.patch(
        f"/api/v1/provisioning/allowlist/{M1}", json={"container_id": "c2"}
    )
    assert response.status_code == 200
    entry = response.json()["data"]["entry"]
    assert (entry["description"], entry["container_id"]) == ("cam 1", "c2")
    unknown_field = await harness.client.patch(
        f"/api/v1/provisioning/allowlist/{M1}", json={"colour": "red"}
    )
    assert_error(unknown_field, 400, "VALIDATION_FAILED")


async def test_delete_removes(harness: Harness) -> None:
    await harness.post("/allowlist", {"mac": M1})
    response = await harness.delete(f"/allowlist/{M1.replace(':', '-')}")
    assert response.status_code == 200
    assert response.json()["data"]["success"] is True
    assert (await harness.get("/allowlist")).json()["data"]["entries"] == []


async def test_bulk_add_skips_existing_and_rejects_bad_rows_atomically(harness: Harness) -> None:
    await harness.post("/allowlist", {"mac": M1, "description": "keep me"})
    bad = await harness.post(
        "/allowlist/bulk", {"entries": [{"mac": M2}, {"mac": "bogus"}, {"mac": "12345"}]}
    )
    body = assert_error(bad, 400, "VALIDATION_FAILED")
    assert "entries[1]" in body["error"]["details"]
    assert "entries[2]" in body["error"]["details"]
    assert len((await harness.get("/allowlist")).json()["data"]["entries"]) == 1
    good = await harness.post(
        "/allowlist/bulk",
        {
            "entries": [
                {"mac": M1, "description": "new"},
                {"mac": M2},
                {"mac": M3.lower()},
                {"mac": M3},
            ]
        },
    )
    data = good.json()["data"]
    assert (data["added"], data["skipped"]) == (2, 2)
    kept = (await harness.get(f"/allowlist/{M1}")).json()["data"]["entry"]
    assert kept["description"] == "keep me"
    repeat = (await harness.post("/allowlist/bulk", {"entries": [{"mac": M2}]})).json()["data"]
    assert (repeat["added"], repeat["skipped"]) == (0, 1)


async def test_bulk_remove_counts_removed_and_not_found(harness: Harness) -> None:
    await harness.post("/allowlist/bulk", {"entries": [{"mac": M1}, {"mac": M2}]})
    data = (await harness.post("/allowlist/bulk-remove", {"macs": [M1, M3, M1.lower()]})).json()[
        "data"
    ]
    assert (data["removed"], data["not_found"]) == (1, 1)
    bad = await harness.post("/allowlist/bulk-remove", {"macs": ["nope"]})
    assert_error(bad, 400, "VALIDATION_FAILED")


async def test_clear_all_needs_the_confirmation_word(harness: Harness) -> None:
    await harness.post("/allowlist/bulk", {"entries": [{"mac": M1}, {"mac": M2}]})
    assert_error(await harness.delete("/allowlist/all"), 400, "MISSING_PARAMETER")
    assert_error(await harness.delete("/allowlist/all", confirm="yes"), 400, "VALIDATION_FAILED")
    cleared = await harness.delete("/allowlist/all", confirm="CONFIRM")
    assert cleared.status_code == 200
    assert cleared.json()["data"]["cleared"] == 2
    assert (await harness.get("/allowlist/stats")).json()["data"] == {
        "total": 0,
        "used": 0,
        "available": 0,
    }


async def test_stats_and_available_filter(harness: Harness) -> None:
    from orchestrator.domain.allowlist import AllowlistEntry
    from orchestrator.domain.mac import parse_mac
    from tests.fakes import T0

    await harness.post("/allowlist/bulk", {"entries": [{"mac": M1}, {"mac": M2}]})
    store = harness.appliance.store
    await store.allowlist.put(AllowlistEntry(mac=parse_mac(M3), added_at=T0, used_at=T0))
    stats = (await harness.get("/allowlist/stats")).json()["data"]
    assert stats == {"total": 3, "used": 1, "available": 2}
    available = (await harness.get("/allowlist", available="true")).json()["data"]["entries"]
    assert [e["mac"] for e in available] == [M1, M2]
    used = (await harness.get(f"/allowlist/{M3}")).json()["data"]["entry"]
    assert used["used"] is True
    assert "used_at" in used


async def test_allowlist_changes_show_on_candidates_at_once(harness: Harness) -> None:
    from tests.fakes import sighting

    session = await harness.start()
    await harness.devices.feed(sighting(M1))
    devices = (await harness.get(f"/batch/{session['id']}/devices")).json()["data"]["devices"]
    assert devices[0]["in_allowlist"] is False
    await harness.post("/allowlist", {"mac": M1, "container_id": "ctr-1"})
    device = (await harness.get(f"/batch/{session['id']}/devices")).json()["data"]["devices"][0]
    assert device["in_allowlist"] is True
    assert device["container_id"] == "ctr-1"


async def test_allowlist_changes_are_audited_with_the_key_id(harness: Harness) -> None:
    from orchestrator.ports.storage import AuditQuery

    await harness.post("/allowlist", {"mac": M1})
    key_id = harness.api_key.split("_")[1]
    entries = await harness.appliance.store.audit.page(AuditQuery(action="allowlist.add"))
    assert [(e.actor, e.mac) for e in entries] == [(key_id, M1)]
    assert entries[0].correlation_id


async def test_csv_import_adds_updates_and_counts(harness: Harness) -> None:
    await harness.post("/allowlist", {"mac": M1, "description": "cam 1"})
    csv_text = f"mac,description,container_id\n{M1},cam 1\n{M2.lower()},cam 2,C-2\n"
    response = await harness.client.post(
        "/api/v1/provisioning/allowlist/import",
        content=csv_text,
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["added"], data["updated"], data["unchanged"]) == (1, 0, 1)
    assert data["message"] == "imported 2 rows: 1 added, 0 updated, 1 unchanged"
    entry = (await harness.get(f"/allowlist/{M2}")).json()["data"]["entry"]
    assert (entry["description"], entry["container_id"]) == ("cam 2", "C-2")


async def test_csv_import_with_a_bad_line_changes_nothing(harness: Harness) -> None:
    response = await harness.client.post(
        "/api/v1/provisioning/allowlist/import",
        content=f"{M1}\nnot-a-mac\n".encode(),
        headers={"content-type": "text/csv"},
    )
    body = assert_error(response, 400, "VALIDATION_FAILED")
    assert body["error"]["details"] == "line 2: 'not-a-mac' is not a MAC address"
    assert (await harness.get("/allowlist")).json()["data"]["entries"] == []
    binary = await harness.client.post(
        "/api/v1/provisioning/allowlist/import", content=b"\xff\xfe\x00"
    )
    assert_error(binary, 400, "VALIDATION_FAILED")
