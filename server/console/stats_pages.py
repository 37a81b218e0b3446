"""Statistics with charts, CSV exports and the printable annual report.

The numbers are :func:`server.stats.compute`'s (the same as ``GET /api/reports/stats``); the
CSV exports are :func:`server.stats.table_rows` through the API's own CSV writer, so a
download from the console and one from the API are the same file. Each chart is followed by
its numbers as a table (the text alternative, also what a screen reader reads).
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection, select

from .. import stats
from ..routes_reports import csv_response
from ..schema import branches, cabinets, exceptions
from ..security import aware_utc, request_engine, request_now
from . import charts
from .auth import ConsolePageError
from .layout import Ctx
from .messages import message
from .pages import CirculationRead, e, table

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

ZONE = ZoneInfo(stats.DEFAULT_TZ)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _period(request: Request) -> tuple[datetime, datetime]:
    try:
        return stats.parse_period(request.query_params.get("from") or None,
                                  request.query_params.get("to") or None, ZONE, request_now(request))
    except ValueError as exc:
        raise ConsolePageError(422, "error.bad_period", {"detail": str(exc)}) from None


def _local_days(start: datetime, end: datetime) -> list[date]:
    first = start.astimezone(ZONE).date()
    last = (end - timedelta(microseconds=1)).astimezone(ZONE).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _exceptions_per_day(conn: Connection, start: datetime, end: datetime) -> dict[date, int]:
    """New exceptions per local day (bucketed in Python, as server.stats does hours)."""
    counts: dict[date, int] = defaultdict(int)
    for (at,) in conn.execute(select(exceptions.c.created_at).where(
            exceptions.c.created_at >= start, exceptions.c.created_at < end)):
        counts[aware_utc(at).astimezone(ZONE).date()] += 1
    return counts


def _figure(ctx: Ctx, fig_id: str, title: str, chart: str, data_table: str) -> str:
    return (f'<section class=figure aria-labelledby="{fig_id}"><h2 id="{fig_id}">{title}</h2>'
            f'{chart}{data_table}</section>')


def heatmap_section(ctx: Ctx, hourly: Sequence[dict[str, Any]], days: list[date]) -> str:
    by_weekday = len(days) > 31
    cells: dict[tuple[Any, int], int] = defaultdict(int)
    for row in hourly:
        day = date.fromisoformat(row["date"])
        cells[(day.weekday() if by_weekday else day, int(row["hour_of_day"]))] += int(row["loans"])
    keys: list[Any] = list(range(7)) if by_weekday else days
    labels = [ctx.t(f"weekday.{k}") if by_weekday else e(k.isoformat()) for k in keys]
    values = [[float(cells[(k, h)]) for h in range(24)] for k in keys]
    peak = int(max((v for row in values for v in row), default=0))
    title = ctx.t("stats.heatmap_weekday" if by_weekday else "stats.heatmap")
    chart = charts.heatmap(title, ctx.t("stats.heatmap_desc", max=peak), labels,
                           [str(h) for h in range(24)], values)
    head = f'<th scope=col>{ctx.t("stats.day")}</th>' + "".join(
        f"<th scope=col>{h}</th>" for h in range(24))
    body = "".join(f"<tr><th scope=row>{label}</th>" + "".join(f"<td>{int(v)}</td>" for v in row)
                   + "</tr>" for label, row in zip(labels, values, strict=True))
    data = (f'<details><summary>{ctx.t("common.table_of", chart=message("stats.heatmap", ctx.lang))}'
            f'</summary><div class=scroll><table class=dense><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div></details>')
    return _figure(ctx, "fig-heatmap", title, chart, data)


def _bars(ctx: Ctx, fig_id: str, title_key: str, what_key: str,
          data: list[tuple[str, float | None, str]], extra_cols: list[tuple[str, list[str]]],
          top: float | None = None) -> str:
    scope = {"stats.what_cabinet": "stats.per_cabinet", "stats.what_branch": "stats.per_branch"}
    title = ctx.t(title_key) + (f" · {ctx.t(scope[what_key])}" if what_key in scope else "")
    desc = ctx.t("stats.bars_desc", what=message(what_key, ctx.lang))
    header = {"stats.what_cabinet": "common.cabinet", "stats.what_branch": "common.branch"}.get(
        what_key, what_key)
    total = message("common.total", ctx.lang)
    data = [(total if label == stats.TOTAL else label, v, shown) for label, v, shown in data]
    if not data:
        return _figure(ctx, fig_id, title, f'<p class=empty>{ctx.t("stats.no_data")}</p>', "")
    chart = charts.bars(title, desc, data, top)
    heads = [f"<th scope=col>{ctx.t(header)}</th>"] + [
        f"<th scope=col>{ctx.t(k)}</th>" for k, _ in extra_cols] + [
        f'<th scope=col>{ctx.t("stats.value")}</th>']
    rows = []
    for i, (label, _, shown) in enumerate(data):
        extra = "".join(f"<td>{values[i]}</td>" for _, values in extra_cols)
        rows.append(f"<tr><th scope=row>{label}</th>{extra}<td>{shown}</td></tr>")
    data_table = (f'<div class=scroll><table class=dense><caption>'
                  f'{ctx.t("common.table_of", chart=html.unescape(title))}</caption>'
                  f'<thead><tr>{"".join(heads)}</tr></thead>'
                  f'<tbody>{"".join(rows)}</tbody></table></div>')
    return _figure(ctx, fig_id, title, chart, data_table)


def _branch_of(conn: Connection) -> dict[str, str]:
    return {r.id: r.branch_id for r in conn.execute(select(cabinets.c.id, cabinets.c.branch_id))}


def rate_sections(ctx: Ctx, result: dict[str, Any], branch_of: dict[str, str]) -> str:
    tables, totals = result["tables"], result["totals"]
    util = tables["utilisation"]
    out = [_bars(ctx, "fig-util", "stats.utilisation", "stats.what_cabinet",
                 [(e(r["cabinet_id"]), r["utilisation"], _num(r["utilisation"])) for r in util],
                 [("annual.loans", [e(r["loans"]) for r in util]),
                  ("stats.occupancy", [_pct(r["occupancy"]) for r in util])])]
    per_branch: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in util:
        per_branch[r["branch_id"]][0] += r["loans"]
        per_branch[r["branch_id"]][1] += r["average_stock"] or 0
    branch_rows = sorted(per_branch.items())
    out.append(_bars(ctx, "fig-util-branch", "stats.utilisation", "stats.what_branch",
                     [(e(b), v[0] / v[1] if v[1] else None, _num(v[0] / v[1] if v[1] else None))
                      for b, v in branch_rows],
                     [("annual.loans", [e(int(v[0])) for _, v in branch_rows])]))
    part = [*tables["participation"], totals["participation"]]
    out.append(_bars(ctx, "fig-part", "stats.participation", "stats.what_branch",
                     [(e(r["branch_id"]), r["participation"], _pct(r["participation"]))
                      for r in part],
                     [("annual.borrowers", [e(r["borrowers"]) for r in part])], top=None))
    sat = [*tables["satisfaction"], totals["satisfaction"]]
    out.append(_bars(ctx, "fig-sat", "stats.satisfaction", "stats.what_cabinet",
                     [(e(r["cabinet_id"] or message("stats.unknown", ctx.lang)), r["satisfaction"],
                       _pct(r["satisfaction"])) for r in sat],
                     [("annual.ratings", [e(r["ratings"]) for r in sat])], top=1.0))
    sat_branch: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in tables["satisfaction"]:
        key = branch_of.get(r["cabinet_id"] or "", message("stats.unknown", ctx.lang))
        sat_branch[key][0] += r["satisfied"]
        sat_branch[key][1] += r["ratings"]
    sb = sorted(sat_branch.items())
    out.append(_bars(ctx, "fig-sat-branch", "stats.satisfaction", "stats.what_branch",
                     [(e(b), v[0] / v[1] if v[1] else None, _pct(v[0] / v[1] if v[1] else None))
                      for b, v in sb], [("annual.ratings", [e(v[1]) for _, v in sb])], top=1.0))
    off = [*tables["offline"], totals["offline"]]
    out.append(_bars(ctx, "fig-offline", "stats.offline", "stats.what_cabinet",
                     [(e(r["cabinet_id"]), r["offline_share"], _pct(r["offline_share"]))
                      for r in off],
                     [("common.count", [e(f'{r["offline"]}/{r["events"]}') for r in off])], top=1.0))
    return "".join(out)


def flows_section(ctx: Ctx, flows: Sequence[dict[str, Any]], branch_ids: list[str]) -> str:
    """Home branch (rows) → returning branch (columns): a matrix whose cells are shaded."""
    title = ctx.t("stats.flows")
    if not flows:
        return _figure(ctx, "fig-flows", title, f'<p class=empty>{ctx.t("stats.no_data")}</p>', "")
    names = sorted({*branch_ids, *(f["from_branch_id"] for f in flows),
                    *(f["to_branch_id"] for f in flows)})
    counts = {(f["from_branch_id"], f["to_branch_id"]): int(f["returns"]) for f in flows}
    peak = max(counts.values(), default=0)
    head = f'<th scope=col>{ctx.t("stats.flows_from")}</th>' + "".join(
        f"<th scope=col>{e(n)}</th>" for n in names)
    body = ""
    for src in names:
        cells = "".join(f'<td class="heat-{charts.shade(counts.get((src, dst), 0), peak)}">'
                        f'{counts.get((src, dst), 0)}</td>' for dst in names)
        body += f"<tr><th scope=row>{e(src)}</th>{cells}</tr>"
    matrix = (f'<div class=scroll><table class="matrix dense"><caption>{title}</caption>'
              f'<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
    return _figure(ctx, "fig-flows", title, matrix, "")


def exceptions_section(ctx: Ctx, per_day: dict[date, int], days: list[date]) -> str:
    title = ctx.t("stats.exceptions")
    points = [(d.isoformat(), float(per_day.get(d, 0))) for d in days]
    peak = int(max((v for _, v in points), default=0))
    chart = charts.line(title, ctx.t("stats.line_desc", start=days[0].isoformat(),
                                     end=days[-1].isoformat(), max=peak), points)
    rows = "".join(f"<tr><th scope=row>{label}</th><td>{int(v)}</td></tr>"
                   for label, v in points if v)
    data = (f'<div class=scroll><table class=dense><caption>'
            f'{ctx.t("common.table_of", chart=message("stats.exceptions", ctx.lang))}</caption>'
            f'<thead><tr><th scope=col>{ctx.t("stats.day")}</th>'
            f'<th scope=col>{ctx.t("common.count")}</th></tr></thead>'
            f'<tbody>{rows or "<tr><td colspan=2>0</td></tr>"}</tbody></table></div>')
    return _figure(ctx, "fig-exceptions", title, chart, data)


def _branch_ids(conn: Connection) -> list[str]:
    return [r.id for r in conn.execute(select(branches.c.id).order_by(branches.c.id))]


@router.get("/console/stats")
def stats_page(request: Request, member: CirculationRead) -> Response:
    ctx = Ctx.of(request, member)
    start, end = _period(request)
    now = request_now(request)
    with request_engine(request).connect() as conn:
        result = stats.compute(conn, start, end, ZONE, now=now)
        per_day = _exceptions_per_day(conn, start, end)
        branch_of = _branch_of(conn)
        branch_ids = _branch_ids(conn)
    days = _local_days(start, end)
    first, last = days[0].isoformat(), (days[-1] + timedelta(days=1)).isoformat()
    form = f"""<form method=get action="/console/stats" class=inline id=period>
