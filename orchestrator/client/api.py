"""The V1 API as a client sees it: envelopes decoded into our errors, and TOTP step-up.

Every answer is the contract's envelope. A success yields its `data`, decoded into the
expected type; an error becomes `ApiError` carrying the contract code and message. A call to
a gated operation that the appliance refuses for want of step-up is retried once with a TOTP
code, given up front (`--totp`) or asked for at the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
import msgspec

from orchestrator.domain.errors import ErrorCode, OrchestratorError
from orchestrator.domain.totp import GatedOperation
from orchestrator.security.stepup import TOTP_CODE_HEADER

T = TypeVar("T")

API_KEY_HEADER = "X-API-Key"
PROVISIONING = "/api/v1/provisioning"
AUTH_STATUS = "/api/v1/auth/status"
DEFAULT_URL = "http://127.0.0.1:8080"

Prompt = Callable[[str], str | None]
"""Asks the person at the terminal (blocking); None when nobody can answer."""

_STEP_UP_REFUSALS = frozenset({ErrorCode.TOTP_INVALID, ErrorCode.TOTP_EXPIRED})


class ApiError(OrchestratorError):
    """The appliance refused a request: the contract code and message, and the HTTP status."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int,
        details: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(code, message, details=details, retry_after_s=retry_after_s)
        self.status = status


class StepUpNeededError(ApiError):
    """A gated call wants a TOTP code and there was none to give (no terminal to ask)."""


