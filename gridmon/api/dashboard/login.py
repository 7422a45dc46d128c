"""`/ui/session`: the dashboard trades the token for its session cookie (`gridmon.api.session`).

`POST` with `Authorization: Bearer <token>` (no body) sets the cookie; `GET` says what the cookie
allows (the page cannot read an HttpOnly cookie); `DELETE` forgets it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from gridmon.api import session
from gridmon.api.auth import Credentials, caller
from gridmon.api.params import reject_unknown_query
from gridmon.api.session import ADMIN, READ

router = APIRouter(include_in_schema=False)


class SessionInfo(BaseModel):
    role: Literal["admin", "read"] | None = Field(description="What the session cookie allows; null without one.")
    expires_at: datetime | None = None


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.post("/ui/session", response_model=SessionInfo, dependencies=[Depends(reject_unknown_query)])
def start_session(request: Request, credentials: Credentials, response: Response) -> SessionInfo:
    """Trade the token (in the Authorization header, once) for the session cookie."""
    settings = request.app.state.settings
    who = caller(settings, credentials.credentials if credentials else None, None)
    if who not in (ADMIN, READ):
        raise HTTPException(
            status_code=401,
            detail="send the read or admin token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="gridmon"'},
        )
    value, expires = session.issue(settings, who)
    response.headers["Set-Cookie"] = session.set_cookie_header(value, int(settings.session_ttl_s), _secure(request))
    response.headers["Cache-Control"] = "no-store"
    return SessionInfo(role=who, expires_at=datetime.fromtimestamp(expires, UTC))


@router.get("/ui/session", response_model=SessionInfo, dependencies=[Depends(reject_unknown_query)])
def current_session(request: Request) -> SessionInfo:
    """What this browser's session cookie allows (the page cannot read the HttpOnly cookie itself)."""
    value = session.from_cookie_header(request.headers.get("cookie"))
    settings = request.app.state.settings
    role = session.verify(settings, value) if value else None
    if role is None:
        return SessionInfo(role=None)
    expires = int(value.split(".")[1]) if value else 0
    return SessionInfo(role=role, expires_at=datetime.fromtimestamp(expires, UTC))


@router.delete("/ui/session", status_code=204, dependencies=[Depends(reject_unknown_query)])
def end_session(request: Request) -> Response:
    """Forget the session cookie."""
    return Response(status_code=204, headers={"Set-Cookie": session.clear_cookie_header(_secure(request))})
