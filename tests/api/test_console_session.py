"""Console sign-in: the cookie lives exactly as long as the session it carries."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie

from orchestrator.security.console_sessions import COOKIE_NAME
from tests.api.conftest import Harness
from tests.fakes import T0

TTL_S = 12 * 3600  # [streams] console_session_ttl_s's default


async def test_the_cookie_expires_with_the_session(harness: Harness) -> None:
    response = await harness.client.post("/api/v1/auth/session", json={"api_key": harness.api_key})
    assert response.status_code == 200
    cookie = SimpleCookie(response.headers["set-cookie"])[COOKIE_NAME]
    assert cookie["max-age"] == str(TTL_S)
    # Expires is an absolute date for old browsers: now (wall clock) + the TTL, not 2083.
    expires = parsedate_to_datetime(cookie["expires"]).timestamp()
    assert abs(expires - (time.time() + TTL_S)) < 60


async def test_expires_at_is_utc_with_a_z_like_every_other_timestamp(harness: Harness) -> None:
    response = await harness.client.post("/api/v1/auth/session", json={"api_key": harness.api_key})
    expires_at = response.json()["data"]["expires_at"]
    assert expires_at.endswith("Z")
    assert datetime.fromisoformat(expires_at) == T0 + timedelta(seconds=TTL_S)
