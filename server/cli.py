"""`lendbox server …`: the central service's commands.

``init`` prepares a database for a new installation and ``migrate`` brings an existing one to
the installed code's schema; both are safe to repeat (an up-to-date database is left alone),
so deployment scripts can simply run them on every upgrade. ``run`` serves the HTTP API and
``create-admin`` makes the first operator account.

Every command takes ``--db URL``; without it ``LENDBOX_DATABASE_URL``, else
``server.db.DEFAULT_URL`` (a SQLite file under ./var, whose folder is created).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["database_url", "register"]

DATABASE_ENV = "LENDBOX_DATABASE_URL"


def register(subparsers: Any) -> None:
    """Add ``server`` and its sub-commands to the ``lendbox`` parser."""
    server = subparsers.add_parser(
        "server", help="the central service: prepare its database, run it",
        description="The central service of a network of lending cabinets.")
    sub = server.add_subparsers(dest="server_command", metavar="COMMAND")
    sub.required = True
    _register_init(sub)
    _register_migrate(sub)
    # ---- run, create-admin (security part; defined at the end of this file) ----
    _register_run(sub)
    _register_create_admin(sub)
    # ---- end of run, create-admin ----
    _register_import_items(sub)


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """The ``--db URL`` option every server command shares (resolved by :func:`database_url`)."""
    parser.add_argument("--db", metavar="URL", default=None,
                        help=f"database URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB "
                        f"(default: ${DATABASE_ENV}, else the server's default SQLite file)")


def database_url(cli_value: str | None) -> str:
    """The database URL to use: ``--db``, else ``$LENDBOX_DATABASE_URL``, else ``DEFAULT_URL``.

    For a SQLite file its folder is created, so ``lendbox server init`` works in a fresh
    checkout (the default lives in ./var). A bad URL raises ``ValueError`` naming it.
    """
    from .db import DEFAULT_URL, sqlite_path

    url = cli_value or os.environ.get(DATABASE_ENV) or DEFAULT_URL
    path = sqlite_path(url)  # validates the URL for both databases
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return url


def _shown(url: str) -> str:
    """The URL as printed: without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _fail(command: str, exc: Exception) -> int:
    """Print why a command failed (the driver's message, not SQLAlchemy's wrapper) → exit code."""
    reason = getattr(exc, "orig", None) or exc
    print(f"lendbox server {command}: {reason}", file=sys.stderr)
    return 2 if isinstance(exc, ValueError) else 1


def _not_initialised(command: str, url: str, exc: Exception) -> int:
    """A database error of a command that needs the schema: say how to create it → 1."""
    print(f"lendbox server {command}: {getattr(exc, 'orig', None) or exc} (is the database "
          f"{_shown(url)} initialised? run 'lendbox server init')", file=sys.stderr)
    return 1


# ---- init, migrate (storage) ----

def _register_init(sub: Any) -> None:
    p = sub.add_parser("init", help="prepare a database: create or upgrade the schema",
                       description="Prepare the central service's database: create the schema "
                       "(or upgrade it to the newest revision). Safe to run again: an "
                       "up-to-date database is left as it is.")
    add_db_option(p)
    p.set_defaults(func=_cmd_init)


def _register_migrate(sub: Any) -> None:
    p = sub.add_parser("migrate", help="upgrade the database schema to this version's",
                       description="Apply the schema migrations the installed version has and "
                       "the database lacks (Alembic, in one transaction). Run after every "
                       "upgrade of lendbox; doing nothing is fine.")
    add_db_option(p)
    p.set_defaults(func=_cmd_migrate)


def _upgrade(command: str, args: argparse.Namespace) -> tuple[int, str]:
    """Upgrade to head and print what happened: (exit code, url)."""
    from sqlalchemy.exc import SQLAlchemyError

    from .migrate import upgrade

    try:
        url = database_url(args.db)
        result = upgrade(url)
    except (ValueError, SQLAlchemyError, OSError) as exc:
        return _fail(command, exc), ""
    if not result.changed:
        print(f"database {_shown(url)} is up to date (revision {result.after}); nothing to do")
    elif result.before is None:
        print(f"database {_shown(url)}: created the schema (revision {result.after})")
    else:
        print(f"database {_shown(url)}: upgraded from revision {result.before} to {result.after}")
    return 0, url


