"""The console's circulation pages: the exceptions queue, restock and transits, holds, 荐购.

As the other pages (see ``server.console.pages``): the server's own functions in-process
(``engine.resolve_exception``, ``routing.receive``, ``holds.expire_holds``,
``feedback.set_status``), POST forms answered 303, every action audited in its transaction.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from .. import engine, feedback, holds, routing
from ..db import write_tx
from ..routes_exceptions import exception_rows
from ..routes_restock import restock_view, transit_rows
from ..schema import branches
from ..security import record_audit, request_engine, request_now
from .auth import ConsolePageError
from .layout import Ctx, compact_json, read_form
from .messages import code_label
from .pages import (
    CirculationRead,
    Collection,
    Resolve,
    RowId,
    e,
    message_of,
    see_other,
    table,
    when,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


# ----------------------------------------------------------------------------- exceptions


def _evidence(ctx: Ctx, evidence: dict[str, Any]) -> str:
    lines = []
    for ev in evidence.get("events") or []:
        payload = ev.get("payload") or {}
        lines.append(f'<li>{e(ev.get("kind"))} · {ctx.t("common.cabinet")} {e(ev.get("cabinet_id"))} '
                     f'#{e(ev.get("seq"))} · {e(str(ev.get("at", ""))[:19])} · '
                     f'{ctx.t("common.item")} {e(payload.get("item_id", "—"))}</li>')
    others = {k: v for k, v in evidence.items() if k not in ("events", "key")}
    extra = f"<pre>{compact_json(others, 1200)}</pre>" if others else ""
    return (f'<ul class=events>{"".join(lines)}</ul>' if lines else "") + extra


def _exception_card(ctx: Ctx, x: dict[str, Any]) -> str:
    facts = [("common.item", e(x["item_id"] or "—")), ("common.cabinet", e(x["cabinet_id"] or "—")),
             ("common.reader", e(x["reader_id"] or "—")), ("common.created", when(x["created_at"], ctx)),
             ("common.status", ctx.code("status", x["status"]))]
    dl = "".join(f"<div><dt>{ctx.t(k)}</dt><dd>{v}</dd></div>" for k, v in facts)
    if x["status"] == "open" and ctx.can("exceptions.resolve"):
        radios = "".join(
            f'<div class=choice><input type=radio id="a-{x["id"]}-{i}" name=action value="{e(a)}"'
            f'{" checked" if i == 0 else ""}>'
            f'<label for="a-{x["id"]}-{i}">{ctx.code("action", a)}</label></div>'
            for i, a in enumerate(x["actions"] or []))
        action = f"""<form method=post action="/console/exceptions/{x["id"]}/resolve" class=resolve>
