"""PairingService: offers open (or reuse) a session and show its code; claims consume a live
code once and put its device on the allowlist; wrong codes are rate limited; expired sessions
are purged; the device request always fits MAX_REQUEST_BYTES."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import msgspec
import pytest

from orchestrator.batch.audit import Auditor
from orchestrator.batch.pairing import (
    AUDIT_CLAIM,
    AUDIT_CLAIM_FAILED,
    AUDIT_OPEN,
    CODE_ATTEMPTS,
    NoDeviceClient,
    PairingService,
    PairingSettings,
    pairing_display,
)
from orchestrator.domain.allowlist import AllowlistEntry
from orchestrator.domain.audit import SYSTEM_ACTOR, AuditEntry, Outcome
from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.mac import Mac, parse_mac
from orchestrator.domain.pairing import (
    MAX_CONSOLE_BASE_URL_LENGTH,
    PAIRING_ALPHABET,
    PAIRING_TTL,
    PairingSession,
)
from orchestrator.ports.devices import DeviceUnreachableError
from orchestrator.ports.storage import AuditQuery, StorageError
from orchestrator.protocol.messages import MAX_REQUEST_BYTES, DeviceInfo, PairingDisplay
from orchestrator.settings import load_settings
from orchestrator.storage import MemoryStore
from tests.fakes import FakeClock

MAC = parse_mac("24:0A:C4:12:34:56")
OTHER = parse_mac("24:0A:C4:65:43:21")
IP = "192.168.4.20"
BASE = "http://pi.local:8080"
LONGEST_BASE = "https://" + "p" * (MAX_CONSOLE_BASE_URL_LENGTH - len("https://"))
BLANK = PairingDisplay()
WAIT_S = 5


class Devices:
    """A DeviceClient that records what each device was shown; some are unreachable and
    some never answer."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, PairingDisplay]] = []
        self.unreachable: set[str] = set()
        self.silent: set[str] = set()

    async def info(self, ip: str) -> DeviceInfo:
        raise DeviceUnreachableError(f"{ip}: not used by pairing")

    async def show_pairing(self, ip: str, display: PairingDisplay) -> None:
        if ip in self.unreachable:
            raise DeviceUnreachableError(f"{ip}: connection refused")
        if ip in self.silent:
            await asyncio.Event().wait()
        self.shown.append((ip, display))


def scripted(*codes: str) -> Callable[[str], str]:
    """A chooser that spells out `codes`, one after the other."""
    characters: Iterator[str] = iter("".join(codes))

    def choose(alphabet: str) -> str:
        character = next(characters)
        assert character in alphabet
        return character

    return choose


@dataclass
class Rig:
    service: PairingService
    store: MemoryStore
    devices: Devices
    clock: FakeClock
    settings: PairingSettings

    async def audit(self) -> list[AuditEntry]:
        return list(reversed(await self.store.audit.page(AuditQuery(limit=1000))))

    async def live(self, mac: Mac = MAC) -> PairingSession:
        session = await self.store.provisioning.find_live_session_for_device(mac, self.clock.now())
        assert session is not None
        return session

    async def claim(self, code: str, actor: str = "key-a", **fields: str | None) -> AllowlistEntry:
        return await self.service.claim(
            code,
            actor=actor,
            description=fields.get("description"),
            container_id=fields.get("container_id"),
        )


def make_rig(choose: Callable[[str], str] | None = None, **settings: object) -> Rig:
    store, devices, clock = MemoryStore(), Devices(), FakeClock()
    pairing_settings = msgspec.convert({"console_base_url": BASE, **settings}, PairingSettings)
    service = PairingService(
        store=store,
        client=devices,
        auditor=Auditor(store.audit, clock.now),
        clock=clock.now,
        settings=pairing_settings,
        choose=choose or random.Random(7).choice,  # noqa: S311 - repeatable test codes
    )
    return Rig(service, store, devices, clock, pairing_settings)


@pytest.fixture
def rig() -> Rig:
    return make_rig()


@contextlib.contextmanager
def refused(code: ErrorCode) -> Iterator[pytest.ExceptionInfo[OrchestratorError]]:
    """Expect an OrchestratorError with `code`."""
    with pytest.raises(OrchestratorError) as caught:
        yield caught
    assert caught.value.code is code, caught.value


# --- offers -----------------------------------------------------------------------------------


