"""Staff reports: the inventory discrepancy report and the circulation statistics.

Both are read-only (``circulation.read``; nothing to audit) and come as JSON or as CSV
(one table per request, a header row, ``text/csv; charset=utf-8`` with a file name) so a
branch can open them in a spreadsheet. Bad parameters are a 422 naming the reason.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from . import inventory, stats
from .db import write_tx
from .security import ApiError, Staff, record_audit, request_engine, request_now, require

__all__ = ["router"]

router = APIRouter()

Format = Literal["json", "csv"]

DISCREPANCY_COLUMNS = ("kind", "cabinet_id", "door", "item_id", "owner_library",
                       "believed_status", "believed_location_cabinet_id", "snapshot_at",
                       "snapshot_age_s")
CABINET_COLUMNS = ("cabinet_id", "status", "doors_reported", "oldest_snapshot_at",
                   "newest_snapshot_at", "oldest_snapshot_age_s", "items_seen", "unreadable",
                   "changed_since", "unverified",
                   *(f"{kind}_count" for kind in inventory.KINDS))


def _cell(value: Any) -> Any:
    """One CSV cell: None empty, lists joined; text a spreadsheet would run as a formula
    (item ids come from RFID tags anyone can write) is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_response(columns: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    """A CSV download: header row, then the rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return Response(content=buffer.getvalue().encode("utf-8"),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _stamp(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%MZ")


@router.get("/api/reports/discrepancies")
def discrepancy_report(
        request: Request, member: Annotated[Staff, Depends(require("circulation.read"))],
        cabinet_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        format: Format = "json",  # noqa: A002 - the query parameter's public name
        table: Literal["discrepancies", "cabinets"] = "discrepancies") -> Any:
    """Snapshots vs what the server believes (server.inventory has the rules).

    JSON: ``{"discrepancies": [...], "cabinets": [...]}``; CSV: the ``table`` chosen
    (default the discrepancy rows). An unknown ``cabinet_id`` is a 404, not an empty list
    that would read as "all is well".
    """
    now = request_now(request)
    with request_engine(request).connect() as conn:
        result = inventory.report(conn, cabinet_id, now=now)
    if cabinet_id is not None and not result["cabinets"]:
        raise ApiError(404, "unknown_cabinet", f"no cabinet {cabinet_id!r}")
    if format == "json":
        return {"generated_at": now.isoformat(), **result}
    scope = cabinet_id or "all"
    if table == "cabinets":
        return csv_response(CABINET_COLUMNS,
                            ([row.get(c) for c in CABINET_COLUMNS] for row in result["cabinets"]),
                            f"lendbox-inventory-cabinets-{scope}-{_stamp(now)}.csv")
    rows = ([r["kind"], r["cabinet_id"], r["door"], r["item_id"], r["owner_library"],
             r["believed"]["status"], r["believed"]["location_cabinet_id"], r["snapshot_at"],
             r["snapshot_age_s"]] for r in result["discrepancies"])
    return csv_response(DISCREPANCY_COLUMNS, rows,
                        f"lendbox-discrepancies-{scope}-{_stamp(now)}.csv")


@router.get("/api/reports/stats")
def stats_report(
        request: Request, member: Annotated[Staff, Depends(require("circulation.read"))],
        start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
        tz: Annotated[str, Query(max_length=64)] = stats.DEFAULT_TZ,
        format: str = "json",  # noqa: A002 - the query parameter's public name
        table: str | None = None) -> Any:
    """Statistics over ``[from, to)`` (dates are local midnights in ``tz``; default: the
    last 7 days). JSON: every table; CSV: the one named by ``table``."""
    if format not in ("json", "csv"):
        raise ApiError(422, "invalid_request", f"format must be json or csv, not {format!r}")
    if table is not None and table not in stats.TABLES:
        raise ApiError(422, "invalid_request",
                       f"unknown table {table!r}; one of {', '.join(stats.TABLES)}")
    if format == "csv" and table is None:
        raise ApiError(422, "invalid_request",
                       f"format=csv needs table= one of {', '.join(stats.TABLES)}")
    now = request_now(request)
    try:
        zone = stats.parse_tz(tz)
        start_at, end_at = stats.parse_period(start, end, zone, now)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    with request_engine(request).connect() as conn:
        result = stats.compute(conn, start_at, end_at, zone, now=now)
    if format == "json":
        if table is not None:
            return {"period": result["period"], "table": table,
                    "rows": result["tables"][table], "total": result["totals"].get(table)}
        return result
    assert table is not None
    columns, rows = stats.table_rows(result, table)
    return csv_response(columns, rows,
                        f"lendbox-stats-{table}-{_stamp(start_at)}-{_stamp(end_at)}.csv")


@router.post("/api/cabinets/{cabinet_id}/inventory/adopt")
def adopt_count(request: Request,
                cabinet_id: Annotated[str, Path(min_length=1, max_length=64)],
                member: Annotated[Staff, Depends(require("collection.manage"))]
                ) -> dict[str, Any]:
    """Take the cabinet's latest count as its stock (server.inventory.adopt); audited."""
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            result = inventory.adopt(conn, cabinet_id, now)
            record_audit(conn, at=now, actor=member.username, action="inventory.adopt",
                         target=f"cabinet:{cabinet_id}",
                         detail={"adopted": len(result["adopted"]), "left": result["left"]})
    except KeyError:
        raise ApiError(404, "unknown_cabinet", f"no cabinet {cabinet_id!r}") from None
    except LookupError as exc:
        raise ApiError(409, "no_snapshot", str(exc)) from None
    return {"cabinet_id": cabinet_id, "adopted": len(result["adopted"]), "left": result["left"]}
