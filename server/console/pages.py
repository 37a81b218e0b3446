"""The console's pages for login, the fleet and one cabinet, and the helpers every page
uses (tables, times, redirects, the refusal page); the circulation pages are in
``server.console.circulation``, statistics in ``server.console.stats_pages``.

Every page reads the server's own modules in-process (``fleet_status``, ``credit``,
``engine``, ``routing``, ``holds``, ``feedback`` …) — the same functions the JSON API
calls, so the console can never show or do something the API would not. Every action is a
POST form answered with 303 to a page that says what happened (the browser's back and
reload buttons then never resend it); every action is audited by the function it calls or
here, in the same transaction.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy import Connection, or_, select

from .. import credit
from ..db import write_tx
from ..routes_admin import staff_login
from ..schema import audit, cabinets
from ..security import ApiError, Staff, record_audit, request_engine, request_now, revoke_token
from .auth import COOKIE, ConsolePageError, console_require, origin_ok, staff_of
from .layout import Ctx, compact_json, read_form
from .messages import message

__all__ = ["STATIC_DIR", "error_page", "router"]

STATIC_DIR = FilePath(__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)

CabinetsRead = Annotated[Staff, Depends(console_require("cabinets.read"))]
CirculationRead = Annotated[Staff, Depends(console_require("circulation.read"))]
Command = Annotated[Staff, Depends(console_require("cabinets.command"))]
Resolve = Annotated[Staff, Depends(console_require("exceptions.resolve"))]
Collection = Annotated[Staff, Depends(console_require("collection.manage"))]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
CabinetId = Annotated[str, Path(min_length=1, max_length=64)]


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def when(value: str | datetime | None, ctx: Ctx) -> str:
    """An instant as 'YYYY-MM-DD HH:MM UTC' (never seconds: staff compare minutes)."""
    if value is None:
        return ctx.t("common.never")
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return e(at.strftime("%Y-%m-%d %H:%M") + " UTC")


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def table(ctx: Ctx, headers: list[str], rows: list[list[str]], *, caption: str = "",
          empty: str = "") -> str:
    """A table of already-escaped cells (``headers`` are message keys)."""
    if not rows and empty:
        return f"<p class=empty>{empty}</p>"
    head = "".join(f"<th scope=col>{ctx.t(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return f'<div class=scroll><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


# ----------------------------------------------------------------------------- assets, login


@router.get("/console/static/console.css")
def stylesheet() -> Response:
    return FileResponse(STATIC_DIR / "console.css", media_type="text/css",
                        headers={"Cache-Control": "max-age=300"})


def _login_page(ctx: Ctx, *, note_key: str = "", status: int = 200, next_url: str = "/console",
                username: str = "") -> Response:
    note = (f'<p class=flash role=alert>{ctx.t(note_key)}</p>' if note_key else "")
    body = f"""{note}<form method=post action="/console/login" class="card login">