async def test_an_offer_opens_a_session_and_shows_its_code() -> None:
    rig = make_rig(choose=scripted("KM9X3T"))
    await rig.service.offer(MAC, IP)
    session = await rig.live()
    assert (session.pairing_code, session.device_id, session.device_ip) == ("KM9X3T", MAC, IP)
    assert session.expires_at == rig.clock.now() + PAIRING_TTL
    [(ip, display)] = rig.devices.shown
    assert ip == IP
    assert display.code == "KM9X3T"
    assert display.claim_url == f"{BASE}/console/pair?code=KM9X3T"
    assert display.qr_svg is not None
    [opened] = await rig.audit()
    assert (opened.action, opened.actor, opened.mac) == (AUDIT_OPEN, SYSTEM_ACTOR, MAC)
    assert opened.detail is not None
    assert "KM9X3T" not in opened.detail
    assert opened.detail.startswith("K*****")


async def test_offering_again_shows_the_same_code_at_the_device_s_new_address(rig: Rig) -> None:
    await rig.service.offer(MAC, IP)
    first = await rig.live()
    await rig.clock.advance(60)
    await rig.service.offer(MAC, "192.168.4.99")
    again = await rig.live()
    assert again.pairing_code == first.pairing_code
    assert again.device_ip == "192.168.4.99"
    assert [(ip, d.code) for ip, d in rig.devices.shown] == [
        (IP, first.pairing_code),
        ("192.168.4.99", first.pairing_code),
    ]
    assert [e.action for e in await rig.audit()] == [AUDIT_OPEN]


async def test_concurrent_offers_for_one_device_open_one_session(rig: Rig) -> None:
    await asyncio.gather(*(rig.service.offer(MAC, IP) for _ in range(5)))
    codes = {display.code for _, display in rig.devices.shown}
    assert len(codes) == 1
    assert [e.action for e in await rig.audit()] == [AUDIT_OPEN]


async def test_after_expiry_an_offer_opens_a_session_with_a_new_code(rig: Rig) -> None:
    await rig.service.offer(MAC, IP)
    first = await rig.live()
    await rig.clock.advance(PAIRING_TTL.total_seconds())
    await rig.service.offer(MAC, IP)
    second = await rig.live()
    assert second.pairing_code != first.pairing_code
    assert second.created_at == rig.clock.now()


async def test_a_code_issued_before_is_never_issued_again() -> None:
    # The chooser offers the first device's code again, then a fresh one.
    rig = make_rig(choose=scripted("KM9X3T", "KM9X3T", "AC4FYY"))
    await rig.service.offer(MAC, IP)
    await rig.service.offer(OTHER, "192.168.4.21")
    assert (await rig.live(MAC)).pairing_code == "KM9X3T"
    assert (await rig.live(OTHER)).pairing_code == "AC4FYY"


async def test_a_chooser_that_only_repeats_itself_is_an_internal_error() -> None:
    rig = make_rig(choose=lambda alphabet: alphabet[0])
    await rig.service.offer(MAC, IP)
    with refused(ErrorCode.INTERNAL_ERROR) as caught:
        await rig.service.offer(OTHER, IP)
    assert str(CODE_ATTEMPTS) in caught.value.message