def _cmd_init(args: argparse.Namespace) -> int:
    code, url = _upgrade("init", args)
    if code:
        return code
    from datetime import UTC, datetime

    from .db import make_engine, write_tx
    from .keys import ensure_key, trusted

    engine = make_engine(url)
    try:
        with write_tx(engine) as conn:
            before = trusted(conn)
            key_id = ensure_key(conn, datetime.now(UTC))
    finally:
        engine.dispose()
    if key_id in before:
        print(f"signing key {key_id} already exists; cabinets trust it")
    else:
        print(f"created signing key {key_id} (grants and reader QR codes are signed with it)")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    code, _url = _upgrade("migrate", args)
    return code


# ---- end of init, migrate ----


# ---- run, create-admin (security) ----

def _register_run(sub: Any) -> None:
    p = sub.add_parser("run", help="serve the HTTP API: cabinet sync and the staff API",
                       description="Serve the central service's HTTP API on a migrated "
                       "database until SIGTERM/Ctrl-C. Prints 'server ready http://HOST:PORT' "
                       "once it listens. Settings not given here come from LENDBOX_* variables "
                       "(LENDBOX_HOST, LENDBOX_PORT, LENDBOX_SIGNATURE_WINDOW_S, "
                       "LENDBOX_TOKEN_TTL_S, LENDBOX_ILS_*). With an ILS configured it also "
                       "forwards every loan and return to it over SIP2, exactly once.")
    add_db_option(p)
    p.add_argument("--host", default=None,
                   help="listen address (default: $LENDBOX_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=None,
                   help="listen port (default: $LENDBOX_PORT, else 8000; 0 = any free port)")
    p.add_argument("--log-level", default="warning",
                   choices=["debug", "info", "warning", "error"])
    p.add_argument("--ils", metavar="HOST:PORT", default=None,
                   help="forward circulation to the library's ILS over SIP2 there (default: "
                   "$LENDBOX_ILS_HOST / $LENDBOX_ILS_PORT; login, profile, institution, "
                   "location and interval from the other LENDBOX_ILS_* variables)")
    p.set_defaults(func=_cmd_run)