<input type=hidden name=next value="{e(next_url)}">
<label for=username>{ctx.t("login.username")}</label>
<input id=username name=username autocomplete=username required maxlength=64 value="{e(username)}">
<label for=password>{ctx.t("login.password")}</label>
<input id=password name=password type=password autocomplete=current-password required maxlength=256>
<button class="btn btn-primary" id=login type=submit>{ctx.t("login.submit")}</button>
</form>"""
    return ctx.page(ctx.t("login.title"), body, status=status)


def _safe_next(value: str) -> str:
    """Only a console path of this server (no open redirect to another site)."""
    if value.startswith("/console") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console"


@router.get("/console/login")
def login_form(request: Request) -> Response:
    ctx = Ctx.of(request)
    note = ("login.expired" if request.query_params.get("expired")
            else "login.logged_out" if request.query_params.get("out") else "")
    return _login_page(ctx, note_key=note,
                       next_url=_safe_next(request.query_params.get("next", "/console")))


@router.post("/console/login")
async def login(request: Request) -> Response:
    ctx = Ctx.of(request)
    if (request.headers.get("origin") or request.headers.get("referer")) and not origin_ok(request):
        raise ConsolePageError(403, "error.origin")
    fields = await read_form(request)
    username, password = fields.get("username", "").strip(), fields.get("password", "")
    next_url = _safe_next(fields.get("next", "/console"))
    if not username or not password:
        return _login_page(ctx, note_key="login.missing", status=422, next_url=next_url,
                           username=username)
    from starlette.concurrency import run_in_threadpool

    try:
        issued = await run_in_threadpool(staff_login, request, username, password)
    except ApiError:
        return _login_page(ctx, note_key="login.failed", status=401, next_url=next_url,
                           username=username)
    response = see_other(next_url)
    response.set_cookie(COOKIE, issued["token"], httponly=True, samesite="strict", path="/console",
                        max_age=int(request.app.state.settings.token_ttl_s))
    return response


@router.post("/console/logout")
def logout(request: Request) -> Response:
    """End the session: the token is revoked (when valid) and the cookie cleared."""
    if "authorization" not in request.headers and request.cookies.get(COOKIE) \
            and not origin_ok(request):
        raise ConsolePageError(403, "error.origin")
    try:
        member = staff_of(request)
    except ApiError:
        member = None
    if member is not None:
        now = request_now(request)
        with write_tx(request_engine(request)) as conn:
            revoke_token(conn, member.token)
            record_audit(conn, at=now, actor=member.username, action="auth.logout",
                         target=member.username)
    response = see_other("/console/login?out=1")
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


# ----------------------------------------------------------------------------- fleet


def _fleet_status() -> Any:
    from .. import fleet_status  # H5's module: imported when first used

    return fleet_status


def _fill_text(row: dict[str, Any]) -> str:
    if not row["fill"]:
        return "—"
    count = sum(f["count"] for f in row["fill"].values())
    capacity = sum(f["capacity"] for f in row["fill"].values())
    return e(f"{round(row['fill_share'] * 100)}% ({count}/{capacity})")


def _health(ctx: Ctx, row: dict[str, Any]) -> str:
    if not row["devices"]:
        return "—"
    if row["device_faults"]:
        return f'<span class="badge bad">{ctx.t("fleet.faults", n=row["device_faults"])}</span>'
    return f'<span class="badge good">{ctx.t("fleet.healthy")}</span>'


def _link_state(ctx: Ctx, online: bool) -> str:
    return (f'<span class="badge good">{ctx.t("fleet.online")}</span>' if online
            else f'<span class="badge bad">{ctx.t("fleet.offline")}</span>')


def _held(ctx: Ctx, conn: Connection, row: dict[str, Any]) -> str:
    if not row["held_events"]:
        return "0"
    through = conn.execute(select(cabinets.c.applied_through)
                           .where(cabinets.c.id == row["id"])).scalar() or 0
    return f'<span class="badge bad">{ctx.t("fleet.gap", n=row["held_events"], seq=through + 1)}</span>'


@router.get("/console")
def fleet(request: Request, member: CabinetsRead) -> Response:
    ctx = Ctx.of(request, member)
    now = request_now(request)
    with request_engine(request).connect() as conn:
        rows = _fleet_status().fleet_overview(conn, now)
        exposure = credit.fleet_exposure(conn)
        caps = {c["id"]: c["offline_exposure_cap"] for c in exposure["cabinets"]}
        held = {row["id"]: _held(ctx, conn, row) for row in rows}
    cells = []
    for row in rows:
        name = e(row["name"] or row["id"])
        door = ctx.t("cabinet.door")
        alarms = ", ".join(e(a["kind"]) + (f" · {door} {e(a['door'])}" if a.get("door") else "")
                           for a in row["open_alarms"]) or "0"
        cap = row.get("offline_exposure_cap", caps.get(row["id"], 0))  # as the cabinet reports it
        exposure_cell = e(f"{row['offline_exposure']} / {cap}")
        if row["offline_exposure"]:
            exposure_cell = f'<span class="badge warn">{exposure_cell}</span>'
        cells.append([
            f'<a href="/console/cabinets/{quote(row["id"], safe="")}">{name}</a>'
            f'<br><span class=sub>{e(row["id"])} · {e(row["location"])}</span>',
            _link_state(ctx, row["online"]), when(row["last_sync_at"], ctx), _health(ctx, row),
            f'<span class="badge bad">{alarms}</span>' if row["open_alarms"] else "0",
            _fill_text(row), exposure_cell, held[row["id"]], e(row["pending_commands"])])
    online = sum(1 for r in rows if r["online"])
    alarms_total = sum(len(r["open_alarms"]) for r in rows)
    summary = ctx.t("fleet.summary", total=len(rows), online=online, alarms=alarms_total)
    bound = ctx.t("fleet.exposure", bound=exposure["fleet_bound"],
                  active=exposure["active_cabinets"])
    body = (f'<p class=lead>{summary}</p><p class=lead id=exposure>{bound}</p>'
            + table(ctx, ["fleet.col_cabinet", "fleet.col_online", "fleet.col_last_sync",
                          "fleet.col_health", "fleet.col_alarms", "fleet.col_fill",
                          "fleet.col_exposure", "fleet.col_held", "fleet.col_commands"],
                    cells, empty=ctx.t("fleet.no_cabinets")))
    return ctx.page(ctx.t("fleet.title"), body, active="fleet")


# ----------------------------------------------------------------------------- one cabinet


def _cabinet_audit(conn: Connection, cabinet_id: str, limit: int = 30) -> list[Any]:
    target = f"cabinet:{cabinet_id}"
    return list(conn.execute(select(audit).where(or_(audit.c.target == target,
                                                     audit.c.target.like(target + "/%")))
                             .order_by(audit.c.id.desc()).limit(limit)).all())


def _command_forms(ctx: Ctx, cab_id: str, doors: list[int]) -> str:
    action = f"/console/cabinets/{quote(cab_id, safe='')}/commands"
    if doors:
        options = "".join(f'<option value="{d}">{d}</option>' for d in doors)
        door_input = f'<select id=door name=door>{options}</select>'
    else:
        door_input = '<input id=door name=door type=number min=1 max=999 required inputmode=numeric>'
    return f"""<div class=command-forms>