<fieldset><legend>{ctx.t("exceptions.choose")}</legend>{radios}</fieldset>
<label for="note-{x["id"]}">{ctx.t("common.note")}</label>
<input id="note-{x["id"]}" name=note maxlength=1000>
<button class="btn btn-primary" type=submit id="resolve-{x["id"]}">{ctx.t("exceptions.resolve")}</button>
</form>"""
    elif x["status"] == "resolved":
        label = code_label("action", x["resolution"], ctx.lang)
        action = f'<p class=resolved>{ctx.t("exceptions.resolution", action=label)}</p>'
    else:
        action = ""
    title = ctx.t("exceptions.heading", id=x["id"], kind=code_label("kind", x["kind"], ctx.lang))
    return (f'<article class="card exception" id="exception-{x["id"]}" aria-labelledby="x-{x["id"]}">'
            f'<h2 id="x-{x["id"]}">{title}</h2><dl class=facts>{dl}</dl>'
            f'<h3>{ctx.t("exceptions.evidence")}</h3>{_evidence(ctx, x["evidence"] or {})}{action}</article>')


def _filter_links(ctx: Ctx, name: str, current: str, options: list[tuple[str, str]]) -> str:
    links = "".join(
        f'<a class="btn btn-secondary" href="{ctx.link(**{name: value})}"'
        f'{" aria-current=page" if value == current else ""}>{label}</a>' for value, label in options)
    return f'<nav class=filters aria-label="{ctx.t("common.filter")}">{links}</nav>'


@router.get("/console/exceptions")
def exceptions_page(request: Request, member: CirculationRead) -> Response:
    ctx = Ctx.of(request, member)
    status = request.query_params.get("status", "open")
    if status not in ("open", "resolved", "all"):
        status = "open"
    with request_engine(request).connect() as conn:
        found = exception_rows(conn, status, 200)
    if status == "resolved":
        found.reverse()  # the latest resolution first
    filters = _filter_links(ctx, "status", status, [("open", ctx.t("exceptions.open")),
                                                    ("resolved", ctx.t("exceptions.resolved")),
                                                    ("all", ctx.t("common.all"))])
    cards = "".join(_exception_card(ctx, x) for x in found) or \
        f'<p class=empty>{ctx.t("exceptions.none")}</p>'
    readonly = "" if ctx.can("exceptions.resolve") else f'<p class=note>{ctx.t("readonly")}</p>'
    done = request.query_params.get("resolved", "")
    flash = ctx.t("exceptions.resolved_ok", id=done) if done.isdigit() else ""
    return ctx.page(ctx.t("exceptions.title"), filters + readonly + f"<div class=cards>{cards}</div>",
                    active="exceptions", flash=flash)


@router.post("/console/exceptions/{exception_id}/resolve")
async def resolve_exception(request: Request, exception_id: RowId, member: Resolve) -> Response:
    fields = await read_form(request)
    action = fields.get("action", "").strip()
    if not action:
        raise ConsolePageError(422, "exceptions.pick_action")
    from starlette.concurrency import run_in_threadpool

    def work() -> None:
        with write_tx(request_engine(request)) as conn:
            engine.resolve_exception(conn, exception_id, action, fields.get("note", "")[:1000],
                                     member.id, member.username, request_now(request))

    try:
        await run_in_threadpool(work)
    except engine.ResolutionRefused as exc:
        raise ConsolePageError(exc.status, "error.refused", {"detail": exc.detail}) from None
    return see_other(f"/console/exceptions?resolved={exception_id}")


# ----------------------------------------------------------------------------- restock


@router.get("/console/restock")
def restock_page(request: Request, member: CirculationRead) -> Response:
    ctx = Ctx.of(request, member)
    with request_engine(request).connect() as conn:
        all_branches = conn.execute(select(branches.c.id, branches.c.name).order_by(branches.c.id)).all()
        known = {b.id for b in all_branches}
        wanted = request.query_params.get("branch_id") or member.branch_id or ""
        branch_id = wanted if wanted in known else None
        view = restock_view(conn, branch_id=branch_id)
        moving = transit_rows(conn, "open", branch_id, 500)
    options = f'<option value="">{ctx.t("common.all")}</option>' + "".join(
        f'<option value="{e(b.id)}"{" selected" if b.id == branch_id else ""}>'
        f'{e(b.name)} ({e(b.id)})</option>'
        for b in all_branches)
    picker = f"""<form method=get action="/console/restock" class=inline>
