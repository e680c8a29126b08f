"""An access point that fails to come up leaves nothing behind that blocks a retry."""

from __future__ import annotations

from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.settings import Settings
from tests.api.conftest import PASSWORD, SSID, running
from tests.api.test_sessions import _left_open
from tests.api.test_transport import assert_error
from tests.fakes import FakeClock, FakeNetwork

START = {"target_ssid": SSID, "target_password": PASSWORD}


class FlakyNetwork(FakeNetwork):
    """An access point whose first `failures` starts fail, as hostapd's adapter reports it."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def up(self) -> None:
        if self.failures:
            self.failures -= 1
            raise OrchestratorError(
                ErrorCode.NETWORK_ERROR, "could not start the onboarding access point"
            )
        await super().up()


async def test_a_failed_start_creates_no_session_and_a_retry_brings_the_network_up(
    settings: Settings,
) -> None:
    network = FlakyNetwork(failures=1)
    async with running(settings, network=network) as h:
        failed = await h.post("/batch/start", START)
        body = assert_error(failed, 503, "NETWORK_ERROR")
        assert body["error"]["retryable"] is True
        assert (await h.get("/sessions/history")).json()["data"]["sessions"] == []
        audited = (await h.get("/audit", action="session.start")).json()["data"]["entries"]
        assert [(e["outcome"], e.get("session_id")) for e in audited] == [("failed", None)]
        assert SSID in audited[0]["detail"]
        assert PASSWORD not in audited[0]["detail"]

        retried = await h.post("/batch/start", START)
        assert retried.status_code == 201, retried.text
        assert retried.json()["data"]["session"]["state"] == "discovering"
        assert network.active
        history = (await h.get("/sessions/history")).json()["data"]["sessions"]
        assert [s["id"] for s in history] == [retried.json()["data"]["session"]["id"]]


async def test_a_failed_resume_leaves_the_session_recoverable(settings: Settings) -> None:
    clock = FakeClock()
    sid = await _left_open(settings, clock)
    network = FlakyNetwork(failures=1)
    async with running(settings, clock, network=network) as h:
        assert_error(await h.post(f"/sessions/{sid}/resume"), 503, "NETWORK_ERROR")
        listed = (await h.get("/sessions/recoverable")).json()["data"]["sessions"]
        assert [s["id"] for s in listed] == [sid]

        resumed = await h.post(f"/sessions/{sid}/resume")
        assert resumed.status_code == 200, resumed.text
        assert network.active
        assert (await h.get("/sessions/recoverable")).json()["data"]["sessions"] == []
