"""The dashboard's session cookie: the token is sent once, then a signed, HttpOnly cookie stands in.

A browser page must not keep the admin token in script-readable storage nor put it in a URL (an
`EventSource` cannot send headers). So the page sends the token once, in the `Authorization`
header of `POST /ui/session`, and gets `gridmon_session` back: `HttpOnly` (no script reads it),
`SameSite=Strict` (no other site's page makes the browser send it), `Secure` over HTTPS, and
`Max-Age` GRIDMON_SESSION_TTL_S. Its value is `<role>.<expiry>.<signature>`, the signature an
HMAC-SHA256 of role and expiry keyed with that role's token: no server-side state (any API process
checks it), and rotating a token ends every session made with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from http.cookies import SimpleCookie

from gridmon.config import Settings

COOKIE = "gridmon_session"
ADMIN, READ = "admin", "read"


def _key(settings: Settings, role: str) -> bytes | None:
    token = settings.admin_token if role == ADMIN else settings.read_token if role == READ else None
    return token.encode() if token else None


def _signature(key: bytes, role: str, expires: int) -> str:
    digest = hmac.new(key, f"gridmon-session:{role}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue(settings: Settings, role: str, now: float | None = None) -> tuple[str, int]:
    """(cookie value, expiry epoch) of a new session for `role` (whose token must be configured)."""
    key = _key(settings, role)
    if key is None:
        raise ValueError(f"no {role} token is configured")
    expires = int((now if now is not None else time.time()) + settings.session_ttl_s)
    return f"{role}.{expires}.{_signature(key, role, expires)}", expires


def verify(settings: Settings, value: str, now: float | None = None) -> str | None:
    """The role of a valid, unexpired session cookie value; None otherwise."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(value) > 200:
        return None
    role, expires_text, signature = parts
    key = _key(settings, role)
    if key is None or int(expires_text) <= (now if now is not None else time.time()):
        return None
    if not hmac.compare_digest(signature.encode(), _signature(key, role, int(expires_text)).encode()):
        return None
    return role


def from_cookie_header(header: str | None) -> str | None:
    """The session cookie's value from a `Cookie` header, if present."""
    if not header or COOKIE not in header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # http.cookies raises CookieError and others on garbage: no session
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def set_cookie_header(value: str, max_age: int, secure: bool) -> str:
    """The `Set-Cookie` header that stores a session."""
    flags = f"; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
    return f"{COOKIE}={value}{flags}"


def clear_cookie_header(secure: bool) -> str:
    return set_cookie_header("", 0, secure)