<form method=post action="{action}" class=card id=open-door-form>
<h3>{ctx.t("cabinet.open_door")}</h3>
<input type=hidden name=kind value=open_door>
<label for=door>{ctx.t("cabinet.door")}</label>{door_input}
<label for=reason>{ctx.t("cabinet.reason")}</label>
<input id=reason name=reason required maxlength=500>
<button class="btn btn-danger" id=open-door type=submit>{ctx.t("cabinet.open_submit")}</button>
</form>
<form method=post action="{action}" class=card>
<h3>{ctx.t("cabinet.reinventory")}</h3><p>{ctx.t("cabinet.reinventory_help")}</p>
<input type=hidden name=kind value=reinventory>
<button class="btn btn-primary" id=reinventory type=submit>{ctx.t("cabinet.reinventory")}</button>
</form>
<form method=post action="{action}" class=card>
<h3>{ctx.t("cabinet.diagnostics")}</h3><p>{ctx.t("cabinet.diagnostics_help")}</p>
<input type=hidden name=kind value=fetch_diagnostics>
<button class="btn btn-primary" id=diagnostics type=submit>{ctx.t("cabinet.diagnostics")}</button>
</form></div>"""


def _args_text(ctx: Ctx, args: dict[str, Any]) -> str:
    if not args:
        return "—"
    parts = []
    if "door" in args:
        parts.append(f'{ctx.t("cabinet.door")} {e(args["door"])}')
    if "reason" in args:
        parts.append(e(args["reason"]))
    return " · ".join(parts) or compact_json(args)


def _result_cell(result: Any) -> str:
    if not result:
        return "—"
    return (f"<details><summary>{compact_json(result, 60)}</summary>"
            f"<pre>{compact_json(result, 4000)}</pre></details>")


@router.get("/console/cabinets/{cabinet_id}")
def cabinet_page(request: Request, cabinet_id: CabinetId, member: CabinetsRead) -> Response:
    ctx = Ctx.of(request, member)
    now = request_now(request)
    fs = _fleet_status()
    with request_engine(request).connect() as conn:
        row = fs.cabinet_overview(conn, cabinet_id, now)
        if row is None:
            raise ConsolePageError(404, "error.not_found",
                                   {"what": message_of(ctx, "cabinet.unknown", id=cabinet_id)})
        commands = fs.list_commands(conn, cabinet_id, 20, now=now)
        trail = _cabinet_audit(conn, cabinet_id)
    facts = [("cabinet.name", e(row["name"])), ("cabinet.location", e(row["location"])),
             ("common.branch", e(row["branch_id"])),
             ("fleet.col_online", _link_state(ctx, row["online"])),
             ("fleet.col_last_sync", when(row["last_sync_at"], ctx)),
             ("fleet.col_exposure", e(f'{row["offline_exposure"]} / {row["offline_exposure_cap"]}')),
             ("fleet.col_held", e(row["held_events"])),
             ("fleet.col_commands", e(row["pending_commands"]))]
    dl = "".join(f"<div><dt>{ctx.t(k)}</dt><dd>{v}</dd></div>" for k, v in facts)
    devices = table(ctx, ["cabinet.device", "cabinet.availability"],
                    [[e(n), f'<span class="badge {"good" if v == "ok" else "bad"}">{e(v)}</span>']
                     for n, v in sorted(row["devices"].items())], empty=ctx.t("common.none"))
    alarms = table(ctx, ["cabinet.alarm_kind", "cabinet.door", "common.when"],
                   [[e(a["kind"]), e(a.get("door") or "—"), e(a.get("at") or "—")]
                    for a in row["open_alarms"]], empty=ctx.t("common.none"))
    fill = table(ctx, ["cabinet.door", "fleet.col_fill"],
                 [[e(d), ctx.t("cabinet.fill_cell", count=f["count"], capacity=f["capacity"])]
                  for d, f in sorted(row["fill"].items())], empty=ctx.t("common.none"))
    command_rows = [[e(c["id"]), ctx.code("command", c["kind"]), _args_text(ctx, c["args"] or {}),
                     f'<span class="badge st-{e(c["status"])}">{ctx.code("status", c["status"])}</span>',
                     _result_cell(c["result"]), e(c["actor"]), when(c["created_at"], ctx),
                     when(c["finished_at"], ctx) if c["finished_at"] else "—"]
                    for c in commands]
    command_table = table(ctx, ["common.number", "cabinet.command_kind", "cabinet.command_args",
                                "common.status", "cabinet.command_result", "common.who",
                                "common.created", "common.when"], command_rows,
                          empty=ctx.t("cabinet.no_commands"))
    trail_table = table(ctx, ["common.when", "common.who", "common.what", "common.detail"],
                        [[when(a.at, ctx), e(a.actor), e(a.action), compact_json(a.detail, 200)]
                         for a in trail], empty=ctx.t("cabinet.no_audit"))
    forms = (_command_forms(ctx, cabinet_id, sorted(row["fill"])) if ctx.can("cabinets.command")
             else f'<p class=note>{ctx.t("readonly")}</p>')
    flash = (ctx.t("cabinet.queued", id=request.query_params["queued"])
             if request.query_params.get("queued", "").isdigit() else "")
    body = f"""<section aria-labelledby=h-facts><h2 id=h-facts>{ctx.t("cabinet.facts")}</h2>
