"""The technician console: static assets served at `/`, offline (no CDN).

`/` is the console, `/console/<asset>` its scripts and styles, and `/console/pair?code=...` the
page a device's pairing QR code opens. They need no API key (they hold no data; the console
signs in through the API) and stay out of the V1 contract.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath

from orchestrator import console

SECURITY_HEADERS = {
    # Only the appliance's own scripts, styles and API: an injected tag can load nothing.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data: blob:; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # A claim link carries a pairing code in its query: never pass it on.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


async def _serve(request: Request[Any, Any, Any], asset: console.Asset) -> Response[bytes]:
    body = await asyncio.to_thread(console.read, asset)
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    # Revalidated on every load, so a tablet picks up a new console right after an upgrade.
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": etag}
    if request.headers.get("If-None-Match") == etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type=asset.media_type, headers=headers)


@get("/", include_in_schema=False)
async def index(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The console."""
    return await _serve(request, console.INDEX)


@get("/console/{name:str}", include_in_schema=False)
async def asset(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    """One of the console's files (only the listed ones: a path never reaches the disk)."""
    found = console.ASSETS.get(name)
    if found is None:
        raise NotFoundException
    return await _serve(request, found)


HANDLERS: list[BaseRouteHandler] = [index, asset]
