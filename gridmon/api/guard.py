"""The API's front door: what is checked before a request is handed to FastAPI.

FastAPI reads and parses a request's body before it runs the route's dependencies, the token
check among them: a stranger could make the API read (and hold in memory) any body before being
told 401. This pure ASGI middleware decides first, from the headers alone:
- a declared body larger than GRIDMON_API_MAX_BODY_BYTES is refused with 413; a body sent without
  a length (chunked) is read only up to that limit;
- a request that carries a body must present the admin token (or an admin session cookie) —
  every route that takes a body is an admin route — else 401/403 (503 while no admin token is
  configured), and the body is never read;
- every request's database work runs as the `api` role (`gridmon.storage.db.role`): the API's
  statement timeout, shorter than the jobs'.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridmon.api.auth import CSRF_HEADER, admin_problem, bearer_token, caller
from gridmon.api.errors import error_response
from gridmon.config import Settings
from gridmon.storage import db


class RequestGuard:
    """Body limit and admin-before-body for HTTP requests; the `api` database role for all."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            with db.role(db.API):
                await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        limit = self.settings.api_max_body_bytes
        declared = headers.get(b"content-length")
        chunked = b"transfer-encoding" in headers
        if declared is not None and not declared.strip().isdigit():
            await error_response(400, "Content-Length is not a number")(scope, receive, send)
            return
        length = int(declared) if declared is not None else 0
        if length > limit:
            await self._too_large(scope, receive, send, f"{length} bytes")
            return
        if length > 0 or chunked:
            authorization = headers.get(b"authorization", b"").decode("latin-1")
            bearer = bearer_token(authorization)
            who = caller(self.settings, bearer, headers.get(b"cookie", b"").decode("latin-1") or None)
            problem = admin_problem(
                self.settings,
                who,
                str(scope.get("method", "")),
                via_cookie=bearer is None,
                csrf_header=CSRF_HEADER.encode() in headers,
            )
            if problem is not None:
                # The same answer the route's own check gives, only before the body is read.
                response = error_response(problem.status_code, str(problem.detail), dict(problem.headers or {}))
                await response(scope, receive, send)
                return
        if chunked and declared is None:
            body = await self._read_bounded(receive, limit)
            if body is None:
                await self._too_large(scope, receive, send, "a chunked body")
                return
            receive = _replay(body, receive)
        with db.role(db.API):
            await self.app(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        limit = self.settings.api_max_body_bytes
        detail = f"request body ({what}) is larger than {limit} bytes (GRIDMON_API_MAX_BODY_BYTES)"
        await error_response(413, detail, {"Connection": "close"})(scope, receive, send)

    @staticmethod
    async def _read_bounded(receive: Receive, limit: int) -> bytes | None:
        """The whole body if it is at most `limit` bytes, else None (reading stops there)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
