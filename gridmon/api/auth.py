"""Bearer-token access control.

- Admin (write) routes: `Authorization: Bearer <GRIDMON_ADMIN_TOKEN>`. With no admin token
  configured they answer 503 — an unconfigured deployment is closed, never open.
- Read routes: open while GRIDMON_READ_TOKEN is unset; once it is set they take the read token or
  the admin token.
- `/health`, `/ready`, `/metrics` take no token (probes and scrapers); `/ready` shows its
  details (hosts, worker names) only to the read or admin token.
- The dashboard sends the token once and then uses a signed session cookie instead
  (`gridmon.api.session`); a write with the cookie also needs the `X-Requested-With` header.

Tokens are compared with `hmac.compare_digest` so the comparison time does not reveal how much
of a guess was right. The token itself is never logged.
"""

from __future__ import annotations

import hmac
from http import HTTPMethod
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gridmon.api import session
from gridmon.api.params import reject_unknown_query
from gridmon.api.session import ADMIN, READ
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


def caller(settings: Settings, bearer: str | None, cookie_header: str | None) -> str:
    """Who is calling: `admin`, `read`, `none` (no credentials) or `invalid` (a wrong token). A bearer
    token wins over the dashboard's session cookie; an expired or foreign cookie counts as none."""
    if bearer is not None:
        # Both comparisons always run, so the time taken does not tell which token was close.
        is_admin = _matches(bearer, settings.admin_token)
        is_reader = _matches(bearer, settings.read_token)
        return ADMIN if is_admin else READ if is_reader else "invalid"
    value = session.from_cookie_header(cookie_header)
    role = session.verify(settings, value) if value is not None else None
    return role or "none"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _challenge(detail: str, error: str | None = None) -> HTTPException:
    value = 'Bearer realm="gridmon"' + (f', error="{error}"' if error else "")
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": value})


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _who(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    bearer = credentials.credentials if credentials is not None else None
    return caller(_settings(request), bearer, request.headers.get("cookie"))


UNSAFE_METHODS = frozenset((HTTPMethod.POST, HTTPMethod.PUT, HTTPMethod.PATCH, HTTPMethod.DELETE))
CSRF_HEADER = "x-requested-with"


def admin_problem(
    settings: Settings, who: str, method: str, *, via_cookie: bool, csrf_header: bool
) -> HTTPException | None:
    """Why `who` may not use an admin route (None: it may). Shared with the body guard, which asks
    before a request body is read."""
    if settings.admin_token is None:
        return HTTPException(status_code=503, detail="admin token not configured (set GRIDMON_ADMIN_TOKEN)")
    if who == ADMIN:
        if via_cookie and method in UNSAFE_METHODS and not csrf_header:
            # SameSite=Strict already keeps other sites' pages from sending the cookie; a
            # header no plain HTML form can set is the second lock.
            return HTTPException(status_code=403, detail=f"a session-cookie write needs the {CSRF_HEADER} header")
        return None
    if who == READ:
        return HTTPException(
            status_code=403,
            detail="the read token cannot be used here; this route needs the admin token",
            headers={"WWW-Authenticate": 'Bearer realm="gridmon", error="insufficient_scope"'},
        )
    if who == "invalid":
        return _challenge("invalid token", error="invalid_token")
    return _challenge("admin token required: send 'Authorization: Bearer <GRIDMON_ADMIN_TOKEN>'")


def require_admin(request: Request, credentials: Credentials) -> None:
    """Allow only the admin token (or an admin session of the dashboard)."""
    problem = admin_problem(
        _settings(request),
        _who(request, credentials),
        request.method,
        via_cookie=credentials is None,
        csrf_header=CSRF_HEADER in request.headers,
    )
    if problem is not None:
        raise problem


def require_read(request: Request, credentials: Credentials) -> None:
    """Allow anyone while no read token is configured; otherwise the read or the admin token."""
    settings = _settings(request)
    if settings.read_token is None:
        return
    who = _who(request, credentials)
    if who == "invalid":
        raise _challenge("invalid token", error="invalid_token")
    if who not in (ADMIN, READ):
        raise _challenge("read token required: send 'Authorization: Bearer <GRIDMON_READ_TOKEN>'")


# Route dependencies: the token check first (a stranger gets 401, not a parameter critique),
# then the unknown-parameter check.
AdminAccess = [Depends(require_admin), Depends(reject_unknown_query)]
ReadAccess = [Depends(require_read), Depends(reject_unknown_query)]