def _ils_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` of ``--ils`` (ValueError naming the option)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--ils {value!r}: expected HOST:PORT")
    return host, int(port)


def _cmd_run(args: argparse.Namespace) -> int:
    """Serve until a signal; the database must already be at the code's schema revision."""
    import dataclasses
    import logging
    import signal
    import threading
    import time

    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from .app import create_app
    from .db import make_engine
    from .ils_service import IlsService
    from .migrate import current, head
    from .settings import Settings

    try:
        base = Settings.from_env()
        url = database_url(args.db)
        settings = dataclasses.replace(
            base, database_url=url, host=args.host or base.host,
            port=base.port if args.port is None else args.port)
        if args.ils:
            ils_host, ils_port = _ils_address(args.ils)
            settings = dataclasses.replace(settings, ils_host=ils_host, ils_port=ils_port)
        engine = make_engine(url)
    except ValueError as exc:
        return _fail("run", exc)
    try:
        revision, wanted = current(engine), head()
    except SQLAlchemyError as exc:
        engine.dispose()
        return _fail("run", exc)
    if revision != wanted:
        engine.dispose()
        print(f"lendbox server run: database {_shown(url)} is at revision {revision}, this "
              f"version needs {wanted}: run 'lendbox server init' (new) or 'lendbox server "
              "migrate' (upgrade) first", file=sys.stderr)
        return 1

    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, engine=engine)
    uv = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                       log_level=args.log_level, access_log=False,
                                       lifespan="off", timeout_graceful_shutdown=5))
    stopped = threading.Event()
    ils: IlsService | None = None  # forwarding to the ILS, when one is configured

    def on_signal(signum: int, frame: Any) -> None:
        uv.should_exit = True
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=uv.run, name="server-http", daemon=True)
    thread.start()
    while not uv.started and thread.is_alive():
        time.sleep(0.01)
    try:
        if not uv.started:
            print(f"lendbox server run: could not listen on {settings.host}:{settings.port} "
                  "(port in use? address not local?)", file=sys.stderr)
            return 1
        if settings.ils_configured:
            ils = IlsService(engine, settings).start()
            print(f"forwarding circulation to the ILS at {settings.ils_host}:"
                  f"{settings.ils_port} (profile {settings.ils_profile})", flush=True)
        host, port = uv.servers[0].sockets[0].getsockname()[:2]
        shown_host = f"[{host}]" if ":" in host else host
        print(f"server ready http://{shown_host}:{port}", flush=True)
        while thread.is_alive() and not stopped.wait(0.2):
            pass
        return 0
    finally:
        uv.should_exit = True
        if ils is not None:
            ils.stop()
        thread.join(timeout=10)
        engine.dispose()


def _register_create_admin(sub: Any) -> None:
    p = sub.add_parser("create-admin", help="create an operator account (the first login)",
                       description="Create a staff account with the operator role, e.g. the "
                       "first one of a new installation. The password is asked twice, or "
                       "read from the first line of standard input with --password-stdin; it "
                       "must be at least 10 characters.")
    p.add_argument("username", metavar="USERNAME",
                   help="letters, digits and ._@- (up to 64 characters)")
    add_db_option(p)
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.set_defaults(func=_cmd_create_admin)


def _read_new_password(from_stdin: bool) -> str | None:
    """The new password (stdin's first line, or typed twice at a prompt); None if the two
    typed passwords differ."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("password for the new operator: ")
    if getpass.getpass("the same password again: ") != first:
        return None
    return first


def _cmd_create_admin(args: argparse.Namespace) -> int:
    """Create an operator; exit 1 for a taken username or a refused password."""
    import re
    from datetime import UTC, datetime

    from sqlalchemy import insert, select
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError

    from .db import make_engine, write_tx
    from .schema import staff
    from .security import USERNAME_PATTERN, hash_password, password_problem, record_audit

    command = "create-admin"
    username = args.username
    if re.fullmatch(USERNAME_PATTERN, username) is None:
        print(f"lendbox server {command}: username {username!r} is not allowed: use letters, "
              "digits and ._@- (up to 64 characters, starting with a letter or digit)",
              file=sys.stderr)
        return 1
    try:
        url = database_url(args.db)
        engine = make_engine(url)
    except ValueError as exc:
        return _fail(command, exc)
    taken = f"lendbox server {command}: staff username {username!r} exists already"
    try:
        with engine.connect() as conn:
            if conn.execute(select(staff.c.id).where(staff.c.username == username)).first():
                print(taken, file=sys.stderr)
                return 1
        password = _read_new_password(args.password_stdin)
        if password is None:
            print(f"lendbox server {command}: the two passwords differ; nothing created",
                  file=sys.stderr)
            return 1
        problem = password_problem(password)
        if problem:
            print(f"lendbox server {command}: {problem}; nothing created", file=sys.stderr)
            return 1
        password_hash = hash_password(password)
        now = datetime.now(UTC)
        with write_tx(engine) as conn:
            conn.execute(insert(staff).values(username=username, password_hash=password_hash,
                                              role="operator", branch_id=None, created_at=now,
                                              disabled=False))
            record_audit(conn, at=now, actor=f"cli:{command}", action="staff.create",
                         target=username, detail={"role": "operator"})
    except IntegrityError:  # created by someone else between the check and the insert
        print(taken, file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        return _not_initialised(command, url, exc)
    finally:
        engine.dispose()
    print(f"created operator {username!r} in {_shown(url)}")
    return 0


# ---- end of run, create-admin ----


# ---- import-items (catalogue) ----

def _register_import_items(sub: Any) -> None:
    p = sub.add_parser("import-items", help="import the item catalogue (CSV or JSON lines)",
                       description="Create or update catalogue records from an ILS export: a "
                       ".csv file with a header row (item_id, title, author, category, "
                       "owner_library, home_branch_id, isbn, acquired_at, reference_only, "
                       "damaged; only item_id is required) or a .jsonl file with one object a "
                       "line. The whole file is checked first: a bad record imports nothing "
                       "and is named with its line. Circulation state is never changed.")
    p.add_argument("file", metavar="FILE", help="the .csv or .jsonl export")
    add_db_option(p)
    p.set_defaults(func=_cmd_import_items)


def _cmd_import_items(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sqlalchemy.exc import SQLAlchemyError

    from .catalogue import CatalogueError, import_items, read_records
    from .db import make_engine, write_tx

    command = "import-items"
    try:
        records = list(read_records(Path(args.file)))
        url = database_url(args.db)
        engine = make_engine(url)
    except (CatalogueError, ValueError, OSError) as exc:
        return _fail(command, exc)
    total = len(records)
    created = updated = unchanged = 0
    try:
        # one transaction: a bad home branch anywhere imports nothing
        with write_tx(engine) as conn:
            for start in range(0, total, 2000):
                result = import_items(conn, records[start:start + 2000])
                created += result.created
                updated += result.updated
                unchanged += result.unchanged
                if total > 2000:
                    print(f"  {min(start + 2000, total)}/{total} records checked", flush=True)
    except CatalogueError as exc:
        return _fail(command, exc)
    except SQLAlchemyError as exc:
        return _not_initialised(command, url, exc)
    finally:
        engine.dispose()
    print(f"imported {total} records into {_shown(url)}: {created} new, {updated} updated, "
          f"{unchanged} unchanged")
    return 0
