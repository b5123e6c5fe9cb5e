"""How a virtual client's request reaches the gateway: over a socket, or handed to its app.

`HttpTransport` is a real aiohttp client (the threaded harness listens on ephemeral ports).
`InProcessTransport` builds the request in memory and gives it to the gateway app's own
handler, so its router and every middleware run as for a request from the network, without a
socket, a thread or a wall-clock wait: what the deterministic runner needs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.streams import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

Answer = tuple[int, str]  # status, body text


class Transport(Protocol):
    async def send(self, method: str, path: str, body: Any, headers: dict[str, str],
                   timeout_s: float) -> Answer:
        """One HTTP exchange; raises TimeoutError or OSError/aiohttp.ClientError when it fails."""


class HttpTransport:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def send(self, method: str, path: str, body: Any, headers: dict[str, str],
                   timeout_s: float) -> Answer:
        async with self.session.request(method, self.base_url + path, json=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            return resp.status, await resp.text()


PEER = ("203.0.113.7", 40000)  # where in-process requests say they come from


class _Peer:
    """The socket details a request asks its transport for."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return PEER if name == "peername" else default

    def is_closing(self) -> bool:
        return False


class _Protocol:
    """What a request reads from its connection's protocol; nothing is ever written to it."""

    max_field_size = max_line_length = 8190
    max_headers = 128
    peername = PEER
    sockname = None
    ssl_context = None
    writer = None

    def __init__(self) -> None:
        self.transport = _Peer()


class _NoFlowControl:
    """A stream's protocol: the whole body is in memory already, so reading never pauses."""

    _reading_paused = False

    def pause_reading(self, **_: Any) -> None:
        pass

    def resume_reading(self, **_: Any) -> None:
        pass


class InProcessTransport:
    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def send(self, method: str, path: str, body: Any, headers: dict[str, str],
                   timeout_s: float) -> Answer:
        data = b"" if body is None else json.dumps(body).encode()
        all_headers = {**headers, "Host": "gateway.sim", "Content-Length": str(len(data))}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        payload = StreamReader(_NoFlowControl(), 2 ** 16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
        if data:
            payload.feed_data(data)
        payload.feed_eof()
        request = _request(method, path, all_headers, payload)
        try:
            async with asyncio.timeout(timeout_s):
                response = await self.app._handle(request)  # noqa: SLF001 - the app's own entry point
        except web.HTTPException as exc:  # what the server's protocol would have answered
            return exc.status, exc.text or ""
        return response.status, _text(response)


def _text(response: web.StreamResponse) -> str:
    if isinstance(response, web.Response) and response.body is not None:
        body = response.body
        return body.decode() if isinstance(body, bytes | bytearray) else str(body)
    return ""


def _request(method: str, path: str, headers: dict[str, str], payload: StreamReader) -> web.Request:
    """A request as aiohttp's server would build it from the wire (the app resolves its route)."""
    proxy = CIMultiDictProxy(CIMultiDict(headers))
    raw = tuple((k.encode(), v.encode()) for k, v in headers.items())
    message = RawRequestMessage(method, path, HttpVersion11, proxy, raw, False, None, False, False,
                                URL(path))
    task = asyncio.current_task()
    assert task is not None
    return web.Request(message, payload, _Protocol(), None, task, asyncio.get_running_loop())  # type: ignore[arg-type]
