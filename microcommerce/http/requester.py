"""The request port over HTTP: services of other processes answer at `POST /internal/commands`.

Services of this process (registered endpoints) are asked in-process, exactly as by
`LocalRequester`. Any other service is asked at `settings.url_of(service)`; its answer becomes
the reply or the very ServiceError an in-process call would have raised. The wire format is
in `http/commands.py` and docs/requests.md.

Requests come from many threads: every worker actor runs its own event loop, and an aiohttp
session belongs to one loop. So each loop gets its own pooled session, made on first use and
closed by `close()` on that loop (a worker does so as it stops) or by `close_all()`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import aiohttp
import msgspec

from microcommerce.actors.requests import LocalRequester, current_request_id
from microcommerce.config import Settings
from microcommerce.contracts import registry
from microcommerce.errors import InternalError, Overloaded, ServiceUnavailable, UpstreamTimeout
from microcommerce.http.commands import COMMANDS_PATH, DEADLINE_HEADER, error_from_answer
from microcommerce.http.middlewares import INTERNAL_TOKEN_HEADER, new_request_id

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3  # of an idempotent command, when the connection fails or the service answers 503
BACKOFF_S = 0.05  # before the second attempt; doubled before each next one


class HttpRequester(LocalRequester):
    """Services of this process in-process; every other one over HTTP at its service URL."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._sessions_lock = threading.Lock()

    async def _send_elsewhere(self, service: str, command: Any, *, timeout: float) -> Any:
        return await self._ask_remote(service, command, timeout)

    # -- over HTTP ---------------------------------------------------------------------------
    async def _ask_remote(self, service: str, command: Any, timeout: float) -> Any:
        """POST the command; an idempotent one is sent again (short backoff, within the
        deadline) when the connection fails or the service answers 503."""
        if not registry.is_contract_command(command):
            raise InternalError(f"{type(command).__name__} is not a contract command: "
                                "it cannot be sent to another process")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        body = registry.encode_command(command)
        headers = {
            "Content-Type": "application/json",
            INTERNAL_TOKEN_HEADER: self.settings.internal_token,
            "X-Request-Id": current_request_id.get() or new_request_id(),
        }
        url = self.settings.url_of(service) + COMMANDS_PATH
        attempt = 1
        while True:
            try:
                return await self._post(service, url, body, headers, command, deadline - loop.time(), timeout)
            except (ServiceUnavailable, Overloaded):
                backoff = BACKOFF_S * 2 ** (attempt - 1)
                if (not getattr(command, "idempotent", False) or attempt >= MAX_ATTEMPTS
                        or loop.time() + backoff >= deadline):
                    raise
            log.debug("%s: asking %s again (attempt %d)", service, type(command).__name__, attempt + 1)
            await asyncio.sleep(backoff)
            attempt += 1

    async def _post(self, service: str, url: str, body: bytes, headers: dict[str, str], command: Any,
                    remaining: float, timeout: float) -> Any:
        if remaining <= 0:
            raise UpstreamTimeout(f"{service} service did not answer in {timeout:g}s")
        headers = {**headers, DEADLINE_HEADER: str(max(1, int(remaining * 1000)))}
        try:
            async with self._session().post(url, data=body, headers=headers, allow_redirects=False,
                                            timeout=aiohttp.ClientTimeout(total=remaining)) as answer:
                raw = await answer.read()
                status, retry_after = answer.status, answer.headers.get("Retry-After")
        except TimeoutError:
            raise UpstreamTimeout(f"{service} service did not answer in {timeout:g}s") from None
        except aiohttp.ClientError as exc:
            log.debug("%s unreachable at %s: %r", service, url, exc)
            raise ServiceUnavailable(f"{service} service is unavailable") from None
        if status == 200:
            try:
                return msgspec.json.decode(raw, type=command.reply_type)
            except msgspec.DecodeError as exc:
                log.error("%s answered %s with an unreadable reply: %s", service, type(command).__name__, exc)
                raise InternalError("Internal server error") from None
        try:
            answer_body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            answer_body = None
        raise error_from_answer(status, answer_body, retry_after)

    # -- one pooled session per event loop ---------------------------------------------------
    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=64, keepalive_timeout=30)
            session = aiohttp.ClientSession(connector=connector)
            with self._sessions_lock:
                self._sessions[loop] = session
        return session

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    async def close(self) -> None:
        """Close the session of the running loop (each worker calls this as it stops)."""
        loop = asyncio.get_running_loop()
        with self._sessions_lock:
            session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()

    async def close_all(self) -> None:
        """Close every session: this loop's here, a running loop's on that loop; one whose loop
        cannot run any more (closed, or idle on a stopped thread) is dropped without a sound."""
        await self.close()
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, {}
        for loop, session in sessions.items():
            if loop.is_running() and not loop.is_closed():
                try:
                    await asyncio.wait_for(asyncio.wrap_future(
                        asyncio.run_coroutine_threadsafe(session.close(), loop)), 2.0)
                    continue
                except (TimeoutError, RuntimeError):
                    pass
            _drop(session)


def _drop(session: aiohttp.ClientSession) -> None:
    """Forget a session whose loop will never run again: close its sockets, mark it closed."""
    connector = session.connector
    session.detach()
    if connector is not None:
        connector._close()  # noqa: SLF001 - the sync half of close(); there is no loop to await on
