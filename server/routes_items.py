"""The catalogue over HTTP: import copies (``POST /api/items``), look one up.

Why a bulk endpoint and not one item per request: an ILS export is thousands of copies, and
one transaction for the whole body means a bad record imports nothing (the error names it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from . import catalogue
from .db import write_tx
from .schema import items
from .security import ApiError, Staff, record_audit, request_engine, request_now, require

__all__ = ["router"]

router = APIRouter()


class ItemsBody(BaseModel):
    """POST /api/items: up to 5,000 catalogue records (larger exports: the CLI)."""

    model_config = ConfigDict(extra="forbid")
    items: list[catalogue.ItemRecord] = Field(min_length=1, max_length=5000)


@router.post("/api/items")
def import_items(body: ItemsBody, request: Request,
                 member: Annotated[Staff, Depends(require("collection.manage"))]
                 ) -> dict[str, Any]:
    """Create or update catalogue records (never their circulation state); audited."""
    now = request_now(request)
    try:
        with write_tx(request_engine(request)) as conn:
            result = catalogue.import_items(conn, body.items)
            record_audit(conn, at=now, actor=member.username, action="items.import",
                         target=f"{len(body.items)} items",
                         detail={"created": result.created, "updated": result.updated})
    except catalogue.CatalogueError as exc:
        raise ApiError(422, "bad_item", str(exc)) from None
    return {"created": result.created, "updated": result.updated,
            "unchanged": result.unchanged}


@router.get("/api/items/{item_id}")
def get_item(request: Request, item_id: Annotated[str, Path(min_length=1, max_length=64)],
             member: Annotated[Staff, Depends(require("circulation.read"))]) -> dict[str, Any]:
    """One copy: catalogue data and circulation state (borrower as an id only)."""
    with request_engine(request).connect() as conn:
        row = conn.execute(select(items).where(items.c.id == item_id)).first()
    if row is None:
        raise ApiError(404, "not_found", f"no item {item_id!r}")
    data = dict(row._mapping)
    for key in ("acquired_at", "last_loan_at"):
        data[key] = data[key].isoformat() if data[key] is not None else None
    data["item_id"] = data.pop("id")
    return data
