"""JSON error bodies and the exception handlers that produce them.

Every error the API returns has the same shape, `ErrorBody`: a one-line `detail` a person can
act on, plus `errors` (which parameter was wrong) for 422s and `reason` for a rejected dead-letter
replay. Failures of a backing service become 503 naming the service, never a bare 500.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

import psycopg
import psycopg.errors
import redis
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One invalid request parameter."""

    loc: list[str | int] = Field(description="Where: e.g. ['query', 'limit'].")
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="Machine-readable error type.")


class ErrorBody(BaseModel):
    """The body of every error response."""

    detail: str = Field(description="What went wrong, in one line.")
    errors: Annotated[list[FieldError] | None, Field(description="Invalid parameters (422 only).")] = None
    reason: Annotated[str | None, Field(description="Validation reason of a rejected dead-letter replay.")] = None


def error_response(
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    *,
    errors: list[FieldError] | None = None,
    reason: str | None = None,
) -> JSONResponse:
    """An `ErrorBody` response (fields that do not apply are left out)."""
    body = ErrorBody(detail=detail, errors=errors, reason=reason)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _loc_text(loc: list[str | int]) -> str:
    return ".".join(str(part) for part in loc)


def _allowed_methods(request: Request) -> str:
    """Every method the OpenAPI document lists for this path. Starlette's own `Allow` names only
    the first route that matched, but GET and PUT /devices/{id} are two routes."""
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, detail, headers=headers or None)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(
            loc=[p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
            msg=str(err.get("msg", "")),
            type=str(err.get("type", "")),
        )
        for err in exc.errors()
    ]
    if any(e.type == "json_invalid" for e in errors):
        # Not a wrong value but an unreadable body (not JSON, not UTF-8): 400, as documented.
        return error_response(400, "request body is not valid JSON", errors=errors)
    summary = "; ".join(f"{_loc_text(e.loc)}: {e.msg}" for e in errors[:5]) or "invalid request"
    return error_response(422, f"invalid request: {summary}", errors=errors)


async def _database_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable error=%s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return error_response(503, "database unavailable (check GRIDMON_DATABASE_URL and that PostgreSQL is running)")


async def _statement_timeout(request: Request, exc: Exception) -> JSONResponse:
    log.warning("query cancelled by the statement timeout method=%s path=%s", request.method, request.url.path[:200])
    return error_response(
        503,
        "the request's database work took longer than the API allows (GRIDMON_API_STATEMENT_TIMEOUT_S); "
        "narrow the request or try again later",
        {"Retry-After": "5"},
    )


async def _redis_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("redis unavailable error=%s", exc)
    return error_response(503, "redis unavailable (check GRIDMON_REDIS_URL and that Redis is running)")


async def _broker_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("celery broker unavailable error=%s", exc)
    return error_response(503, "celery broker unavailable (check GRIDMON_BROKER_URL)")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error method=%s path=%s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; see the API log")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(psycopg.errors.QueryCanceled, _statement_timeout)
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(sqlalchemy.exc.OperationalError, _database_down)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _database_down)
    app.add_exception_handler(redis.ConnectionError, _redis_down)
    app.add_exception_handler(redis.TimeoutError, _redis_down)
    app.add_exception_handler(BrokerError, _broker_down)
    app.add_exception_handler(Exception, _unexpected)


# Responses every route may give, for the OpenAPI document.
COMMON_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "A cursor the API did not issue, or a range over the readings budget"},
    422: {"model": ErrorBody, "description": "Invalid parameters"},
    503: {"model": ErrorBody, "description": "A backing service (database, Redis, broker) is unavailable"},
}
AUTH_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid bearer token"},
}
FORBIDDEN: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorBody, "description": "The read token on an admin route"},
}
BAD_BODY: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The request body could not be read (not JSON, not UTF-8)"},
    413: {"model": ErrorBody, "description": "The request body is larger than GRIDMON_API_MAX_BODY_BYTES"},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": ErrorBody, "description": "Not found"}}
# Responses of every data route (token-protected, with parameters, backed by the database);
# admin routes add FORBIDDEN.
DATA_RESPONSES: dict[int | str, dict[str, object]] = {**AUTH_RESPONSES, **COMMON_RESPONSES}
ADMIN_RESPONSES: dict[int | str, dict[str, object]] = {**DATA_RESPONSES, **FORBIDDEN}
