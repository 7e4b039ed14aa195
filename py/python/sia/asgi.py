"""``sia.asgi.App``: the engine as an ASGI 3 application, so uvicorn (or any ASGI server)
serves the same FHIR, DICOMweb and WADO-URI routes as ``sia serve``::

    import sia, sia.asgi
    app = sia.asgi.App(sia.Engine("archive.db", base_url="http://127.0.0.1:8000"))
    # uvicorn module:app --port 8000

The app only translates: every request goes to :meth:`sia.Engine.handle`, which decides
status, headers and body (authorization included, from the engine's configuration). The
body is streamed from the engine's chunks: large ones (frames, files) are sent as
``memoryview``s over the engine's buffers without copying; runs of small ones (multipart
part headers, the instance objects of a series' metadata) are gathered into buffers of up
to 256 KiB, so a response is a few large writes.

What ``sia serve`` adds as a network host and this app does not: TLS, CORS, gzip,
fetching JWKS from ``jwks_url``, token introspection, the ``--dev`` EHR. Put those in
front of it (a reverse proxy, Starlette middleware), or use ``sia serve``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from . import Engine, Response

__all__ = ["App"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("sia.asgi")

#: Chunks shorter than this are copied together before sending.
SMALL_CHUNK = 16 * 1024
#: Largest buffer small chunks are gathered into.
GATHER = 256 * 1024
#: Longest request target (path and query) served; longer ones are 414 (RFC 9110 §15.5.15).
MAX_TARGET_BYTES = 8 * 1024


class App:
    """An ASGI application over ``engine``.

    Args:
        engine: the engine every request is answered by; the app does not close it.
        healthz: the path answered ``200 ok`` without reaching the engine (load balancers,
            the end-to-end tests), or None.

    Each request is logged on the ``sia.asgi`` logger as one line: method, path (never
    the query, which may carry tokens), status, bytes, microseconds; the engine's detail
    of an error (which may name a file) at WARNING.
    """

    def __init__(self, engine: Engine, *, healthz: str | None = "/healthz") -> None:
        self.engine = engine
        self.healthz = healthz

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        # Other scope types (websocket) are not served: returning without accepting
        # makes the server close the connection (ASGI spec, "websocket.connect").

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        method: str = scope["method"]
        raw = scope.get("raw_path")
        # The path as sent (still percent-encoded): the engine decodes it itself.
        path = raw.decode("latin-1") if raw else quote(scope["path"], safe="/:@!$&'()*+,;=-._~")
        path = path.split("?", 1)[0]
        query = scope.get("query_string", b"").decode("latin-1")
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope.get("headers", [])]
        if method not in ("GET", "HEAD"):
            # The engine answers POST itself (405/501); the request body is not needed.
            await _drain(receive)
        if len(path) + len(query) + 1 > MAX_TARGET_BYTES:
            status, sent = await _plain(send, 414, f"the request target is longer than {MAX_TARGET_BYTES} bytes\n")
        elif self.healthz is not None and path == self.healthz:
            status, sent = await _plain(send, 200, "ok\n")
        else:
            target = f"{path}?{query}" if query else path
            loop = asyncio.get_running_loop()
            # The engine reads SQLite and files synchronously, with the GIL released: a
            # worker thread keeps the event loop free meanwhile.
            resp: Response = await loop.run_in_executor(None, self.engine.handle, method, target, headers)
            if resp.detail:
                log.warning("%s %s: %d: %s", method, _loggable(path), resp.status, resp.detail)
            status, sent = resp.status, await _send_response(send, resp, head=method == "HEAD")
        log.info(
            "%s %s %d %d %dus",
            method,
            _loggable(path),
            status,
            sent,
            (time.perf_counter() - start) * 1e6,
        )


async def _send_response(send: Send, resp: Response, head: bool) -> int:
    """Sends status, headers and the body's chunks; returns the body's length."""
    await send(
        {
            "type": "http.response.start",
            "status": resp.status,
            "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in resp.headers],
        }
    )
    if head:
        await send({"type": "http.response.body", "body": b""})
        return 0
    total = 0
    gathered = bytearray()
    for view in resp.chunks:
        n = len(view)
        total += n
        if n < SMALL_CHUNK:
            if len(gathered) + n > GATHER:
                await send({"type": "http.response.body", "body": bytes(gathered), "more_body": True})
                gathered.clear()
            gathered += view
            continue
        if gathered:
            await send({"type": "http.response.body", "body": bytes(gathered), "more_body": True})
            gathered.clear()
        # A large chunk goes out as the engine's own buffer (a frame, a file range).
        await send({"type": "http.response.body", "body": view, "more_body": True})
    await send({"type": "http.response.body", "body": bytes(gathered)})
    return total


async def _plain(send: Send, status: int, text: str) -> tuple[int, int]:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status, len(body)


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _loggable(path: str) -> str:
    """The path for a log line: capability segments (``/cap/{capability}/``) replaced, at
    most 200 characters, control characters escaped (as ``sia serve`` logs)."""
    parts = path.split("/")
    for i in range(len(parts) - 1):
        if parts[i] == "cap":
            parts[i + 1] = "…"
    joined = "/".join(parts)
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in joined[:200])
    return out + ("…" if len(joined) > 200 else "")
