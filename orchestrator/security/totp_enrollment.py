"""`orchestrator totp enroll`: a new TOTP seed, stored sealed, shown once as a QR code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TextIO

import segno

from orchestrator.batch.audit import Auditor
from orchestrator.ports.secrets import Sealer
from orchestrator.ports.storage import Store
from orchestrator.security import totp
from orchestrator.security.stepup import AUDIT_ENROLL, store_new_seed

CLI_ACTOR = "cli"
"""The audit actor of enrollments made on the appliance's command line."""


async def enroll_totp(
    store: Store,
    sealer: Sealer,
    *,
    issuer: str,
    account: str,
    out: TextIO,
    clock: Callable[[], datetime],
    replace: bool = False,
) -> bool:
    """Enroll a new seed and write its otpauth:// URI and a terminal QR code to `out`.

    An existing seed is kept (and False returned) unless `replace`: replacing it makes the
    operators' authenticator entries useless.
    """
    previous = await store.totp.get()
    if previous is not None and not replace:
        return False
    seed = await store_new_seed(store.totp, sealer, clock())
    detail = "TOTP seed replaced" if previous is not None else "TOTP seed enrolled"
    await Auditor(store.audit, clock).record(AUDIT_ENROLL, actor=CLI_ACTOR, detail=detail)
    uri = totp.provisioning_uri(seed, account=account, issuer=issuer)
    out.write(
        "Scan this code with an authenticator app, or type the URI below into it.\n"
        "Both hold the TOTP secret: do not paste them into tickets, chats or logs.\n\n"
    )
    # compact: two rows of modules per line of text, so the code stays on one screen.
    segno.make(uri, error="m").terminal(out=out, compact=True)
    out.write(f"\n{uri}\n")
    return True
