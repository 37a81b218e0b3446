"""The item catalogue the server circulates: bibliographic data and where each copy belongs.

Why the server keeps its own copy of the catalogue rather than asking the ILS per item: a
return must be routed (home branch), a cabinet's touchscreen needs titles, rotation needs
categories and acquisition dates — all while the ILS link may be down. The catalogue comes
in from the ILS export (CSV or JSON lines, ``lendbox server import-items``) or the staff API
(``POST /api/items``). Importing never touches circulation (status, borrower, location):
those come only from what cabinets report. Each changed row gets a new ``items.version``, so
cabinets holding the item receive the new title with their next sync.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, insert, select, update

from .ingest import ItemVersions
from .schema import branches, items

__all__ = ["CatalogueError", "ImportResult", "ItemRecord", "import_items", "read_records"]

#: Columns of an import file; ``item_id`` is required, the rest optional.
COLUMNS = ("item_id", "title", "author", "category", "owner_library", "home_branch_id", "isbn",
           "acquired_at", "reference_only", "damaged")


class CatalogueError(ValueError):
    """A record that cannot be imported; ``where`` names the line (file) or index (API)."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


class ItemRecord(BaseModel):
    """One copy as the ILS describes it. ``category``: the 中图法 class letter(s)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    item_id: str = Field(min_length=1, max_length=64)
    title: str = Field(default="", max_length=300)
    author: str = Field(default="", max_length=200)
    category: str = Field(default="", max_length=8)
    owner_library: str = Field(default="", max_length=32)
    home_branch_id: str | None = Field(default=None, max_length=64)
    isbn: str | None = Field(default=None, max_length=17)
    acquired_at: datetime | None = None
    reference_only: bool = False
    damaged: bool = False

    @field_validator("home_branch_id", "isbn", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("acquired_at", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        if value in ("", None):
            return None
        if isinstance(value, str) and len(value) == 10:  # a plain date: midnight UTC
            return f"{value}T00:00:00+00:00"
        return value

    @field_validator("acquired_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("acquired_at needs a time zone (or give a plain date)")
        return value


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int


def _record(where: str, data: Mapping[str, Any]) -> ItemRecord:
    try:
        return ItemRecord.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "record"
        raise CatalogueError(where, f"{field}: {first.get('msg', 'invalid')}") from None


def read_records(path: Path) -> Iterator[ItemRecord]:
    """Records of a ``.csv`` (header row with :data:`COLUMNS` names) or ``.jsonl`` file.

    Raises :class:`CatalogueError` naming the line of the first bad record, before anything
    is imported (the caller validates the whole file first: nothing half-imported)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        unknown = set(reader.fieldnames or ()) - set(COLUMNS)
        if "item_id" not in (reader.fieldnames or ()):
            raise CatalogueError(f"{path.name}:1", "the header row must name an item_id column")
        if unknown:
            raise CatalogueError(f"{path.name}:1", f"unknown columns {sorted(unknown)}; "
                                 f"known: {list(COLUMNS)}")
        for n, row in enumerate(reader, start=2):
            yield _record(f"{path.name}:{n}", {k: v for k, v in row.items() if k is not None})
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CatalogueError(f"{path.name}:{n}", f"not JSON: {exc.msg}") from None
            if not isinstance(data, dict):
                raise CatalogueError(f"{path.name}:{n}", "each line must be a JSON object")
            yield _record(f"{path.name}:{n}", data)
    else:
        raise CatalogueError(path.name, "the file must be .csv or .jsonl")


def _values(record: ItemRecord) -> dict[str, Any]:
    values = record.model_dump(exclude={"item_id"})
    if values["acquired_at"] is not None:
        values["acquired_at"] = values["acquired_at"].astimezone(UTC)
    return values


def import_items(conn: Connection, records: Iterable[ItemRecord]) -> ImportResult:
    """Create or update catalogue rows (never their circulation columns), in one transaction
    (the caller's). Raises :class:`CatalogueError` for a home branch that does not exist."""
    records = list(records)
    known_branches = {r.id for r in conn.execute(select(branches.c.id))}
    for record in records:
        if record.home_branch_id is not None and record.home_branch_id not in known_branches:
            raise CatalogueError(f"item {record.item_id}",
                                 f"unknown home_branch_id {record.home_branch_id!r}")
    versions = ItemVersions(conn)
    created = updated = unchanged = 0
    fields = [c for c in COLUMNS if c != "item_id"]
    for record in records:
        values = _values(record)
        row = conn.execute(select(*[items.c[f] for f in fields]).where(
            items.c.id == record.item_id)).first()
        if row is None:
            conn.execute(insert(items).values(id=record.item_id, status="on_shelf",
                                              version=versions.next(), **values))
            created += 1
        elif dict(row._mapping) != values:
            conn.execute(update(items).where(items.c.id == record.item_id).values(
                version=versions.next(), **values))
            updated += 1
        else:
            unchanged += 1
    return ImportResult(created, updated, unchanged)
