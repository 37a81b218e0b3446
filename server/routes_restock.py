"""Staff endpoints of the restock list and of cross-branch transits (通借通还).

Why these three: the person standing at a cabinet needs one list of what to take out and
put in (whoever asked for it: a transit, a hold, rotation); the receiving branch needs the
books on their way to it; and receiving a book closes its journey, which is a write — so it
is audited and needs ``collection.manage``, while the lists are ``circulation.read``.
Unknown branch or cabinet filters are 404 (a typo should not look like an empty list).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import Connection, select

from . import restock, routing
from .db import write_tx
from .schema import branches, cabinets, items, transits
from .security import ApiError, Staff, request_engine, request_now, require

__all__ = ["restock_view", "router", "transit_rows"]

router = APIRouter()

_Id = Annotated[str | None, Query(min_length=1, max_length=64)]


def _must_exist(conn: Connection, table: Any, key: str | None, what: str) -> None:
    if key is not None and conn.execute(select(table.c.id).where(table.c.id == key)).first() is None:
        raise ApiError(404, "not_found", f"no {what} {key!r}")


def _titles(conn: Connection, item_ids: list[str]) -> dict[str, str]:
    titles: dict[str, str] = {}
    for start in range(0, len(item_ids), 500):
        chunk = item_ids[start:start + 500]
        for row in conn.execute(select(items.c.id, items.c.title).where(items.c.id.in_(chunk))):
            titles[row.id] = row.title
    return titles


@router.get("/api/restock")
def restock_list(request: Request,
                 member: Annotated[Staff, Depends(require("circulation.read"))],
                 branch_id: _Id = None, cabinet_id: _Id = None) -> dict[str, Any]:
    """The open restock tasks (of one branch's cabinets, or one cabinet), flat in visiting
    order and counted per cabinet: what to take out and what to put in, and why."""
    with request_engine(request).connect() as conn:
        _must_exist(conn, branches, branch_id, "branch")
        _must_exist(conn, cabinets, cabinet_id, "cabinet")
        return restock_view(conn, branch_id=branch_id, cabinet_id=cabinet_id)


def restock_view(conn: Connection, *, branch_id: str | None = None,
                 cabinet_id: str | None = None) -> dict[str, Any]:
    """``{"tasks": [...], "cabinets": [...]}`` as GET /api/restock answers (filters unchecked)."""
    tasks = restock.open_tasks(conn, cabinet_id=cabinet_id, branch_id=branch_id)
    titles = _titles(conn, sorted({t["item_id"] for t in tasks}))
    names = {r.id: r.name for r in conn.execute(select(cabinets.c.id, cabinets.c.name).where(
        cabinets.c.id.in_(sorted({t["cabinet_id"] for t in tasks}))))}
    summary: dict[str, dict[str, Any]] = {}
    for task in tasks:
        task["title"] = titles.get(task["item_id"])
        task["cabinet_name"] = names.get(task["cabinet_id"], "")
        entry = summary.setdefault(task["cabinet_id"], {
            "cabinet_id": task["cabinet_id"], "cabinet_name": task["cabinet_name"],
            "branch_id": task["branch_id"], "load": 0, "unload": 0})
        entry[task["action"]] += 1
    return {"tasks": tasks, "cabinets": list(summary.values())}


@router.get("/api/transits")
def list_transits(request: Request,
                  member: Annotated[Staff, Depends(require("circulation.read"))],
                  status: Literal["open", "all", "waiting_pickup", "in_transit", "received",
                                  "cancelled"] = "open",
                  to_branch_id: _Id = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    """Transits, oldest first; ``status=open`` (default) is waiting_pickup + in_transit."""
    with request_engine(request).connect() as conn:
        _must_exist(conn, branches, to_branch_id, "branch")
        return {"transits": transit_rows(conn, status, to_branch_id, limit)}


def transit_rows(conn: Connection, status: str = "open", to_branch_id: str | None = None,
                 limit: int = 200) -> list[dict[str, Any]]:
    """Transits as GET /api/transits lists them, oldest first."""
    stmt = (select(transits, items.c.title).outerjoin(items, items.c.id == transits.c.item_id)
            .order_by(transits.c.id).limit(limit))
    if status == "open":
        stmt = stmt.where(transits.c.status.in_(routing.OPEN_STATUSES))
    elif status != "all":
        stmt = stmt.where(transits.c.status == status)
    if to_branch_id is not None:
        stmt = stmt.where(transits.c.to_branch_id == to_branch_id)
    return [routing.transit_json(row) for row in conn.execute(stmt).all()]


@router.post("/api/transits/{transit_id}/receive")
def receive_transit(request: Request, transit_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                    member: Annotated[Staff, Depends(require("collection.manage"))]
                    ) -> dict[str, Any]:
    """The book arrived: the transit is received and the item on its home shelf (audited)."""
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            return routing.receive(conn, transit_id, username=member.username, now=now)
    except routing.TransitRefused as exc:
        raise ApiError(exc.status, exc.code, exc.detail) from None
