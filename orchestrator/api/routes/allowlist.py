"""Allowlist routes: /api/v1/provisioning/allowlist/..."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from orchestrator.api.envelope import Success, ok
from orchestrator.api.errors import error_specs
from orchestrator.api.gates import STEP_UP_ERRORS, require_step_up
from orchestrator.api.schemas import (
    AllowlistEntriesData,
    AllowlistEntryData,
    AllowlistEntryMessage,
    AllowlistPatch,
    AllowlistWrite,
    BulkAddData,
    BulkAddRequest,
    BulkRemoveData,
    BulkRemoveRequest,
    ClearedData,
    DeletedData,
    ImportData,
)
from orchestrator.batch.allowlist import AllowlistDraft, AllowlistService
from orchestrator.domain.allowlist import AllowlistEntryView, AllowlistStats
from orchestrator.domain.allowlist_csv import parse_allowlist_csv
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac, is_mac, parse_mac
from orchestrator.domain.totp import GatedOperation

_E = ErrorCode
_MAX_LISTED_BAD = 5
_WRITE = require_step_up(GatedOperation.ALLOWLIST_WRITE)
"""Every allowlist change decides whom the appliance trusts."""


def _draft(row: AllowlistWrite) -> AllowlistDraft:
    return AllowlistDraft(
        mac=parse_mac(row.mac), description=row.description, container_id=row.container_id
    )


def _parse_all(texts: list[str], what: str) -> list[Mac]:
    """Parse every MAC or reject the whole request, naming the bad ones (all or nothing)."""
    bad = [f"{what}[{i}]={t[:40]!r}" for i, t in enumerate(texts) if not is_mac(t)]
    if bad:
        shown = ", ".join(bad[:_MAX_LISTED_BAD])
        more = f" and {len(bad) - _MAX_LISTED_BAD} more" if len(bad) > _MAX_LISTED_BAD else ""
        raise OrchestratorError(
            ErrorCode.VALIDATION_FAILED,
            f"{len(bad)} invalid MAC addresses; nothing was changed",
            details=f"{shown}{more}",
        )
    return [parse_mac(t) for t in texts]


@get("/", responses=error_specs(_E.UNAUTHORIZED))
async def list_entries(
    allowlist: NamedDependency[AllowlistService],
    available: Annotated[bool, QueryParameter()] = False,
) -> Response[Success[AllowlistEntriesData]]:
    """Every entry, or only the unused ones with `available=true`."""
    entries = await allowlist.list(available_only=available)
    return ok(AllowlistEntriesData(entries=[AllowlistEntryView.of(e) for e in entries]))


@get("/stats", responses=error_specs(_E.UNAUTHORIZED))
async def stats(allowlist: NamedDependency[AllowlistService]) -> Response[Success[AllowlistStats]]:
    """Totals: all, used, available."""
    return ok(await allowlist.stats())


@get("/{mac:str}", responses=error_specs(_E.DEVICE_NOT_IN_ALLOWLIST, _E.UNAUTHORIZED))
async def get_entry(
    mac: FromPath[str], allowlist: NamedDependency[AllowlistService]
) -> Response[Success[AllowlistEntryData]]:
    """One entry."""
    entry = await allowlist.get(parse_mac(mac))
    return ok(AllowlistEntryData(entry=AllowlistEntryView.of(entry)))


@post("/", status_code=201, guards=[_WRITE], responses=error_specs(*STEP_UP_ERRORS))
async def add_entry(
    data: JSONBody[AllowlistWrite], allowlist: NamedDependency[AllowlistService]
) -> Response[Success[AllowlistEntryMessage]]:
    """Add a MAC, or update it when it is already there (safe to repeat)."""
    entry, created = await allowlist.put(_draft(data))
    message = "entry added" if created else "entry updated"
    return ok(AllowlistEntryMessage(entry=AllowlistEntryView.of(entry), message=message), 201)


@patch(
    "/{mac:str}",
    guards=[_WRITE],
    responses=error_specs(_E.DEVICE_NOT_IN_ALLOWLIST, *STEP_UP_ERRORS),
)
async def edit_entry(
    mac: FromPath[str], data: JSONBody[AllowlistPatch], allowlist: NamedDependency[AllowlistService]
) -> Response[Success[AllowlistEntryMessage]]:
    """Change an entry's description or container."""
    entry = await allowlist.edit(
        parse_mac(mac), description=data.description, container_id=data.container_id
    )
    return ok(AllowlistEntryMessage(entry=AllowlistEntryView.of(entry), message="entry updated"))