async def test_an_unreachable_device_is_logged_not_raised(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.devices.unreachable.add(IP)
    await rig.service.offer(MAC, IP)
    assert rig.devices.shown == []
    assert "connection refused" in caplog.text
    # The session is open all the same: the next offer shows its code.
    session = await rig.live()
    rig.devices.unreachable.clear()
    await rig.service.offer(MAC, IP)
    assert rig.devices.shown[0][1].code == session.pairing_code


async def test_a_device_that_never_answers_times_out(caplog: pytest.LogCaptureFixture) -> None:
    rig = make_rig(device_timeout_s=0.01)
    rig.devices.silent.add(IP)
    async with asyncio.timeout(WAIT_S):
        await rig.service.offer(MAC, IP)
    assert "timed out" in caplog.text


async def test_without_a_transport_offers_still_open_sessions() -> None:
    rig = make_rig()
    store = rig.store
    service = PairingService(
        store=store,
        client=NoDeviceClient(),
        auditor=Auditor(store.audit, rig.clock.now),
        clock=rig.clock.now,
        settings=rig.settings,
    )
    await service.offer(MAC, IP)
    assert (await rig.live()).device_ip == IP
    with pytest.raises(DeviceUnreachableError):
        await NoDeviceClient().info(IP)


async def test_an_allowlisted_device_has_its_display_cleared(rig: Rig) -> None:
    await rig.store.allowlist.put(AllowlistEntry(mac=MAC, added_at=rig.clock.now()))
    await rig.service.offer(MAC, IP)
    assert rig.devices.shown == [(IP, BLANK)]
    assert await rig.store.provisioning.find_live_session_for_device(MAC, rig.clock.now()) is None


async def test_without_a_console_url_devices_show_the_code_only() -> None:
    rig = make_rig(console_base_url=None)
    await rig.service.offer(MAC, IP)
    [(_, display)] = rig.devices.shown
    assert display == PairingDisplay(code=(await rig.live()).pairing_code)


# --- claims -----------------------------------------------------------------------------------


async def test_a_claim_puts_the_device_on_the_allowlist_and_clears_its_display(rig: Rig) -> None:
    await rig.service.offer(MAC, IP)
    code = (await rig.live()).pairing_code
    await rig.clock.advance(30)
    entry = await rig.claim(code.lower(), description="cam 7", container_id="box-3")
    assert entry == AllowlistEntry(
        mac=MAC, added_at=rig.clock.now(), description="cam 7", container_id="box-3"
    )
    assert await rig.store.allowlist.get(MAC) == entry
    assert rig.devices.shown[-1] == (IP, BLANK)
    claim = (await rig.audit())[-1]
    assert (claim.action, claim.outcome, claim.actor, claim.mac) == (
        AUDIT_CLAIM,
        Outcome.OK,
        "key-a",
        MAC,
    )
    assert claim.detail == f"{code[0]}*****: added to the allowlist"


async def test_a_claimed_code_is_consumed(rig: Rig) -> None:
    await rig.service.offer(MAC, IP)
    code = (await rig.live()).pairing_code
    await rig.claim(code)
    with refused(ErrorCode.DEVICE_NOT_FOUND):
        await rig.claim(code, actor="key-b")


async def test_repeating_a_claim_answers_the_same_entry(rig: Rig) -> None:
    await rig.service.offer(MAC, IP)
    code = (await rig.live()).pairing_code
    first = await rig.claim(code, description="cam 7")
    await rig.clock.advance(5)
    assert await rig.claim(code) == first
    assert await rig.store.allowlist.get(MAC) == first


async def test_of_two_concurrent_claims_exactly_one_wins(rig: Rig) -> None:
    await rig.service.offer(MAC, IP)
    code = (await rig.live()).pairing_code
    outcomes = await asyncio.gather(
        rig.claim(code, actor="key-a"), rig.claim(code, actor="key-b"), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, AllowlistEntry)]
    losers = [o for o in outcomes if isinstance(o, OrchestratorError)]
    assert len(winners) == 1
    assert [e.code for e in losers] == [ErrorCode.DEVICE_NOT_FOUND]


async def test_claiming_updates_an_existing_entry(rig: Rig) -> None:
    added = rig.clock.now()
    await rig.store.allowlist.put(AllowlistEntry(mac=MAC, added_at=added, description="old"))
    await rig.store.provisioning.issue_session(
        PairingSession(
            pairing_code="KM9X3T",
            device_id=MAC,
            device_ip=IP,
            created_at=added,
            expires_at=added + PAIRING_TTL,
        )
    )
    entry = await rig.claim("KM9X3T", container_id="box-9")
    assert entry == AllowlistEntry(mac=MAC, added_at=added, description="old", container_id="box-9")
    assert (await rig.audit())[-1].detail == "K*****: already on the allowlist"


async def test_a_code_of_a_seed_device_record_is_not_paired(rig: Rig) -> None:
    now = rig.clock.now()
    await rig.store.provisioning.save_session(
        PairingSession(
            pairing_code="KM9X3T",
            device_id="ZM-ICU-MON-04",
            device_ip=IP,
            created_at=now,
            expires_at=now + PAIRING_TTL,
        )
    )
    with refused(ErrorCode.INTERNAL_ERROR):
        await rig.claim("KM9X3T")
    assert await rig.store.allowlist.list() == []


async def test_unknown_and_expired_codes_get_the_same_answer(rig: Rig) -> None:
    await rig.service.offer(MAC, IP)
    code = (await rig.live()).pairing_code
    unknown = next(c * 6 for c in PAIRING_ALPHABET if c * 6 != code)
    with refused(ErrorCode.DEVICE_NOT_FOUND) as not_found:
        await rig.claim(unknown)
    await rig.clock.advance(PAIRING_TTL.total_seconds())
    with refused(ErrorCode.DEVICE_NOT_FOUND) as expired:
        await rig.claim(code)
    assert not_found.value.message == expired.value.message
    assert "10 minutes" in expired.value.message
    assert await rig.store.allowlist.get(MAC) is None
    failures = [e for e in await rig.audit() if e.action == AUDIT_CLAIM_FAILED]
    assert [(e.outcome, e.actor) for e in failures] == [(Outcome.DENIED, "key-a")] * 2