<label for=from>{ctx.t("stats.from")}</label><input id=from name=from type=date value="{first}">
<label for=to>{ctx.t("stats.to")}</label><input id=to name=to type=date value="{last}">
<button class="btn btn-secondary" type=submit>{ctx.t("stats.show")}</button></form>"""
    exports = "".join(
        f'<li><a class="btn btn-secondary" id="export-{t}" download '
        f'href="/console/export/{t}.csv?from={first}&amp;to={last}">{ctx.t("table." + t)}</a></li>'
        for t in stats.TABLES)
    year = days[-1].year
    links = (f'<section aria-labelledby=h-exports class=no-print>'
             f'<h2 id=h-exports>{ctx.t("stats.exports")}</h2>'
             f'<ul class=exports>{exports}</ul><p><a class="btn btn-primary" id=annual '
             f'href="/console/report/annual?year={year}">{ctx.t("stats.annual")} {year}</a></p></section>')
    period = ctx.t("stats.period", start=first, end=days[-1].isoformat(), tz=stats.DEFAULT_TZ)
    body = (f"<p class=lead>{period}</p>{form}{links}"
            + heatmap_section(ctx, result["tables"]["hourly"], days)
            + rate_sections(ctx, result, branch_of)
            + flows_section(ctx, result["tables"]["flows"], branch_ids)
            + exceptions_section(ctx, per_day, days))
    return ctx.page(ctx.t("stats.title"), body, active="stats")


@router.get("/console/export/{table}.csv")
def export(request: Request, table: str, member: CirculationRead) -> Response:
    if table not in stats.TABLES:
        raise ConsolePageError(404, "error.unknown_table", {"table": table[:64]})
    start, end = _period(request)
    with request_engine(request).connect() as conn:
        result = stats.compute(conn, start, end, ZONE, now=request_now(request))
    columns, rows = stats.table_rows(result, table)
    stamp = f"{start.strftime('%Y%m%dT%H%MZ')}-{end.strftime('%Y%m%dT%H%MZ')}"
    return csv_response(columns, rows, f"lendbox-stats-{table}-{stamp}.csv")


@router.get("/console/report/annual")
def annual(request: Request, member: CirculationRead) -> Response:
    ctx = Ctx.of(request, member)
    now = request_now(request)
    text = request.query_params.get("year") or str(now.astimezone(ZONE).year)
    if not text.isdigit() or not 2000 <= int(text) <= 2100:
        raise ConsolePageError(422, "error.bad_year")
    year = int(text)
    start = datetime.combine(date(year, 1, 1), time(), ZONE).astimezone(UTC)
    end = datetime.combine(date(year + 1, 1, 1), time(), ZONE).astimezone(UTC)
    with request_engine(request).connect() as conn:
        result = stats.compute(conn, start, end, ZONE, now=now)
        per_day = _exceptions_per_day(conn, start, end)
        branch_of = _branch_of(conn)
        branch_ids = _branch_ids(conn)
    tables, totals = result["tables"], result["totals"]
    loans = sum(r["loans"] for r in tables["utilisation"])
    returns = sum(r["returns"] for r in tables["utilisation"])
    figures = [("annual.loans", str(loans)), ("annual.returns", str(returns)),
               ("annual.borrowers", str(totals["participation"]["borrowers"])
                if totals["participation"]["population"] else "—"),  # counted where population known
               ("stats.participation", _pct(totals["participation"]["participation"])),
               ("annual.ratings", str(totals["satisfaction"]["ratings"])),
               ("stats.satisfaction", _pct(totals["satisfaction"]["satisfaction"])),
               ("stats.offline", _pct(totals["offline"]["offline_share"]))]
    dl = "".join(f"<div><dt>{ctx.t(k)}</dt><dd>{e(v)}</dd></div>" for k, v in figures)
    monthly: dict[int, int] = defaultdict(int)
    for row in tables["hourly"]:
        monthly[int(row["date"][5:7])] += int(row["loans"])
    months: list[tuple[str, float | None, str]] = [
        (f"{year}-{m:02d}", float(monthly.get(m, 0)), str(monthly.get(m, 0))) for m in range(1, 13)]
    month_chart = _bars(ctx, "fig-monthly", "annual.monthly", "annual.month", months, [])
    x_rows = [[ctx.code("kind", r["kind"]), ctx.code("status", r["status"]), e(r["count"])]
              for r in tables["exceptions"]]
    x_table = table(ctx, ["common.kind", "common.status", "common.count"], x_rows,
                    empty=ctx.t("stats.no_data"))
    days = _local_days(start, end)
    generated = ctx.t("annual.generated", at=now.strftime("%Y-%m-%d %H:%M UTC"))
    intro = ctx.t("annual.intro", start=f"{year}-01-01", end=f"{year}-12-31",
                  cabinets=len(tables["utilisation"]))
    body = (f'<p class=lead>{intro}</p>'
            f'<p class=no-print><button class="btn btn-primary" type=button id=print '
            f'onclick="window.print()">{ctx.t("annual.print")}</button></p>'
            f'<section aria-labelledby=h-key><h2 id=h-key>{ctx.t("annual.key_figures")}</h2>'
            f'<dl class="facts key">{dl}</dl></section>'
            + month_chart + rate_sections(ctx, result, branch_of)
            + flows_section(ctx, tables["flows"], branch_ids)
            + exceptions_section(ctx, per_day, days)
            + f'<section aria-labelledby=h-x><h2 id=h-x>{ctx.t("annual.exceptions")}</h2>'
            + f"{x_table}</section>"
            + f"<p class=sub>{generated}</p>")
    return ctx.page(ctx.t("annual.title", year=year), body, active="stats")

