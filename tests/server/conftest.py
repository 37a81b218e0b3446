"""Databases for the server tests: a fresh SQLite file, and a private throwaway PostgreSQL.

Why a private cluster and not the machine's PostgreSQL: tests must not depend on (or damage)
a database someone configured, and every pytest-xdist worker needs its own server so workers
never see each other's databases. The cluster lives in a temporary folder, listens on
127.0.0.1 on a port chosen at run time (and on a socket in its folder), has ``fsync=off``
(a crash loses nothing we care about), and is stopped and deleted when the session ends —
also when tests fail.

Fixtures:

- ``pg_cluster`` (session): the cluster's admin URL (database ``postgres``); skips with a
  reason when PostgreSQL's binaries are not installed (``./scripts/test`` installs them).
- ``pg_db_url`` / ``sqlite_db_url``: a fresh empty database (PostgreSQL: its own
  ``CREATE DATABASE``, dropped afterwards; SQLite: a file in ``tmp_path``).
- ``db_url``: parametrized over both (ids ``sqlite`` and ``postgresql``).
- ``engine``: ``server.db.make_engine(db_url)`` with the schema migrated to head.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin/initdb"
_START_ATTEMPTS = 5


def find_pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian layout), or None."""
    found = glob.glob(PG_BIN_GLOB)
    if not found:
        return None

    def version(path: str) -> int:
        try:
            return int(Path(path).parent.parent.name)
        except ValueError:
            return 0

    return Path(max(found, key=version)).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A throwaway PostgreSQL cluster (initdb → pg_ctl start → pg_ctl stop → rm -rf).

    As root the server refuses to run, so every PostgreSQL program runs as the ``postgres``
    user through ``runuser``; as any other user it runs as that user.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="lendbox-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "log"
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        # cwd=/ : pg_ctl complains when it cannot read the current directory (e.g. /root)
        return subprocess.run(cmd, cwd="/", capture_output=True, text=True, timeout=timeout,
                              check=False)

    def start(self) -> None:
        """initdb, then start on a free port (retrying another port if one was taken meanwhile)."""
        # --no-sync: initdb's fsyncs leave dirty pages that made it ~4 s and the final rm ~2 s
        r = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}): {r.stderr or r.stdout}")
        problems = []
        for _ in range(_START_ATTEMPTS):
            self.port = _free_port()
            r = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                          "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                          "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                          "start")
            if r.returncode == 0:
                return
            problems.append(f"port {self.port}: {r.stderr or r.stdout} "
                            f"{self.log.read_text(errors='replace') if self.log.exists() else ''}")
            self._kill_postmaster()  # a half-started server, if any
        raise RuntimeError("PostgreSQL did not start:\n" + "\n".join(problems))

    @property
    def url(self) -> str:
        """The admin URL (superuser ``postgres``, database ``postgres``, over TCP)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def libpq_dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _kill_postmaster(self) -> None:
        """Immediate shutdown of our own postmaster, by the pid in its pid file (SIGQUIT)."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """pg_ctl stop; if that fails, SIGQUIT our postmaster by pid; then delete it all.

        ``-m immediate``: no shutdown checkpoint — the data is deleted next anyway (saves ~2 s).
        """
        try:
            if self._postmaster_pid() is not None:
                r = self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30",
                              "stop")
                if r.returncode != 0:
                    self._kill_postmaster()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster_obj() -> Iterator[PgCluster]:
    """The session's (this xdist worker's) private PostgreSQL cluster, started on first use."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(f"PostgreSQL is not installed (no {PG_BIN_GLOB}); ./scripts/test installs "
                    "the Debian package 'postgresql'")
    cluster = PgCluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_cluster(pg_cluster_obj: PgCluster) -> str:
    """The private cluster's admin URL (``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``)."""
    return pg_cluster_obj.url


@pytest.fixture
def pg_db_url(pg_cluster_obj: PgCluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database of its own, dropped after the test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_cluster_obj.libpq_dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\'')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{pg_cluster_obj.port}/{name}"
    finally:
        with psycopg.connect(pg_cluster_obj.libpq_dsn(), autocommit=True) as admin:
            # FORCE: a test that forgot to dispose an engine must not leak the database
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_db_url(tmp_path: Path) -> str:
    """A fresh SQLite file database (not created yet) in the test's own folder."""
    return f"sqlite:///{tmp_path / 'lendbox-server.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_db_url"))
    return str(request.getfixturevalue("pg_db_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """``make_engine(db_url)`` with the schema migrated to head (the real migrations)."""
    from server.db import make_engine
    from server.migrate import upgrade

    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()