@delete(
    "/{mac:str}",
    status_code=200,
    guards=[_WRITE],
    responses=error_specs(_E.DEVICE_NOT_IN_ALLOWLIST, *STEP_UP_ERRORS),
)
async def remove_entry(
    mac: FromPath[str], allowlist: NamedDependency[AllowlistService]
) -> Response[Success[DeletedData]]:
    """Remove one entry."""
    canonical = parse_mac(mac)
    await allowlist.remove(canonical)
    return ok(DeletedData(success=True, message=f"{canonical} removed from the allowlist"))


@post("/bulk", status_code=200, guards=[_WRITE], responses=error_specs(*STEP_UP_ERRORS))
async def bulk_add(
    data: JSONBody[BulkAddRequest], allowlist: NamedDependency[AllowlistService]
) -> Response[Success[BulkAddData]]:
    """Add many entries; existing MACs are left as they are. One bad MAC rejects the batch."""
    macs = _parse_all([row.mac for row in data.entries], "entries")
    drafts = [
        AllowlistDraft(mac=mac, description=row.description, container_id=row.container_id)
        for mac, row in zip(macs, data.entries, strict=True)
    ]
    outcome = await allowlist.add_many(drafts)
    return ok(
        BulkAddData(
            added=outcome.added,
            skipped=outcome.skipped,
            message=f"added {outcome.added}, {outcome.skipped} already on the allowlist",
        )
    )


@post(
    "/import",
    status_code=200,
    guards=[_WRITE],
    responses=error_specs(_E.VALIDATION_FAILED, *STEP_UP_ERRORS),
)
async def import_csv(
    request: Request[Any, Any, Any], allowlist: NamedDependency[AllowlistService]
) -> Response[Success[ImportData]]:
    """Import a CSV file (`mac,description,container_id`, header optional) as the request
    body: new MACs are added, existing ones updated. One bad line rejects the whole file."""
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise OrchestratorError(
            _E.VALIDATION_FAILED, "the CSV is not UTF-8 text", details=str(error)
        ) from error
    rows = parse_allowlist_csv(text)
    outcome = await allowlist.import_entries(
        [
            AllowlistDraft(mac=r.mac, description=r.description, container_id=r.container_id)
            for r in rows
        ]
    )
    return ok(
        ImportData(
            added=outcome.added,
            updated=outcome.updated,
            unchanged=outcome.unchanged,
            message=f"imported {len(rows)} rows: {outcome.added} added, "
            f"{outcome.updated} updated, {outcome.unchanged} unchanged",
        )
    )


@post("/bulk-remove", status_code=200, guards=[_WRITE], responses=error_specs(*STEP_UP_ERRORS))
async def bulk_remove(
    data: JSONBody[BulkRemoveRequest], allowlist: NamedDependency[AllowlistService]
) -> Response[Success[BulkRemoveData]]:
    """Remove many MACs; unknown ones are counted in `not_found`."""
    outcome = await allowlist.remove_many(_parse_all(data.macs, "macs"))
    return ok(
        BulkRemoveData(
            removed=outcome.removed,
            not_found=outcome.not_found,
            message=f"removed {outcome.removed}, {outcome.not_found} were not on the allowlist",
        )
    )


@delete(
    "/all",
    status_code=200,
    guards=[_WRITE],
    responses=error_specs(_E.MISSING_PARAMETER, *STEP_UP_ERRORS),
)
async def clear_all(
    allowlist: NamedDependency[AllowlistService],
    confirm: Annotated[str | None, QueryParameter()] = None,
) -> Response[Success[ClearedData]]:
    """Empty the allowlist; needs `?confirm=CONFIRM`."""
    cleared = await allowlist.clear(confirm)
    return ok(ClearedData(cleared=cleared, message=f"cleared {cleared} entries"))


HANDLERS = [
    list_entries,
    stats,
    bulk_add,
    bulk_remove,
    import_csv,
    clear_all,
    get_entry,
    add_entry,
    edit_entry,
    remove_entry,
]
