"""What the provisioning engine reports for observability (Prometheus metrics)."""

from __future__ import annotations

from typing import Protocol


class StageObserver(Protocol):
    """Told about every finished lifecycle stage of every device."""

    def stage_finished(self, stage: str, outcome: str, duration_s: float) -> None:
        """`stage` is a provisioning Stage value (detect, pre_check, provision, confirm,
        rollback); `outcome` is `ok` or an error reason token."""
        ...
