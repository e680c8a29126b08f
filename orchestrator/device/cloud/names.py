"""The name and access token a device registers under: chosen once, persisted before the
request goes out, and kept across retries and restarts until the registration is done."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Sequence

import msgspec

from orchestrator.device.cloud.settings import ProvisionSettings, Server

SUFFIX_ALPHABET = string.ascii_uppercase + string.digits
SUFFIX_LENGTH = 6
TOKEN_ALPHABET = string.ascii_letters + string.digits
TOKEN_LENGTH = 20
"""As long as the tokens ThingsBoard generates itself."""
NAME_PATTERN = re.compile(r"^[a-z-]+-[A-Z0-9]{6}$")

Choice = Callable[[Sequence[str]], str]


def device_name(prefix: str, *, choice: Choice = secrets.choice) -> str:
    """`<prefix>-XXXXXX`, six random upper-case letters and digits."""
    return f"{prefix}-" + "".join(choice(SUFFIX_ALPHABET) for _ in range(SUFFIX_LENGTH))


def access_token(*, choice: Choice = secrets.choice) -> str:
    """A fresh device access token: 20 random letters and digits."""
    return "".join(choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


class PendingRegistration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A registration under way (provision.state.json): who the device will be, and whether a
    request may be out there without its answer having reached us."""

    device_name: str
    access_token: str
    server: Server
    prefix: str
    in_doubt: bool = False
    """A request with this token may have reached the server: confirm the token before
    asking again (asking again would create a second device, or fail on the taken name)."""

    def __repr__(self) -> str:
        return (
            f"PendingRegistration(device_name={self.device_name!r}, "
            f"server={self.server!r}, in_doubt={self.in_doubt})"
        )

    def fits(self, settings: ProvisionSettings) -> bool:
        """Whether this registration is for the server and prefix `settings` name."""
        return self.server == settings.server and self.prefix == settings.prefix


def pending_for(
    settings: ProvisionSettings,
    earlier: PendingRegistration | None,
    *,
    choice: Choice = secrets.choice,
) -> PendingRegistration:
    """The earlier registration if it fits `settings` (a retry keeps its name and token),
    otherwise a new one."""
    if earlier is not None and earlier.fits(settings):
        return earlier
    return PendingRegistration(
        device_name=device_name(settings.prefix, choice=choice),
        access_token=access_token(choice=choice),
        server=settings.server,
        prefix=settings.prefix,
    )
