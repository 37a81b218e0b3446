"""`lendbox sip2 probe`: check a library's SIP2 server from the command line.

For technicians and integrators (issue [5/6], requirement 6): log in, ask SC status, then
run the exchanges asked for, printing **one JSON object per exchange** on stdout::

    {"exchange": "checkout", "request": {...}, "response": {...}, "ok": true, ...}

``request``/``response`` are ``Message.named()`` views (fields by name). A checkout or checkin
whose answer is lost is never re-sent: the probe reconnects and asks item information what
the ILS now holds, and reports that under ``resolved_by``/``resolution``. Exit status: 0 when
every exchange succeeded, 1 when any failed (refused, lost, unreachable), 2 for bad arguments.
Patron names are printed (the technician asked for them) but never logged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import ssl
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["register", "run_probe"]

_TERMINATORS = {"cr": b"\r", "crlf": b"\r\n"}


def register(subparsers: Any) -> None:
    """Add ``sip2`` and ``sip2 probe`` to the ``lendbox`` parser."""
    sip2 = subparsers.add_parser("sip2", help="SIP2 tools: probe a library's SIP2 server",
                                 description="Tools for the SIP2 link to the library system.")
    sub = sip2.add_subparsers(dest="sip2_command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser(
        "probe", help="log in to a SIP2 server and run exchanges, one JSON line each",
        description="Log in, SC status, then the requested exchanges; one JSON object per "
        "exchange on stdout. Exit 0 if all succeeded, 1 if any failed, 2 for bad arguments.")
    p.add_argument("--host", required=True)
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--user", required=True, help="login user id (CN)")
    p.add_argument("--password", required=True, help="login password (CO)")
    p.add_argument("--location", required=True, help="location code (CP); also AP of checkin")
    p.add_argument("--institution", default="", help="institution id (AO), default empty")
    p.add_argument("--profile", default="generic",
                   help="a built-in profile name or a profile TOML file (default generic)")
    p.add_argument("--encoding", choices=("utf-8", "gb18030", "cp850"))
    p.add_argument("--terminator", choices=tuple(_TERMINATORS))
    p.add_argument("--no-checksum", action="store_true", help="send no AY/AZ, check none")
    p.add_argument("--patron", help="patron information (63); the patron of --checkout")
    p.add_argument("--patron-password", help="AD of patron information")
    p.add_argument("--item", help="item information (17)")
    p.add_argument("--checkout", metavar="ITEM", help="check ITEM out to --patron (11)")
    p.add_argument("--checkin", metavar="ITEM", help="check ITEM in (09)")
    p.add_argument("--no-block", action="store_true", help="no-block Y on checkout/checkin")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per answer (10)")
    p.add_argument("--tls", action="store_true", help="TLS (verifies the certificate)")
    p.add_argument("--tls-ca", type=Path, help="CA file to verify the server with")
    p.set_defaults(func=_main)


def _error(parser_msg: str) -> int:
    print(f"lendbox sip2 probe: error: {parser_msg}", file=sys.stderr)
    return 2


def _main(args: argparse.Namespace) -> int:
    import sip2proto

    from .sip2_client import ClientConfig

    if args.checkout and not args.patron:
        return _error("--checkout ITEM needs --patron ID")
    if not 0 < args.port < 65536:
        return _error(f"--port {args.port} is not a TCP port")
    if args.timeout <= 0:
        return _error("--timeout must be positive")
    if args.profile in sip2proto.PROFILES:
        profile = sip2proto.PROFILES[args.profile]
    elif Path(args.profile).is_file():
        try:
            profile = sip2proto.load_profile(args.profile)
        except sip2proto.ProfileError as exc:
            return _error(str(exc))
    else:
        return _error(f"--profile {args.profile!r} is neither a built-in profile "
                      f"({', '.join(sorted(sip2proto.PROFILES))}) nor a file")
    changes: dict[str, Any] = {}
    if args.encoding:
        changes["encoding"] = args.encoding
    if args.terminator:
        changes["terminator"] = _TERMINATORS[args.terminator]
    if args.no_checksum:
        changes["checksum"] = "off"
    if changes:
        profile = dataclasses.replace(profile, **changes)
    context: ssl.SSLContext | None = None
    if args.tls or args.tls_ca:
        context = ssl.create_default_context(cafile=str(args.tls_ca) if args.tls_ca else None)
    config = ClientConfig(host=args.host, port=args.port, user=args.user,
                          password=args.password, location=args.location,
                          institution_id=args.institution, profile=profile,
                          timeout_s=args.timeout, connect_timeout_s=args.timeout,
                          heartbeat_s=None, reconnect_attempts=1, ssl_context=context)
    failed = 0
    for line in run_probe(config, patron=args.patron, item=args.item, checkout=args.checkout,
                          checkin=args.checkin, no_block=args.no_block,
                          patron_password=args.patron_password):
        print(json.dumps(line, ensure_ascii=False), flush=True)
        failed += not line["ok"]
    return 1 if failed else 0


def _named(message: Any) -> dict[str, Any] | None:
    return None if message is None else dict(message.named())


def run_probe(config: Any, *, patron: str | None = None, item: str | None = None,
              checkout: str | None = None, checkin: str | None = None,
              no_block: bool = False, patron_password: str | None = None,
              ) -> list[dict[str, Any]]:
    """The exchanges as JSON-ready dicts (login, sc_status, then those asked for)."""
    import sip2proto

    from .sip2_client import AnswerLost, NotSent, SIP2ClientError, SIP2Connection

    out: list[dict[str, Any]] = []
    conn = SIP2Connection(config)
    login_req = sip2proto.login(config.user, "********", location_code=config.location or None)
    try:
        conn.open()
    except NotSent as exc:
        out.append({"exchange": "login", "request": _named(login_req), "response": None,
                    "ok": False, "error": type(exc).__name__, "detail": str(exc)})
        return out
    out.append({"exchange": "login", "request": _named(login_req),
                "response": {"code": "94", "name": "Login Response", "fixed": {"ok": "1"}},
                "ok": True})
    out.append({"exchange": "sc_status", "request": _named(sip2proto.sc_status()),
                "response": _named(conn.acs_status),
                "ok": conn.acs_status is not None
                and conn.acs_status.get_fixed("online_status") == "Y"})
    now = config.clock
    inst = config.institution_id
    tp = config.terminal_password
    plan: list[tuple[str, Any, bool]] = []
    if patron:
        plan.append(("patron_information", sip2proto.patron_information(
            patron, institution_id=inst, transaction_date=now(), summary="charged",
            terminal_password=tp, patron_password=patron_password), False))
    if item:
        plan.append(("item_information", sip2proto.item_information(
            item, institution_id=inst, transaction_date=now(), terminal_password=tp), False))
    if checkout and patron:
        when = now()
        nb_due = None if config.profile.blank_dates_ok else when
        plan.append(("checkout", sip2proto.checkout(
            patron, checkout, institution_id=inst, transaction_date=when, no_block=no_block,
            nb_due_date=nb_due, terminal_password=tp), True))
    if checkin:
        when = now()
        plan.append(("checkin", sip2proto.checkin(
            checkin, institution_id=inst, transaction_date=when, return_date=when,
            current_location=config.location, no_block=no_block, terminal_password=tp), True))
    for name, request, circulation in plan:
        line: dict[str, Any] = {"exchange": name, "request": _named(request)}
        try:
            if not conn.is_open:
                conn.open()
            answer = conn.request(request)
            line["request"] = _named(conn.last_sent)
        except AnswerLost as exc:
            line["request"] = _named(conn.last_sent)
            line.update(response=None, ok=False, lost=True, error=type(exc).__name__,
                        detail=str(exc))
            if circulation:
                line.update(_resolve(conn, name, request, now()))
            out.append(line)
            continue
        except SIP2ClientError as exc:
            line.update(response=None, ok=False, error=type(exc).__name__, detail=str(exc))
            out.append(line)
            continue
        line.update(response=_named(answer), ok=_answer_ok(name, answer))
        screen = [v for v in answer.get_all("AF") if v]
        if screen:
            line["screen_message"] = screen
        out.append(line)
    conn.close()
    return out


def _answer_ok(name: str, answer: Any) -> bool:
    if name in ("checkout", "checkin"):
        return bool(answer.get_fixed("ok") == "1")
    if name == "patron_information":
        return answer.get("BL") != "N"
    if name == "item_information":
        return answer.get_fixed("circulation_status") != "01" or bool(answer.get("AJ"))
    return True


def _resolve(conn: Any, name: str, request: Any, when: datetime) -> dict[str, Any]:
    """A lost circulation answer: reconnect and ask item information (the outbox's rule)."""
    import sip2proto

    from .sip2_client import SIP2ClientError

    item_id = request.get("AB")
    patron = request.get("AA")
    res: dict[str, Any] = {"resolved_by": "item_information"}
    try:
        conn.close()
        conn.open()
        info = conn.request(sip2proto.item_information(
            item_id, institution_id=conn.config.institution_id, transaction_date=when,
            terminal_password=conn.config.terminal_password))
    except SIP2ClientError as exc:
        res.update(resolved_by=None, outcome="unknown",
                   resolution_error=f"{type(exc).__name__}: {exc}")
        return res
    charged = info.get_fixed("circulation_status") in ("04", "05")
    holder_known = None
    if name == "checkout" and charged and patron:
        try:
            pi = conn.request(sip2proto.patron_information(
                patron, institution_id=conn.config.institution_id, transaction_date=when,
                summary="charged", terminal_password=conn.config.terminal_password))
            holder_known = any(v.split(" ", 1)[0] == item_id for v in pi.get_all("AU"))
            res["resolved_by"] = "item_information+patron_information"
        except SIP2ClientError:
            holder_known = None
    if name == "checkout":
        applied = charged and holder_known is not False
    else:
        applied = not charged
    res.update(resolution=_named(info), charged=charged,
               outcome="applied" if applied else "not_applied")
    return res