<label for=branch>{ctx.t("restock.branch")}</label><select id=branch name=branch_id>{options}</select>
<button class="btn btn-secondary" type=submit>{ctx.t("common.filter")}</button></form>"""
    summary = "".join("<li>" + ctx.t("restock.per_cabinet", cabinet=c["cabinet_name"] or c["cabinet_id"],
                                     load=c["load"], unload=c["unload"]) + "</li>"
                      for c in view["cabinets"])
    tasks = table(ctx, ["common.cabinet", "restock.action", "common.item", "common.title",
                        "restock.reason", "common.created"],
                  [[e(t["cabinet_id"]), ctx.code("task", t["action"]), e(t["item_id"]), e(t["title"] or ""),
                    ctx.code("reason", t["reason"]), when(t["created_at"], ctx)] for t in view["tasks"]],
                  empty=ctx.t("restock.no_tasks"))
    can_receive = ctx.can("collection.manage")
    rows = []
    for t in moving:
        cells = [e(t["id"]), e(t["item_id"]), e(t["title"] or ""), e(t["from_cabinet_id"]),
                 e(t["to_branch_id"] or t["to_library"]), ctx.code("status", t["status"]),
                 when(t["created_at"], ctx)]
        if can_receive:
            cells.append(f'<form method=post action="/console/transits/{t["id"]}/receive">'
                         f'<input type=hidden name=branch_id value="{e(branch_id or "")}">'
                         f'<button class="btn btn-primary" type=submit id="receive-{t["id"]}">'
                         f'{ctx.t("restock.receive")}</button></form>')
        rows.append(cells)
    heads = ["common.number", "common.item", "common.title", "restock.from", "common.branch",
             "common.status", "common.created"] + (["restock.receive"] if can_receive else [])
    transits = table(ctx, heads, rows, empty=ctx.t("restock.no_transits"))
    branch_name = branch_id or message_of(ctx, "common.all")
    done = request.query_params.get("received", "")
    flash = ctx.t("restock.received", id=done) if done.isdigit() else ""
    body = (f'{picker}<section aria-labelledby=h-tasks><h2 id=h-tasks>{ctx.t("restock.tasks")}</h2>'
            f'<ul>{summary}</ul>{tasks}</section>'
            f'<section aria-labelledby=h-transits><h2 id=h-transits>'
            f'{ctx.t("restock.transits", branch=branch_name)}</h2>{transits}</section>')
    return ctx.page(ctx.t("restock.title"), body, active="restock", flash=flash)


@router.post("/console/transits/{transit_id}/receive")
async def receive_transit(request: Request, transit_id: RowId, member: Collection) -> Response:
    fields = await read_form(request)
    from starlette.concurrency import run_in_threadpool

    def work() -> None:
        with write_tx(request_engine(request)) as conn:
            routing.receive(conn, transit_id, username=member.username, now=request_now(request))

    try:
        await run_in_threadpool(work)
    except routing.TransitRefused as exc:
        raise ConsolePageError(exc.status, "error.refused", {"detail": exc.detail}) from None
    branch = fields.get("branch_id", "")
    back = f"branch_id={quote(branch, safe='')}&" if branch else ""
    return see_other(f"/console/restock?{back}received={transit_id}")


# ----------------------------------------------------------------------------- holds


HOLD_STATUSES = ("waiting", "assigned", "ready", "collected", "cancelled", "expired")


@router.get("/console/holds")
def holds_page(request: Request, member: CirculationRead) -> Response:
    ctx = Ctx.of(request, member)
    status = request.query_params.get("status", "")
    status = status if status in HOLD_STATUSES else ""
    with request_engine(request).connect() as conn:
        found = holds.list_holds(conn, status=status or None)[:500]
    filters = _filter_links(ctx, "status", status, [("", ctx.t("common.all"))] + [
        (s, ctx.code("status", s)) for s in HOLD_STATUSES])
    rows = [[e(h["id"]), e(h["item_id"]), e(h.get("title") or ""), e(h["reader_id"]),
             e(h["pickup_cabinet_id"]), ctx.code("status", h["status"]),
             when(h.get("expires_at"), ctx) if h.get("expires_at") else "—"] for h in found]
    listing = table(ctx, ["common.number", "common.item", "common.title", "common.reader",
                          "holds.pickup", "common.status", "holds.expires"], rows,
                    empty=ctx.t("holds.none"))
    action = (f'<form method=post action="/console/holds/expire" class=inline>'
              f'<p>{ctx.t("holds.expire_help")}</p>'
              f'<button class="btn btn-primary" id=expire type=submit>{ctx.t("holds.expire")}</button></form>'
              if ctx.can("collection.manage") else f'<p class=note>{ctx.t("readonly")}</p>')
    n = request.query_params.get("expired", "")
    flash = ctx.t("holds.expired", n=n) if n.isdigit() else ""
    return ctx.page(ctx.t("holds.title"), filters + action + listing, active="holds", flash=flash)


@router.post("/console/holds/expire")
def expire_holds(request: Request, member: Collection) -> Response:
    now = request_now(request)
    with write_tx(request_engine(request)) as conn:
        expired = holds.expire_holds(conn, now)
        record_audit(conn, at=now, actor=member.username, action="holds.expire",
                     detail={"expired": expired, "via": "console"})
    return see_other(f"/console/holds?expired={len(expired)}")


# ----------------------------------------------------------------------------- 荐购


def _rec_form(ctx: Ctx, rec: dict[str, Any]) -> str:
    steps = sorted(feedback.TRANSITIONS.get(rec["status"], ()),
                   key=feedback.STATUSES.index)
    if not steps:
        return ctx.t("recs.final")
    if not ctx.can("collection.manage"):
        return "—"
    rid = rec["id"]
    options = "".join(f'<option value="{s}">{ctx.code("status", s)}</option>' for s in steps)
    item = (f'<label for="item-{rid}">{ctx.t("recs.item_id")}</label>'
            f'<input id="item-{rid}" name=item_id maxlength=64>' if "shelved" in steps else "")
    return (f'<form method=post action="/console/recommendations/{rid}/status" class=rec-form>'
            f'<label for="to-{rid}">{ctx.t("recs.move")}</label>'
            f'<select id="to-{rid}" name=status>{options}</select>'
            f'{item}<label for="rnote-{rid}">{ctx.t("common.note")}</label>'
            f'<input id="rnote-{rid}" name=note maxlength=500>'
            f'<button class="btn btn-primary" type=submit id="move-{rid}">'
            f'{ctx.t("common.submit")}</button></form>')


@router.get("/console/recommendations")
def recommendations_page(request: Request, member: CirculationRead) -> Response:
    ctx = Ctx.of(request, member)
    status = request.query_params.get("status", "")
    status = status if status in feedback.STATUSES else ""
    with request_engine(request).connect() as conn:
        found = feedback.list_recommendations(conn, status=status or None)[:500]
    filters = _filter_links(ctx, "status", status, [("", ctx.t("common.all"))] + [
        (s, ctx.code("status", s)) for s in feedback.STATUSES])
    rows = []
    for rec in found:
        history = "<ol class=history>" + "".join(
            f'<li>{ctx.code("status", h.get("status"))} · {e(str(h.get("at", ""))[:16])} · {e(h.get("by"))}'
            f'{" · " + e(h["note"]) if h.get("note") else ""}</li>' for h in rec["history"]) + "</ol>"
        rows.append([e(rec["id"]), e(rec["isbn"] or "—"), e(rec["title"] or "—"),
                     f'<span class="badge st-{e(rec["status"])}">{ctx.code("status", rec["status"])}</span>',
                     history, _rec_form(ctx, rec)])
    listing = table(ctx, ["common.number", "recs.isbn", "common.title", "common.status",
                          "recs.history", "recs.move"], rows, empty=ctx.t("recs.none"))
    done, to = request.query_params.get("changed", ""), request.query_params.get("to", "")
    flash = (ctx.t("recs.changed", id=done, status=message_of(ctx, "status." + to))
             if done.isdigit() and to in feedback.STATUSES else "")
    return ctx.page(ctx.t("recs.title"), f'<p class=lead>{ctx.t("recs.flow")}</p>' + filters + listing,
                    active="recommendations", flash=flash)


@router.post("/console/recommendations/{rec_id}/status")
async def recommendation_status(request: Request, rec_id: RowId, member: Collection) -> Response:
    fields = await read_form(request)
    status = fields.get("status", "")
    item_id = fields.get("item_id", "").strip() or None
    note = fields.get("note", "")[:500]
    from starlette.concurrency import run_in_threadpool

    def work() -> None:
        now = request_now(request)
        with write_tx(request_engine(request)) as conn:
            feedback.set_status(conn, rec_id=rec_id, status=status, note=note, item_id=item_id,
                                by=member.username, now=now)
            record_audit(conn, at=now, actor=member.username, action="recommendation.status",
                         target=f"recommendation:{rec_id}",
                         detail={"status": status, "item_id": item_id, "via": "console"})

    try:
        await run_in_threadpool(work)
    except feedback.FeedbackRefused as exc:
        raise ConsolePageError(exc.status, "error.refused", {"detail": exc.detail}) from None
    return see_other(f"/console/recommendations?changed={rec_id}&to={quote(status)}")
