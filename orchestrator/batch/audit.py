"""Writes audit entries with the actor and correlation id of the current request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from orchestrator.context import actor_var, correlation_id_var
from orchestrator.domain.audit import AuditEntry, Outcome
from orchestrator.domain.mac import Mac
from orchestrator.ports.storage import AuditLog, AuditQuery


class Auditor:
    """Appends audit entries; `actor` defaults to the API key id of the current request."""

    def __init__(self, log: AuditLog, clock: Callable[[], datetime]) -> None:
        self._log = log
        self._clock = clock

    async def record(
        self,
        action: str,
        outcome: Outcome = Outcome.OK,
        *,
        session_id: str | None = None,
        mac: Mac | None = None,
        detail: str | None = None,
        actor: str | None = None,
    ) -> None:
        """Append one entry. `detail` must never hold a secret."""
        await self._log.append(
            AuditEntry(
                at=self._clock(),
                actor=actor or actor_var.get(),
                action=action,
                outcome=outcome,
                session_id=session_id,
                mac=mac,
                correlation_id=correlation_id_var.get(),
                detail=detail,
            )
        )

    async def page(self, query: AuditQuery) -> list[AuditEntry]:
        """Entries matching `query`, newest first."""
        return await self._log.page(query)
