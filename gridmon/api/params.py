"""Request parameters shared by the routers: ids, page sizes, opaque keyset cursors, times."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Path, Query, Request
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel, BeforeValidator, Field

from gridmon.config import get_settings
from gridmon.domain import readings

# Same rule as reading validation (gridmon.domain.readings): ids that can exist.
DEVICE_ID_PATTERN = readings.DEVICE_ID_PATTERN
DEVICE_ID_MAX = readings.DEVICE_ID_MAX
BIGINT_MAX = 2**63 - 1  # ids are bigserial: larger numbers cannot exist and must not reach SQL

MAX_PAGE = 500
DEFAULT_PAGE = 100

DeviceId = Annotated[
    str,
    Path(
        pattern=DEVICE_ID_PATTERN,
        max_length=DEVICE_ID_MAX,
        description="Device id (as in the MQTT topic `grid/sensors/<id>`).",
        examples=["meter-1"],
    ),
]
RowId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="Numeric id.", examples=[1])]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size (1–{MAX_PAGE}).")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Opaque cursor from the previous page's `next_cursor`.",
    ),
]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]|$)")


def _iso_only(value: Any) -> Any:
    # Pydantic would also take `0.5` as seconds since the epoch; the schema promises ISO-8601.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO-8601 date-time, e.g. 2026-01-01T00:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]
"""A date-time query parameter: ISO-8601 only (naive = UTC)."""

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a keyset-paginated list."""

    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")


def encode_cursor(*values: Any) -> str:
    """An opaque, URL-safe cursor for the keyset `values` of the last item on a page."""
    raw = json.dumps(list(values), separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The keyset values of a cursor, checked against `types` (str, int or datetime); 400 if bad
    (a NUL in a text value, which PostgreSQL cannot take, included)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong arity")
        out: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if kind is datetime:
                out.append(datetime.fromisoformat(value))
            elif kind is int:
                if type(value) is not int or not 0 <= value <= BIGINT_MAX:
                    raise ValueError("not an id")
                out.append(value)
            elif kind is str and isinstance(value, str):
                if len(value) > 200 or any(ord(c) < 0x20 for c in value):
                    raise ValueError("control character in a text cursor")
                out.append(value)
            elif isinstance(value, kind):
                out.append(value)
            else:
                raise ValueError("wrong type")
        return tuple(out)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise HTTPException(status_code=400, detail="invalid cursor: pass a next_cursor returned by this API") from exc


def aware(value: datetime) -> datetime:
    """Naive times are taken as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_LOWEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=2)
_HIGHEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)


def shifted(value: datetime, delta: timedelta) -> datetime:
    """`value + delta`, clamped to the representable range instead of overflowing."""
    try:
        return value + delta
    except OverflowError:
        return _LOWEST if delta < timedelta(0) else _HIGHEST


def now_utc() -> datetime:
    return datetime.now(UTC)


# A device that has not reported for this long is shown as `stale` (and counted so in /metrics):
# GRIDMON_DEVICE_STALE_AFTER_S, read once when the API starts.
STALE_AFTER_S = get_settings().device_stale_after_s


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not take: `?severty=high` must not silently
    return everything."""
    route = request.scope.get("route")
    dependant: Dependant | None = getattr(route, "dependant", None)
    if dependant is None:
        return
    unknown = sorted(set(request.query_params.keys()) - _query_names(dependant))
    if unknown:
        names = ", ".join(repr(name[:64]) for name in unknown[:5])
        raise HTTPException(status_code=422, detail=f"unknown query parameter(s): {names}")
