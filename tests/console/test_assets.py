"""The console's files: served with the right types and a strict security policy, shipped as
package data, and loading nothing from anywhere but the appliance (it may be offline)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import httpx
import pytest

from orchestrator import console
from orchestrator.domain.pairing import CLAIM_PATH
from tests.api.conftest import Harness, make_settings, running

ROOT = Path(__file__).parents[2]
FILES = [console.INDEX, *console.ASSETS.values()]


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running(make_settings(tmp_path)) as running_harness:
        yield running_harness


@pytest.fixture
def client(harness: Harness) -> httpx.AsyncClient:
    harness.client.headers.pop("X-API-Key")  # the console's files need no key
    return harness.client


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/", "text/html; charset=utf-8"),
        (CLAIM_PATH + "?code=KM9X3T", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/pair.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
    ],
)
async def test_served_with_its_type_and_a_strict_policy(
    client: httpx.AsyncClient, path: str, media_type: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"


async def test_every_listed_file_is_served(client: httpx.AsyncClient) -> None:
    for name, asset in console.ASSETS.items():
        response = await client.get(f"/console/{name}")
        assert response.status_code == 200, name
        assert response.content == console.read(asset)


async def test_a_known_version_is_not_sent_again(client: httpx.AsyncClient) -> None:
    first = await client.get("/console/app.js")
    again = await client.get("/console/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapi%2Fauth.py", "__init__.py", "index.html"])
async def test_nothing_else_is_served(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/console/{name}")
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_the_console_loads_nothing_from_elsewhere() -> None:
    # No CDN, no web font, no remote image: an offline appliance serves everything itself.
    remote = re.compile(r"https?://|(?:src|href)=\"//")
    css_fetch = re.compile(r"@import|@font-face|url\(\s*['\"]?(?!data:)")
    for asset in FILES:
        text = console.read(asset).decode("utf-8")
        found = remote.findall(text)
        if asset.media_type == "text/css":
            found += css_fetch.findall(text)
        assert not found, f"{asset.file}: {found}"


def test_every_file_of_the_package_is_listed_and_shipped() -> None:
    package = resources.files(console.__name__)
    on_disk = {p.name for p in package.iterdir() if p.is_file() and not p.name.endswith(".py")}
    listed = {asset.file for asset in FILES}
    assert on_disk == listed
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"][console.__name__]
    unshipped = [f for f in listed if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert not unshipped, f"not in pyproject's package-data: {unshipped}"


def test_the_pages_load_only_the_consoles_own_modules() -> None:
    served = set(console.ASSETS) | {"app.css"}
    for asset in FILES:
        text = console.read(asset).decode("utf-8")
        for reference in re.findall(r"""(?:src|href)="([^"]+)"|from "\./([^"]+)\"""", text):
            target = next(r for r in reference if r)
            if target.startswith(("data:", "#", "../")):
                continue
            assert target.rsplit("/", 1)[-1] in served, f"{asset.file} loads {target}"