class ApplianceUnreachableError(OrchestratorError):
    """No answer from the appliance: refused, reset, timed out or not an HTTP server."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.NETWORK_ERROR, message)


class _Success(msgspec.Struct, Generic[T]):
    data: T


class _ErrorBody(msgspec.Struct):
    code: str
    message: str
    details: str | None = None
    retry_after_seconds: int | None = None


class _Failure(msgspec.Struct):
    error: _ErrorBody


class _AuthStatus(msgspec.Struct):
    totp_enrolled: bool
    totp_required_for: list[str]


def _code_of(text: str) -> ErrorCode:
    try:
        return ErrorCode(text)
    except ValueError:
        # A newer appliance may know codes we do not: keep its words, file under internal.
        return ErrorCode.INTERNAL_ERROR


def error_of(response: httpx.Response) -> ApiError:
    """The error an unsuccessful response carries (its envelope, or what it was instead)."""
    try:
        failure = msgspec.json.decode(response.content, type=_Failure)
    except msgspec.DecodeError:
        return ApiError(
            ErrorCode.INTERNAL_ERROR,
            f"HTTP {response.status_code} without an error envelope from {response.url.path}; "
            "is this an orchestrator?",
            status=response.status_code,
        )
    body = failure.error
    code, details = _code_of(body.code), body.details
    if code != body.code:
        details = f"{body.code}: {details}" if details else body.code
    return ApiError(
        code,
        body.message,
        status=response.status_code,
        details=details,
        retry_after_s=body.retry_after_seconds,
    )


def data_of(response: httpx.Response, kind: type[T]) -> T:
    """The `data` of a successful envelope, as `kind`; ApiError for anything else."""
    if not response.is_success:
        raise error_of(response)
    try:
        return msgspec.json.decode(response.content, type=_Success[kind]).data  # type: ignore[valid-type]
    except msgspec.DecodeError as exc:
        raise ApiError(
            ErrorCode.INTERNAL_ERROR,
            f"unexpected answer from {response.url.path}: {exc}",
            status=response.status_code,
        ) from exc


def _no_prompt(_: str) -> str | None:
    return None


class ApiClient:
    """One appliance's V1 API; use it as an async context manager (it owns the connection
    pool). `totp` is a code to send with the first gated call; `prompt` asks for more."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        totp: str | None = None,
        prompt: Prompt = _no_prompt,
        timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._totp = totp
        self._prompt = prompt
        self._timeout_s = timeout_s
        # trust_env=False: the appliance is on the local network; a proxy meant for the
        # internet (HTTP_PROXY in the environment) must not carry the API key to it.
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r}, api_key=<redacted>)"

    async def __aenter__(self) -> ApiClient:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    # -- requests -----------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        kind: type[T],
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        gated: GatedOperation | None = None,
    ) -> T:
        """`method` on `path` (under /api/v1/provisioning); the answer's `data` as `kind`.

        A `gated` call carries the code given up front; when the appliance wants step-up
        (no code, or a wrong or expired one) it is asked for a code and sent once more.
        """
        sent = dict(headers or {})
        if method != "GET" and content is None:
            # The contract: requests carry JSON even without a body (an empty one is fine).
            sent.setdefault("Content-Type", "application/json")
        if gated is not None and self._totp:
            sent[TOTP_CODE_HEADER] = self._totp
            self._totp = None  # a code is accepted once; a second call needs a new one

        def request(extra: Mapping[str, str]) -> httpx.Request:
            return self._http.build_request(
                method,
                PROVISIONING + path,
                json=json,
                content=content,
                params=params,
                headers={**sent, **extra},
            )

        response = await self._send(request({}))
        if response.is_success or gated is None:
            return data_of(response, kind)
        error = error_of(response)
        if not await self._wants_step_up(error, gated):
            raise error
        # The prompt blocks on the terminal: off the loop, like any blocking call.
        code = await asyncio.to_thread(
            self._prompt, f"TOTP code for {gated} (from the authenticator app): "
        )
        if not code:
            raise StepUpNeededError(
                error.code, error.message, status=error.status, details=error.details
            )
        return data_of(await self._send(request({TOTP_CODE_HEADER: code.strip()})), kind)

    async def get(self, path: str, kind: type[T], **params: str) -> T:
        """GET `path` (under /api/v1/provisioning)."""
        return await self.call("GET", path, kind, params=params)

    async def download(self, path: str, **params: str) -> httpx.Response:
        """GET `path` and return the whole response (for bodies that are not envelopes)."""
        response = await self._send(
            self._http.build_request("GET", PROVISIONING + path, params=params)
        )
        if not response.is_success:
            raise error_of(response)
        return response

    @contextlib.asynccontextmanager
    async def event_stream(
        self, session_id: str | None, last_event_id: str | None, idle_s: float
    ) -> AsyncIterator[httpx.Response]:
        """The open event stream (its status checked); a read that waits longer than
        `idle_s` fails, so a dead connection is noticed even without a FIN."""
        params = {"session_id": session_id} if session_id else {}
        headers = {API_KEY_HEADER: self._api_key, "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        request = self._http.build_request(
            "GET",
            f"{PROVISIONING}/batch/events",
            params=params,
            headers=headers,
            timeout=httpx.Timeout(self._timeout_s, read=idle_s),
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._http.send(request, stream=True)
        except (httpx.TransportError, TimeoutError) as exc:
            raise self._unreachable(exc) from exc
        try:
            if not response.is_success:
                await response.aread()
                raise error_of(response)
            yield response
        finally:
            await response.aclose()

    async def _send(self, request: httpx.Request) -> httpx.Response:
        request.headers[API_KEY_HEADER] = self._api_key
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._http.send(request)
        except (httpx.TransportError, TimeoutError) as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: BaseException) -> ApplianceUnreachableError:
        reason = str(exc) or type(exc).__name__
        return ApplianceUnreachableError(f"cannot reach the appliance at {self.base_url}: {reason}")

    async def _wants_step_up(self, error: ApiError, operation: GatedOperation) -> bool:
        """Whether `error` says a TOTP code is missing, wrong or expired: TOTP_* codes say
        so; UNAUTHORIZED does when the appliance gates `operation`, has a seed enrolled, and
        accepts our key (else the key, or a missing enrollment, is the problem)."""
        if error.code in _STEP_UP_REFUSALS:
            return True
        if error.code is not ErrorCode.UNAUTHORIZED:
            return False
        status = data_of(
            await self._send(self._http.build_request("GET", AUTH_STATUS)), _AuthStatus
        )
        if not status.totp_enrolled or operation not in status.totp_required_for:
            return False
        probe = await self._send(self._http.build_request("GET", f"{PROVISIONING}/network/status"))
        return probe.is_success
