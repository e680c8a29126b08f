"""Where the netns tier cannot run, it says why and what to run instead."""

from __future__ import annotations

import pytest

from orchestrator.sim import preflight
from orchestrator.sim.preflight import UNPRIVILEGED_COMMAND, netns_available


def test_without_root_it_names_both_ways_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr(preflight, "_user_namespaces", lambda: True)
    reason = netns_available()
    assert reason is not None
    assert "sudo make test" in reason
    assert UNPRIVILEGED_COMMAND in reason


def test_without_root_or_user_namespaces_it_asks_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr(preflight, "_user_namespaces", lambda: False)
    reason = netns_available()
    assert reason is not None
    assert "sudo make test" in reason
    assert "unshare" not in reason


def test_root_without_capabilities_is_told_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(preflight, "_effective_capabilities", lambda: 0)
    reason = netns_available()
    assert reason is not None
    assert "CAP_NET_ADMIN" in reason
