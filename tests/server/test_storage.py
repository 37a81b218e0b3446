"""Storage of the central service: engines, transactions, locks and migrations, on both databases.

What matters here is what the sync path relies on: the migrated schema *is* ``schema.metadata``;
a write transaction is all or nothing; two writers serialise instead of failing halfway
(SQLite) and one cabinet's row lock makes a second server process wait (PostgreSQL); text and
times come back as they went in.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text, update

from lendbox.cli import main
from server import schema
from server.db import DEFAULT_URL, lock_cabinet, make_engine, write_tx
from server.migrate import alembic_config, current, head, upgrade

NOW = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)


def _seed_cabinet(engine: Engine, cabinet_id: str = "cab-1") -> None:
    with write_tx(engine) as conn:
        conn.execute(schema.libraries.insert().values(isil="CN-330100", name="杭州图书馆"))
        conn.execute(schema.branches.insert().values(id="hz", name="杭州图书馆总馆",
                                                     library_isil="CN-330100"))
        conn.execute(schema.cabinets.insert().values(id=cabinet_id, branch_id="hz",
                                                     public_key="k" * 43, registered_at=NOW))


def _applied_through(engine: Engine, cabinet_id: str = "cab-1") -> int:
    with engine.connect() as conn:
        value = conn.scalar(select(schema.cabinets.c.applied_through)
                            .where(schema.cabinets.c.id == cabinet_id))
    assert value is not None
    return int(value)


# ---- migrations ----

def test_head_is_the_latest_revision() -> None:
    versions = Path(__file__).resolve().parents[2] / "server" / "migrations" / "versions"
    latest = sorted(p.stem for p in versions.glob("0*.py"))[-1]
    assert head() == latest


def test_migrations_create_exactly_the_metadata(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, schema.metadata) == []
        tables = set(inspect(conn).get_table_names())
    assert tables == set(schema.metadata.tables) | {"alembic_version"}


def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(db_url: str) -> None:
    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        with write_tx(eng) as conn:
            command.downgrade(alembic_config(conn), "base")
        with eng.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        assert current(eng) is None
        assert upgrade(eng).after == head()
    finally:
        eng.dispose()


def test_current_is_none_before_and_head_after(db_url: str) -> None:
    assert current(db_url) is None
    result = upgrade(db_url)
    assert (result.before, result.after, result.changed) == (None, head(), True)
    assert current(db_url) == head()


def test_upgrade_is_idempotent_and_keeps_data(engine: Engine, db_url: str) -> None:
    _seed_cabinet(engine)
    again = upgrade(db_url)
    assert (again.before, again.after, again.changed) == (head(), head(), False)
    assert _applied_through(engine) == 0


# ---- transactions ----

def test_write_tx_commits_everything(engine: Engine) -> None:
    _seed_cabinet(engine)
    with write_tx(engine) as conn:
        conn.execute(update(schema.cabinets).values(applied_through=7))
        conn.execute(schema.audit.insert().values(at=NOW, actor="engine", action="apply",
                                                  detail={}))
    assert _applied_through(engine) == 7
    with engine.connect() as conn:
        assert conn.scalar(select(schema.audit.c.action)) == "apply"


def test_write_tx_rolls_back_everything_when_the_block_raises(engine: Engine) -> None:
    _seed_cabinet(engine)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with write_tx(engine) as conn:
            conn.execute(update(schema.cabinets).values(applied_through=7))
            conn.execute(schema.audit.insert().values(at=NOW, actor="engine", action="apply",
                                                      detail={}))
            raise Boom
    assert _applied_through(engine) == 0
    with engine.connect() as conn:
        assert conn.scalar(select(schema.audit.c.id)) is None


def test_a_failing_statement_rolls_back_the_earlier_ones(engine: Engine) -> None:
    _seed_cabinet(engine)
    with pytest.raises(Exception, match="(?i)foreign key"):
        with write_tx(engine) as conn:
            conn.execute(update(schema.cabinets).values(applied_through=3))
            conn.execute(schema.cabinets.insert().values(  # no such branch
                id="cab-2", branch_id="nowhere", public_key="k", registered_at=NOW))
    assert _applied_through(engine) == 0


def _increment_in_threads(engine: Engine, threads: int, rounds: int) -> list[BaseException]:
    """Each thread does read-modify-write of applied_through in its own write transactions."""
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(rounds):
                with write_tx(engine) as conn:
                    row = lock_cabinet(conn, "cab-1")
                    assert row is not None
                    time.sleep(0.002)  # widen the window a lost update would need
                    conn.execute(update(schema.cabinets).where(schema.cabinets.c.id == "cab-1")
                                 .values(applied_through=row.applied_through + 1))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in pool)
    return errors


def test_concurrent_writers_serialise_without_lost_updates(engine: Engine) -> None:
    """SQLite: BEGIN IMMEDIATE makes the second writer wait (no "database is locked");
    PostgreSQL: lock_cabinet does. Either way no increment is lost."""
    _seed_cabinet(engine)
    assert _increment_in_threads(engine, threads=2, rounds=15) == []
    assert _applied_through(engine) == 30


def test_sqlite_write_tx_takes_the_write_lock_at_begin(sqlite_db_url: str) -> None:
    upgrade(sqlite_db_url)
    eng = make_engine(sqlite_db_url)
    path = sqlite_db_url.removeprefix("sqlite:///")
    try:
        with write_tx(eng) as conn:
            conn.execute(select(1))  # nothing written yet: the lock must be held anyway
            other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
                # WAL: readers are not blocked by the writer
                assert other.execute("SELECT count(*) FROM cabinets").fetchone() == (0,)
            finally:
                other.close()
    finally:
        eng.dispose()


def test_sqlite_connections_have_wal_foreign_keys_and_busy_timeout(sqlite_db_url: str) -> None:
    eng = make_engine(sqlite_db_url)
    try:
        with eng.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        eng.dispose()


# ---- lock_cabinet ----

def test_lock_cabinet_returns_the_row_or_none(engine: Engine) -> None:
    _seed_cabinet(engine)
    with write_tx(engine) as conn:
        row = lock_cabinet(conn, "cab-1")
        assert row is not None and row.branch_id == "hz" and row.applied_through == 0
        assert lock_cabinet(conn, "nope") is None


def test_lock_cabinet_outside_write_tx_is_refused(engine: Engine) -> None:
    _seed_cabinet(engine)
    with engine.begin() as conn, pytest.raises(RuntimeError, match="write_tx"):
        lock_cabinet(conn, "cab-1")


def test_postgresql_lock_cabinet_blocks_a_second_connection_until_commit(pg_db_url: str) -> None:
    upgrade(pg_db_url)
    eng = make_engine(pg_db_url)
    try:
        _seed_cabinet(eng)
        other_cabinet = "cab-2"
        with write_tx(eng) as conn:
            conn.execute(schema.cabinets.insert().values(id=other_cabinet, branch_id="hz",
                                                         public_key="k", registered_at=NOW))
        second_got: list[int] = []
        second_locked = threading.Event()
        errors: list[BaseException] = []

        def second() -> None:
            try:
                with write_tx(eng) as conn2:
                    row = lock_cabinet(conn2, "cab-1")
                    assert row is not None
                    second_got.append(row.applied_through)
                    second_locked.set()
            except BaseException as exc:
                errors.append(exc)

        with write_tx(eng) as first:
            assert lock_cabinet(first, "cab-1") is not None
            worker = threading.Thread(target=second)
            worker.start()
            # proof that it waits on *our* lock: PostgreSQL reports the backend as lock-waiting
            deadline = time.monotonic() + 20
            while True:
                with eng.connect() as probe:
                    waiting = probe.scalar(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"))
                if waiting or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert waiting == 1
            assert not second_locked.is_set()
            # another cabinet is not blocked by this one's lock
            with write_tx(eng) as third:
                assert lock_cabinet(third, other_cabinet) is not None
            first.execute(update(schema.cabinets).where(schema.cabinets.c.id == "cab-1")
                          .values(applied_through=5))
        assert second_locked.wait(timeout=20)
        worker.join(timeout=20)
        assert errors == []
        assert second_got == [5]  # it read the committed value, not the one before the lock
    finally:
        eng.dispose()


# ---- values ----

def test_chinese_text_round_trips(engine: Engine) -> None:
    _seed_cabinet(engine)
    title = "红楼梦（程甲本）·第一卷 📚"
    payload = {"备注": "书脊破损，已登记", "读者": "张三", "list": ["通借通还", 1]}
    with write_tx(engine) as conn:
        conn.execute(schema.items.insert().values(id="i-1", title=title, author="曹雪芹",
                                                  location_cabinet_id="cab-1"))
        conn.execute(schema.audit.insert().values(at=NOW, actor="管理员", action="note",
                                                  detail=payload))
    with engine.connect() as conn:
        assert conn.execute(select(schema.items.c.title, schema.items.c.author)).one() == (
            title, "曹雪芹")
        assert conn.scalar(select(schema.libraries.c.name)) == "杭州图书馆"
        row = conn.execute(select(schema.audit.c.actor, schema.audit.c.detail)).one()
        assert (row.actor, row.detail) == ("管理员", payload)
        # the database itself matches on the text (not only our codec)
        assert conn.scalar(select(schema.items.c.id).where(schema.items.c.title.like("红楼梦%"))) \
            == "i-1"


def test_times_come_back_as_the_same_instant_in_utc(engine: Engine) -> None:
    beijing = datetime(2025, 3, 1, 16, 30, 15, 250000, tzinfo=timezone(timedelta(hours=8)))
    with write_tx(engine) as conn:
        conn.execute(schema.server_keys.insert().values(key_id="k1", private_key="p",
                                                        public_key="q", created_at=beijing))
    with engine.connect() as conn:
        got = conn.scalar(select(schema.server_keys.c.created_at))
        assert got == beijing and got.utcoffset() == timedelta(0)
        # comparisons in SQL see the same instant (08:30:15.25 UTC), not 16:30 local
        created = schema.server_keys.c.created_at
        assert conn.scalar(select(schema.server_keys.c.key_id).where(
            created > NOW + timedelta(seconds=15), created < NOW + timedelta(seconds=16))) == "k1"


def test_naive_times_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="time zone"):
        with write_tx(engine) as conn:
            conn.execute(schema.server_keys.insert().values(
                key_id="k1", private_key="p", public_key="q", created_at=datetime(2025, 3, 1)))


def test_deny_list_versions_count_up(engine: Engine) -> None:
    with write_tx(engine) as conn:
        for reader in ("r1", "r2", "r3"):
            conn.execute(schema.deny_list.insert().values(reader_id=reader, denied=True, at=NOW))
    with engine.connect() as conn:
        assert list(conn.scalars(select(schema.deny_list.c.version)
                                 .order_by(schema.deny_list.c.version))) == [1, 2, 3]


# ---- URLs ----

@pytest.mark.parametrize("url", [
    "mysql://root:secret@db/lendbox",
    "sqlite://",
    "sqlite:///:memory:",
    "postgresql+psycopg2://u@h/db",
    "not a url",
    "",
])
def test_bad_urls_are_a_clear_value_error(url: str) -> None:
    with pytest.raises(ValueError) as info:
        make_engine(url)
    message = str(info.value)
    assert "secret" not in message
    if url:
        assert url.split("://")[0] in message or url in message


def test_plain_postgresql_url_means_psycopg() -> None:
    eng = make_engine("postgresql://u@127.0.0.1:1/db")
    try:
        assert eng.dialect.driver == "psycopg"
    finally:
        eng.dispose()


def test_default_url_is_a_sqlite_file_under_var() -> None:
    assert DEFAULT_URL == "sqlite:///var/lendbox-server.db"


# ---- CLI ----

def test_cli_server_init_creates_then_leaves_alone(db_url: str, capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    assert main(["server", "init", "--db", db_url]) == 0
    assert f"created the schema (revision {head()})" in capsys.readouterr().out
    assert main(["server", "init", "--db", db_url]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["server", "migrate", "--db", db_url]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert current(db_url) == head()


def test_cli_uses_the_env_url_and_creates_the_sqlite_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "deep" / "er" / "server.db"
    monkeypatch.setenv("LENDBOX_DATABASE_URL", f"sqlite:///{target}")
    assert main(["server", "migrate"]) == 0
    assert target.exists() and current(f"sqlite:///{target}") == head()
    capsys.readouterr()


def test_cli_default_url_is_var_in_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("LENDBOX_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["server", "init"]) == 0
    assert (tmp_path / "var" / "lendbox-server.db").exists()
    capsys.readouterr()


def test_cli_bad_url_says_which(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "init", "--db", "mysql://u:pw@h/x"]) == 2
    err = capsys.readouterr().err
    assert "mysql://u:***@h/x" in err and "u:pw@" not in err


def test_cli_server_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["server"])
    assert info.value.code == 2
    capsys.readouterr()
