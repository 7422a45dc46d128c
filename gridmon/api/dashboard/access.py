"""Read access for the live stream, which browsers open with `EventSource`.

`EventSource` cannot send an `Authorization` header, so this one endpoint also takes the token
as the `token` query parameter. The rules are the API's read rules (`gridmon.api.auth`): open
while GRIDMON_READ_TOKEN is unset; otherwise the read token or the admin token, compared in
constant time. The API's access log never writes query strings, so the token stays out of logs.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import HTTPException, Query, Request

from gridmon.api.auth import Credentials
from gridmon.config import Settings

TokenParam = Annotated[
    str | None,
    Query(max_length=512, description="Read (or admin) token, for clients that cannot send headers."),
]


def _equal(presented: bytes, expected: str | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(presented, expected.encode())


def require_live_read(request: Request, credentials: Credentials, token: TokenParam = None) -> None:
    """Allow the stream under the API's read rules, with the token from the header or `?token=`."""
    settings: Settings = request.app.state.settings
    if settings.read_token is None:
        return
    presented = token if token is not None else (credentials.credentials if credentials else None)
    if presented is None:
        raise HTTPException(
            status_code=401,
            detail="read token required: send 'Authorization: Bearer <GRIDMON_READ_TOKEN>' or '?token='",
            headers={"WWW-Authenticate": 'Bearer realm="gridmon"'},
        )
    raw = presented.encode()
    # Both comparisons always run, so the time taken does not tell which token was close.
    ok_read = _equal(raw, settings.read_token)
    ok_admin = _equal(raw, settings.admin_token)
    if not (ok_read or ok_admin):
        raise HTTPException(
            status_code=401,
            detail="invalid token",
            headers={"WWW-Authenticate": 'Bearer realm="gridmon", error="invalid_token"'},
        )