async def test_a_malformed_code_is_a_validation_error_and_costs_no_try(rig: Rig) -> None:
    for _ in range(10):
        with refused(ErrorCode.VALIDATION_FAILED):
            await rig.claim("NOT-A-CODE")
    with refused(ErrorCode.DEVICE_NOT_FOUND):
        await rig.claim("YYYYYY")


async def test_wrong_codes_are_rate_limited_per_key(rig: Rig) -> None:
    await rig.service.offer(MAC, IP)
    right = (await rig.live()).pairing_code
    wrong = next(c * 6 for c in PAIRING_ALPHABET if c * 6 != right)
    for _ in range(rig.settings.max_failures_per_key):
        with refused(ErrorCode.DEVICE_NOT_FOUND):
            await rig.claim(wrong)
    # Even the right code is refused now: a limited guesser learns nothing.
    with refused(ErrorCode.RATE_LIMITED) as limited:
        await rig.claim(right)
    assert limited.value.retry_after_s == rig.settings.failure_window_s
    assert f"{rig.settings.failure_window_s} s" in limited.value.message
    assert await rig.store.allowlist.get(MAC) is None
    # Another key is not held back by this one...
    with refused(ErrorCode.DEVICE_NOT_FOUND):
        await rig.claim(wrong, actor="key-b")
    # ...and this one may try again once its window has passed.
    await rig.clock.advance(rig.settings.failure_window_s)
    assert (await rig.claim(right)).mac == MAC
    denied = [e.detail for e in await rig.audit() if e.action == AUDIT_CLAIM_FAILED]
    assert f"{right[0]}*****: rate limited" in denied


