"""Bearer-token access control.

- Admin (write) routes: `Authorization: Bearer <GRIDMON_ADMIN_TOKEN>`. With no admin token
  configured they answer 503 — an unconfigured deployment is closed, never open.
- Read routes: open while GRIDMON_READ_TOKEN is unset; once it is set they take the read token or
  the admin token.
- `/health`, `/ready`, `/metrics` take no token (probes and scrapers).

Tokens are compared with `hmac.compare_digest` so the comparison time does not reveal how much
of a guess was right. The token itself is never logged.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gridmon.api.params import reject_unknown_query
from gridmon.config import Settings

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="GRIDMON_ADMIN_TOKEN for write/admin routes; GRIDMON_READ_TOKEN (or the admin token) for read "
    "routes when a read token is configured.",
)

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _matches(presented: str, expected: str | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def _challenge(detail: str, error: str | None = None) -> HTTPException:
    value = 'Bearer realm="gridmon"' + (f', error="{error}"' if error else "")
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": value})


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def require_admin(request: Request, credentials: Credentials) -> None:
    """Allow only the admin token."""
    settings = _settings(request)
    if settings.admin_token is None:
        raise HTTPException(status_code=503, detail="admin token not configured (set GRIDMON_ADMIN_TOKEN)")
    if credentials is None:
        raise _challenge("admin token required: send 'Authorization: Bearer <GRIDMON_ADMIN_TOKEN>'")
    token = credentials.credentials
    is_admin = _matches(token, settings.admin_token)
    is_reader = _matches(token, settings.read_token)
    if is_admin:
        return
    if is_reader:
        raise HTTPException(
            status_code=403,
            detail="the read token cannot be used here; this route needs the admin token",
            headers={"WWW-Authenticate": 'Bearer realm="gridmon", error="insufficient_scope"'},
        )
    raise _challenge("invalid token", error="invalid_token")


def require_read(request: Request, credentials: Credentials) -> None:
    """Allow anyone while no read token is configured; otherwise the read or the admin token."""
    settings = _settings(request)
    if settings.read_token is None:
        return
    if credentials is None:
        raise _challenge("read token required: send 'Authorization: Bearer <GRIDMON_READ_TOKEN>'")
    token = credentials.credentials
    # Both comparisons always run, so the time taken does not tell which token was close.
    ok_read = _matches(token, settings.read_token)
    ok_admin = _matches(token, settings.admin_token)
    if not (ok_read or ok_admin):
        raise _challenge("invalid token", error="invalid_token")


# Route dependencies: the token check first (a stranger gets 401, not a parameter critique),
# then the unknown-parameter check.
AdminAccess = [Depends(require_admin), Depends(reject_unknown_query)]
ReadAccess = [Depends(require_read), Depends(reject_unknown_query)]