<dl class=facts>{dl}</dl></section>
<div class=cols>
<section aria-labelledby=h-devices><h2 id=h-devices>{ctx.t("cabinet.devices")}</h2>{devices}</section>
<section aria-labelledby=h-alarms><h2 id=h-alarms>{ctx.t("cabinet.alarms")}</h2>{alarms}</section>
<section aria-labelledby=h-fill><h2 id=h-fill>{ctx.t("cabinet.fill")}</h2>{fill}</section>
</div>
<section aria-labelledby=h-commands><h2 id=h-commands>{ctx.t("cabinet.commands")}</h2>{forms}
<h3>{ctx.t("cabinet.command_list")}</h3><div id=commands>{command_table}</div></section>
<section aria-labelledby=h-audit><h2 id=h-audit>{ctx.t("cabinet.audit")}</h2>{trail_table}</section>"""
    return ctx.page(ctx.t("cabinet.title", id=cabinet_id), body, active="fleet", flash=flash)


def message_of(ctx: Ctx, key: str, **params: Any) -> str:
    """The sentence unescaped (for a parameter of another sentence, escaped there)."""
    return message(key, ctx.lang, params)


@router.post("/console/cabinets/{cabinet_id}/commands")
async def queue_command(request: Request, cabinet_id: CabinetId, member: Command) -> Response:
    fields = await read_form(request)
    kind = fields.get("kind", "")
    args: dict[str, Any] = {}
    if kind == "open_door":
        door = fields.get("door", "").strip()
        if not door.isdigit() or not 1 <= int(door) <= 999:
            raise ConsolePageError(422, "cabinet.bad_door")
        if not fields.get("reason", "").strip():
            raise ConsolePageError(422, "cabinet.need_reason")
        args = {"door": int(door), "reason": fields["reason"].strip()}
    fs = _fleet_status()
    from starlette.concurrency import run_in_threadpool

    def work() -> dict[str, Any]:
        with write_tx(request_engine(request)) as conn:
            return dict(fs.queue_command(conn, cabinet_id=cabinet_id, kind=kind, args=args,
                                         actor=member.username, now=request_now(request)))

    try:
        command = await run_in_threadpool(work)
    except fs.CommandRefused as exc:
        raise ConsolePageError(exc.status, "error.refused", {"detail": exc.detail}) from None
    return see_other(f"/console/cabinets/{quote(cabinet_id, safe='')}?queued={command['id']}")


def error_page(request: Request, exc: ConsolePageError) -> Response:
    """The page of a refusal (or the redirect a refusal asks for)."""
    if exc.location is not None:
        return see_other(exc.location)
    member = None
    try:
        member = staff_of(request)
    except ApiError:
        pass
    ctx = Ctx.of(request, member)
    body = (f'<p class=lead role=alert>{ctx.t(exc.key, **(exc.params or {}))}</p>'
            f'<p><a class="btn btn-secondary" href="/console">{ctx.t("error.back")}</a></p>')
    return ctx.page(ctx.t("error.title"), body, status=exc.status)