async def test_concurrent_wrong_codes_cannot_slip_past_the_limit(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim_session = rig.store.provisioning.claim_session

    async def slow_claim(code: str, claimant: str, now: datetime) -> PairingSession | None:
        await asyncio.sleep(0)  # a real store suspends here
        return await claim_session(code, claimant, now)

    monkeypatch.setattr(rig.store.provisioning, "claim_session", slow_claim)
    outcomes = await asyncio.gather(
        *(rig.claim("YYYYYY") for _ in range(20)), return_exceptions=True
    )
    codes = [o.code for o in outcomes if isinstance(o, OrchestratorError)]
    assert codes.count(ErrorCode.DEVICE_NOT_FOUND) == rig.settings.max_failures_per_key
    assert codes.count(ErrorCode.RATE_LIMITED) == 20 - rig.settings.max_failures_per_key


async def test_right_codes_do_not_count_against_the_limit(rig: Rig) -> None:
    for n in range(rig.settings.max_failures_per_key + 2):
        mac = parse_mac(f"24:0A:C4:00:00:{n:02X}")
        await rig.service.offer(mac, IP)
        assert (await rig.claim((await rig.live(mac)).pairing_code)).mac == mac


async def test_wrong_codes_are_rate_limited_over_all_keys() -> None:
    rig = make_rig(max_failures_per_key=2, max_failures_total=6, total_failure_window_s=600)
    for n in range(3):
        for _ in range(2):
            with refused(ErrorCode.DEVICE_NOT_FOUND):
                await rig.claim("YYYYYY", actor=f"key-{n}")
    with refused(ErrorCode.RATE_LIMITED) as limited:
        await rig.claim("YYYYYY", actor="a-fresh-key")
    assert limited.value.retry_after_s == 600


async def test_a_code_never_reaches_a_log_line_or_the_audit_log(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await rig.service.offer(MAC, IP)
    code = (await rig.live()).pairing_code
    with refused(ErrorCode.DEVICE_NOT_FOUND):
        await rig.claim(code[::-1] if code[::-1] != code else "YYYYYY")
    await rig.claim(code)
    assert caplog.records
    assert code not in caplog.text
    assert all(code not in msgspec.json.encode(e).decode() for e in await rig.audit())


# --- purging ----------------------------------------------------------------------------------


async def test_purge_expired_deletes_what_the_clock_says_has_expired(rig: Rig) -> None:
    await rig.service.offer(MAC, IP)
    await rig.clock.advance(60)
    await rig.service.offer(OTHER, "192.168.4.21")
    assert await rig.service.purge_expired() == 0
    await rig.clock.advance(PAIRING_TTL.total_seconds() - 60)
    assert await rig.service.purge_expired() == 1
    await rig.clock.advance(60)
    assert await rig.service.purge_expired() == 1
    assert await rig.service.purge_expired() == 0


@contextlib.contextmanager
def watched_purges(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, *, fail_first: bool
) -> Iterator[Callable[[int], Awaitable[None]]]:
    """Count the store's purges (the first one failing, if asked); yields `reached(n)`, which
    returns once n purges have run."""
    calls = 0
    moved = asyncio.Condition()
    purge = rig.store.provisioning.delete_expired_sessions

    async def counting(now: datetime) -> int:
        nonlocal calls
        async with moved:
            calls += 1
            moved.notify_all()
        if fail_first and calls == 1:
            raise StorageError("disk I/O error")
        return await purge(now)

    async def reached(n: int) -> None:
        async with asyncio.timeout(WAIT_S), moved:
            await moved.wait_for(lambda: calls >= n)

    monkeypatch.setattr(rig.store.provisioning, "delete_expired_sessions", counting)
    yield reached


async def test_the_purge_loop_survives_a_failing_store(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await rig.service.offer(MAC, IP)
    await rig.clock.advance(PAIRING_TTL.total_seconds())
    with watched_purges(rig, monkeypatch, fail_first=True) as reached:
        task = asyncio.create_task(rig.service.run_purge(0))
        await reached(3)  # the second purge has finished
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert "disk I/O error" in caplog.text
    assert "purged 1 expired pairing sessions" in caplog.text


async def test_purging_runs_the_loop_for_the_block_only(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with watched_purges(rig, monkeypatch, fail_first=False) as reached:
        async with rig.service.purging():
            await reached(1)
    # Leaving the block cancelled the loop (the suite's fixture fails on a leaked task).


# --- the device request -----------------------------------------------------------------------


def test_settings_take_the_console_url_from_the_environment() -> None:
    settings = load_settings(None, {"ORCHESTRATOR_PAIRING__CONSOLE_BASE_URL": BASE})
    assert settings.pairing.console_base_url == BASE
    assert load_settings(None, {}).pairing == PairingSettings()


@pytest.mark.parametrize(
    "url",
    [
        LONGEST_BASE + "p",
        "ftp://pi.local",
        "http://pi.local/console?x=1",
        "http://pi local",
        "pi.local:8080",
    ],
)
def test_settings_refuse_an_unusable_console_url(url: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="console_base_url"):
        msgspec.convert({"console_base_url": url}, PairingSettings)


def _bases(count: int) -> list[str]:
    """Console URLs of the longest allowed length, with varied characters."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-._~"
    chooser = random.Random(2024)  # noqa: S311 - repeatable test URLs
    head = "https://"
    size = MAX_CONSOLE_BASE_URL_LENGTH - len(head)
    return [LONGEST_BASE] + [
        head + "".join(chooser.choice(alphabet) for _ in range(size)) for _ in range(count)
    ]


@pytest.mark.parametrize("base", _bases(40))
def test_the_longest_claim_url_and_its_qr_code_fit_one_device_request(base: str) -> None:
    msgspec.convert({"console_base_url": base}, PairingSettings)  # an allowed URL
    for code in ("YYYYYY", "KM9X3T", "333333"):
        display = pairing_display(code, base)
        body = msgspec.json.encode(display)
        assert display.qr_svg is not None
        assert len(body) <= MAX_REQUEST_BYTES
        assert msgspec.json.decode(body, type=PairingDisplay) == display


def test_the_qr_code_is_a_scalable_svg_document() -> None:
    display = pairing_display("KM9X3T", BASE)
    assert display.qr_svg is not None
    svg = ET.fromstring(display.qr_svg)  # noqa: S314 - our own output
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert "viewBox" in svg.attrib
    assert "width" not in svg.attrib
    assert [child.tag for child in svg] == ["{http://www.w3.org/2000/svg}path"]


def test_a_qr_code_too_big_for_the_device_is_left_out(caplog: pytest.LogCaptureFixture) -> None:
    # Only reachable past the settings' length limit: the guard still holds the byte limit.
    base = "https://" + "q" * 400
    display = pairing_display("KM9X3T", base)
    assert display.qr_svg is None
    assert display.claim_url == f"{base}/console/pair?code=KM9X3T"
    assert len(msgspec.json.encode(display)) <= MAX_REQUEST_BYTES
    assert "left out" in caplog.text
