"""The server's limits, and the ASGI middleware that holds request bodies to their size.

Every bound a client could otherwise push (results per query, ids per request, history length, body
size, connections) is one field of :class:`Limits`; ``pinsage serve`` sets them from its flags.
:class:`BodyLimit` reads a request's body before the application sees it and answers ``413`` with a
JSON message as soon as the body passes ``max_body_bytes``: at once when the ``Content-Length`` header
says so, else (a chunked body) when the bytes streamed so far do. Nothing here imports fastapi.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Callable

__all__ = ["Limits", "BodyLimit"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(4, 2 * cpus)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask and on the server's concurrency.

    Attributes:
        max_k: results per query (``k`` of ``/related``, ``n`` of ``/recommend``).
        max_batch: ids per request (query items, users or histories).
        max_history: items per history; a user's history from the graph is cut to its most recent ones.
        max_exclude: ids in a request's exclusions, all lists together.
        max_body_bytes: request body size (413 beyond).
        threads: worker threads answering the larger requests (each searches with one faiss thread).
        max_connections: concurrent connections; uvicorn answers 503 beyond.
        inline_results: a ``/related`` request asking for at most this many results (queries x
            (k + excluded ids)) is answered on the event loop's thread, without a hand-off to a worker
            thread (cheaper for small requests); 0 sends every search to the worker threads.
    """

    max_k: int = 1000
    max_batch: int = 1000
    max_history: int = 1000
    max_exclude: int = 10_000
    max_body_bytes: int = 1 << 20
    threads: int = _default_threads()
    max_connections: int = 1024
    inline_results: int = 100

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _json(status: int, detail: str) -> tuple[Message, Message]:
    body = json.dumps({"detail": detail}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]}
    return start, {"type": "http.response.body", "body": body}


class BodyLimit:
    """ASGI middleware: request bodies of at most ``max_bytes``, else ``413`` (JSON, connection closed).

    The body is read in full (it is small: at most ``max_bytes``) and handed on to the application in
    one message, so the application never starts on a request that would turn out too large. The
    rest of an over-size body is drained (up to ``drain_bytes``) before answering, so that a client
    still sending reads the 413 rather than a reset connection.

    Args:
        app: the ASGI application.
        max_bytes: the largest body accepted.
        drain_bytes: how much of a refused body to read and discard before answering.
    """

    def __init__(self, app: Callable, max_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.drain_bytes = int(drain_bytes if drain_bytes is not None else 16 * max_bytes)

    async def _refuse(self, send: Send, status: int, detail: str) -> None:
        start, body = _json(status, detail)
        await send(start)
        await send(body)

    async def _drain(self, receive: Receive, more: bool, seen: int) -> None:
        while more and seen <= self.drain_bytes:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            seen += len(msg.get("body", b""))
            more = bool(msg.get("more_body"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body too large: the limit is {self.max_bytes} bytes"
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None:
            if not length.strip().isdigit():
                await self._refuse(send, 400, f"bad Content-Length header {length.decode('latin-1')!r}")
                return
            if int(length) > self.max_bytes:
                await self._drain(receive, True, 0)
                await self._refuse(send, 413, f"{too_large}; Content-Length says {int(length)}")
                return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return  # the client went away before sending its body
            chunk = msg.get("body", b"")
            size += len(chunk)
            more = bool(msg.get("more_body"))
            if size > self.max_bytes:
                await self._drain(receive, more, size)
                await self._refuse(send, 413, f"{too_large}; {size} bytes or more were sent")
                return
            chunks.append(chunk)
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: http.disconnect when the client leaves

        await self.app(scope, replay, send)
