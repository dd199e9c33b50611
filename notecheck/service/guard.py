"""The ASGI layer in front of every route: request body size limit, then bearer-JWT authentication.

Both run before FastAPI parses anything, so an oversized or unauthenticated request costs no JSON parsing and
gets its 413 / 401 even when its body is also malformed. The body is read here once, counted as it streams
(a client can lie in Content-Length or send it chunked), and replayed to the app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

import anyio

from .security import AuthError, Authenticator

log = logging.getLogger("uvicorn.error.notecheck")

# Reachable without a token: liveness and the API description (no note is ever processed there).
OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class Guard:
    def __init__(self, app, *, max_body_bytes: int, base_url: str,
                 authenticator: Callable[[], Authenticator | None]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.base_url = base_url.rstrip("/")
        self.authenticator = authenticator  # read per request: the app builds it in its lifespan

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _error(send, 400, "bad request", "Content-Length is not a number")
                return
            if int(declared) > self.max_body_bytes:
                await _too_large(send, self.max_body_bytes)
                return
        authenticator = self.authenticator()
        if authenticator is not None and scope["path"] not in OPEN_PATHS:
            try:
                # A JWKS given as a URL may be fetched here (with its own timeout): keep it off the event loop.
                claims = await anyio.to_thread.run_sync(authenticator.verify, headers.get("authorization"),
                                                        self.base_url + scope["path"])
            except AuthError as exc:
                await _error(send, exc.status, "unauthorized" if exc.status == 401 else "forbidden", exc.message,
                             [(b"www-authenticate", exc.www_authenticate.encode("latin-1", "replace"))])
                return
            scope.setdefault("state", {})["jwt_claims"] = claims
        if scope["method"] not in ("GET", "HEAD", "OPTIONS", "DELETE"):
            body = await self._read_body(receive)
            if body is None:
                await _too_large(send, self.max_body_bytes)
                return
            receive = _replay(body, receive)
        await self._shielded(scope, receive, send)

    async def _shielded(self, scope, receive, send) -> None:
        """Run the app; a bug becomes a JSON 500 logged by exception type only. Caught here, below
        Starlette's ServerErrorMiddleware, so no traceback (whose message could quote a note) reaches the log."""
        started = False

        async def tracking_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001
            log.error("%s %s: internal error (%s)", scope["method"], scope["path"], type(exc).__name__)
            if not started:
                await _error(send, 500, "internal error", type(exc).__name__)

    async def _read_body(self, receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive) -> Callable[[], Awaitable[dict]]:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # afterwards: the client's disconnect, as the app expects

    return replay


async def _too_large(send, limit: int) -> None:
    await _error(send, 413, "request body too large", f"the request body is over the {limit} byte limit")


async def _error(send, status: int, error: str, detail: str, extra_headers: list | None = None) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    # Connection: close, because the rest of an oversized body was not read and must not be parsed as
    # the next request on a kept-alive connection.
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *(extra_headers or [])]
    if status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
