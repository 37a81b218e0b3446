"""The item catalogue: import from an ILS export (CLI and API), never touching circulation."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from server.app import create_app
from server.catalogue import CatalogueError, ItemRecord, import_items, read_records
from server.db import write_tx
from server.schema import items
from server.settings import Settings
from tests.server.test_security import BRANCH, add_staff, bearer, seed_network, token_for

CSV = """item_id,title,author,category,owner_library,home_branch_id,isbn,acquired_at
3901000000001,红楼梦,曹雪芹,I,CN-440300,{branch},9787020002207,2026-10-01
3901000000002,三体,刘慈欣,I,CN-440300,,,
"""


def _row(engine: Engine, item_id: str) -> object:
    with engine.connect() as conn:
        return conn.execute(select(items).where(items.c.id == item_id)).one()


def test_a_csv_export_imports_and_a_second_run_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    seed_network(engine)
    path = tmp_path / "export.csv"
    path.write_text(CSV.format(branch=BRANCH), encoding="utf-8")
    with write_tx(engine) as conn:
        first = import_items(conn, read_records(path))
    with write_tx(engine) as conn:
        again = import_items(conn, read_records(path))
    assert (first.created, first.updated, again.created, again.updated, again.unchanged) == (2, 0, 0, 0, 2)
    row = _row(engine, "3901000000001")
    assert (row.title, row.home_branch_id, row.isbn, row.status) == ("红楼梦", BRANCH, "9787020002207",
                                                                     "on_shelf")
    assert row.acquired_at == datetime(2026, 10, 1, tzinfo=UTC)


def test_an_import_never_changes_circulation_and_bumps_the_version(engine: Engine) -> None:
    seed_network(engine)
    with write_tx(engine) as conn:
        import_items(conn, [ItemRecord(item_id="I1", title="old")])
        conn.execute(update(items).where(items.c.id == "I1").values(status="loaned"))
    before = _row(engine, "I1").version  # type: ignore[attr-defined]
    with write_tx(engine) as conn:
        result = import_items(conn, [ItemRecord(item_id="I1", title="new")])
    row = _row(engine, "I1")
    assert result.updated == 1
    assert (row.title, row.status) == ("new", "loaned")  # type: ignore[attr-defined]
    assert row.version > before  # type: ignore[attr-defined]


@pytest.mark.parametrize("text, where", [
    ("title\nx\n", "export.csv:1"),                            # no item_id column
    ("item_id,colour\nI1,red\n", "export.csv:1"),              # unknown column
    ("item_id,acquired_at\nI1,yesterday\n", "export.csv:2"),   # bad date
    ("item_id,title\nI1,ok\n,empty id\n", "export.csv:3"),    # empty id on line 3
])
def test_a_bad_file_names_its_line(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError) as err:
        list(read_records(path))
    assert err.value.where == where


def test_an_unknown_home_branch_imports_nothing(engine: Engine) -> None:
    seed_network(engine)
    with pytest.raises(CatalogueError, match="unknown home_branch_id 'nowhere'"):
        with write_tx(engine) as conn:
            import_items(conn, [ItemRecord(item_id="I1"),
                                ItemRecord(item_id="I2", home_branch_id="nowhere")])
    with engine.connect() as conn:
        assert conn.execute(select(items.c.id)).all() == []


def test_the_cli_imports_jsonl_and_refuses_a_bad_file(engine: Engine, db_url: str, tmp_path: Path) -> None:
    seed_network(engine)
    good = tmp_path / "export.jsonl"
    good.write_text('{"item_id": "J1", "title": "边城"}\n\n{"item_id": "J2"}\n', encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item_id": "J3"}\n[1, 2]\n', encoding="utf-8")
    run = [sys.executable, "-m", "lendbox.cli", "server", "import-items", "--db", db_url]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "imported 2 records" in ok.stdout and "2 new" in ok.stdout
    refused = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "bad.jsonl:2: each line must be a JSON object" in refused.stderr
    with engine.connect() as conn:
        assert sorted(r.id for r in conn.execute(select(items.c.id))) == ["J1", "J2"]


def test_the_api_imports_and_looks_up(engine: Engine) -> None:
    seed_network(engine)
    now = datetime.now(UTC)
    op = bearer(token_for(engine, add_staff(engine, "op", "operator"), now))
    aud = bearer(token_for(engine, add_staff(engine, "aud", "auditor"), now))
    app = create_app(Settings(database_url="sqlite://"), engine=engine)
    with TestClient(app) as client:
        r = client.post("/api/items", headers=op, json={"items": [
            {"item_id": "A1", "title": "活着", "home_branch_id": BRANCH, "acquired_at": "2026-11-01"}]})
        assert r.status_code == 200 and r.json()["created"] == 1
        bad = client.post("/api/items", headers=op, json={"items": [{"item_id": "A2",
                                                                     "home_branch_id": "nowhere"}]})
        assert bad.status_code == 422 and "unknown home_branch_id" in bad.json()["detail"]
        got = client.get("/api/items/A1", headers=aud)
        assert got.status_code == 200 and got.json()["title"] == "活着"
        assert client.get("/api/items/nope", headers=op).status_code == 404
        refused = client.post("/api/items", headers=aud,
                              json={"items": [{"item_id": "A3"}]})
        assert refused.status_code == 403
