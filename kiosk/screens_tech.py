"""The technician's diagnostics pages on the kiosk, behind a technician login.

One implementation, two faces: every check here is a call of ``drivers.diag`` on the running
kiosk's own devices (``runtime.hardware``), exactly what ``lendbox diag`` runs from a shell,
so the page and the command can never disagree about a part.

Why checks that move hardware (test-unlock, inventory, self-test) are refused while a reader
session runs or a door is in use: a technician's unlock in the middle of a borrow would open
a door the reader did not choose, and an inventory would compete with the session's count.
Read-only looks (the devices page, the bundle) are always allowed; diagnostics only peek at
board events, never acknowledge them, so the kiosk's own pollers still see every event.

A door the technician test-unlocks is, for the kiosk, a door opened without a session: it
records an alarm and counts the door when it closes. That is deliberate — the ledger stays
right even if something was taken while the door stood open.

Pages run their hardware work in FastAPI's thread pool (sync handlers), never on the event
loop; the self-test runs in a thread of its own and the page follows its progress.
"""

from __future__ import annotations

import functools
import html
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from drivers.diag import (
    DevicesReport,
    Finding,
    InventoryReport,
    SelfTestReport,
    Severity,
    UnlockCheck,
    check_devices,
    inventory_report,
    run_selftest,
    test_unlock,
)
from drivers.errors import ConfigError, DriverError

from .diag_bundle import build_bundle, install_log_ring
from .messages import CATALOGUE, message
from .runtime import KioskRuntime
from .screens import Prefs, render_page
from .tech_auth import LoginThrottle, SessionSigner, load_or_create_session_key, verify_password
from .tech_subjects import subject_html

__all__ = ["COOKIE", "finding_html", "tech_router"]

COOKIE = "tech_session"
#: a wrong password costs this long before the answer (on top of scrypt's own time)
FAIL_DELAY_S = 0.5
UNLOCK_WATCH_S = 3.0
MAX_ROUNDS = 10


@dataclass(slots=True)
class _SelfTest:
    running: bool = False
    step: str = ""
    report: SelfTestReport | None = None
    error: str = ""
    unlock: bool = False
    started: float = 0.0
    seconds: float = 0.0


class _Tech:
    """What the technician pages share: the cookie signer, the throttle, one diagnosis at a
    time (a second technician tab must not pulse a lock during the first one's self-test)."""

    def __init__(self, runtime: KioskRuntime) -> None:
        self.runtime = runtime
        self.throttle = LoginThrottle()
        self.work = threading.Lock()
        self.selftest = _SelfTest()
        self._signer: SessionSigner | None = None

    @property
    def signer(self) -> SessionSigner:
        if self._signer is None:  # the data dir exists once the runtime has started
            key = load_or_create_session_key(self.runtime.config.data_dir / "tech-session.key")
            self._signer = SessionSigner(key)
        return self._signer

    @property
    def password_hash(self) -> str | None:
        tech = self.runtime.config.technician
        return tech.password_hash if tech is not None else None

    def logged_in(self, request: Request) -> bool:
        return self.password_hash is not None and self.signer.valid(request.cookies.get(COOKIE))

    def busy(self) -> bool:
        """A reader session runs or a door is open or being counted."""
        state = self.runtime.state()
        return state["session"] is not None or bool(state["doors"])


# --------------------------------------------------------------------------- page frame


def _page(p: Prefs, title_key: str, body: str, *, here: str = "", nav: bool = True,
          status: int = 200, **params: Any) -> Response:
    title = p.t(title_key, **params)
    links = ""
    if nav:
        items = [("/tech", "tech.nav_devices"), ("/tech/doors", "tech.nav_doors"),
                 ("/tech/inventory", "tech.nav_inventory"), ("/tech/selftest", "tech.nav_selftest")]
        links = "".join(
            f'<li><a class="btn btn-secondary"{" aria-current=page" if href == here else ""} '
            f'href="{href}">{p.t(key)}</a></li>' for href, key in items)
        links = (f'<nav class=tech-nav aria-label="{p.t("tech.nav")}"><ul>{links}'
                 f'<li><a class="btn btn-secondary" id=bundle href="/tech/bundle.zip" download>'
                 f'{p.t("tech.bundle")}</a></li></ul>'
                 f'<form method=post action="/tech/logout"><button class="btn btn-secondary" '
                 f'id=logout type=submit>{p.t("tech.logout")}</button></form></nav>')
    other = "en" if p.lang == "zh" else "zh"
    other_lang = "en" if other == "en" else "zh-CN"
    contrast_to = "normal" if p.contrast == "high" else "high"
    contrast_key = "screen.contrast_normal" if p.contrast == "high" else "screen.contrast_high"
    path = here or "/tech/login"
    options = (f'<div class=tech-options><a class="btn btn-secondary" id=lang lang="{other_lang}" '
               f'hreflang="{other_lang}" href="{path}?lang={other}">'
               f'{p.t("screen.other_language")}</a>'
               f'<a class="btn btn-secondary" id=contrast href="{path}?contrast={contrast_to}">'
               f'{p.t(contrast_key)}</a></div>')
    inner = (f'<div class=tech><header class=tech-head><h1>{title}</h1>{options}</header>'
             f'{links}{body}</div>')
    page = render_page(p, title, inner).replace(
        "</head>", '<link rel=stylesheet href="/static/tech.css">\n'
                   '<script src="/static/tech.js" defer></script>\n</head>', 1)
    return p.keep(HTMLResponse(page, status_code=status))


def _e(value: object) -> str:
    return html.escape(str(value))


def _en(value: object) -> str:
    """Text from the drivers (English only: the same words `lendbox diag` prints)."""
    return f'<span lang=en>{_e(value)}</span>'


def _availability(p: Prefs, value: object) -> str:
    text = str(value)
    cls = {"ok": "ok", "degraded": "warn"}.get(text, "fault")
    key = f"tech.avail_{text}"
    label = p.t(key) if message(key, p.lang) != key else _e(text)
    return f'<span class="state {cls}">{label}</span>'


#: Finding params that are words of ours, put into the page's language: param → key prefix.
_WORD_PARAMS = {"part": "tech.part.", "status": "tech.part_status."}
#: Finding params that are the driver's own English (an exception, a reason): kept as they
#: are, marked English so a screen reader does not read them with Chinese rules.
_RAW_PARAMS = frozenset({"error", "reason"})


def finding_html(code: str, params: Mapping[str, object], lang: str) -> str | None:
    """A finding (its ``code`` and ``params``) in ``lang`` from ``tech.finding.<code>``,
    HTML-escaped; None when the code has no catalogue entry (the caller shows the driver's
    English). Like ``message()``, a missing param leaves its placeholder visible."""
    pair = CATALOGUE.get("tech.finding." + code) if code else None
    if pair is None:
        return None
    template = pair[0 if lang != "en" else 1]
    out: list[str] = []
    for literal, name, spec, _ in string.Formatter().parse(template):
        out.append(html.escape(literal))
        if name is None:
            continue
        if name not in params:
            out.append(html.escape("{" + name + "}"))
            continue
        value = params[name]
        if name in _WORD_PARAMS:
            key = _WORD_PARAMS[name] + str(value).replace(" ", "_")
            if key in CATALOGUE:
                value = message(key, lang)
            elif lang != "en":  # a word added to the drivers but not yet here
                out.append(_en(value))
                continue
        text = html.escape(format(value, spec or ""))
        out.append(f"<span lang=en>{text}</span>" if name in _RAW_PARAMS and lang != "en"
                   else text)
    return "".join(out)


def _findings(p: Prefs, findings: list[Finding], *, list_id: str) -> str:
    if not findings:
        return f'<p class="verdict pass" id={list_id}>{p.t("tech.all_passed")}</p>'
    rows = []
    for f in findings:
        sev = "fault" if f.severity is Severity.FAULT else "warn"
        label = p.t("tech.fault" if sev == "fault" else "tech.warning")
        subject = subject_html(f.subject, p.lang) or _en(f.subject)
        text = finding_html(f.code, f.params, p.lang) or _en(f.message)
        rows.append(f'<li class={sev} data-subject="{_e(f.subject)}" data-code="{_e(f.code)}">'
                    f'<span class="state {sev}">{label}</span> <strong>{subject}</strong>'
                    f'{"：" if p.lang != "en" else ": "}{text}</li>')
    return f'<ul class=findings id={list_id}>{"".join(rows)}</ul>'


def _table(caption: str, head: list[str], rows: list[list[str]], *, table_id: str) -> str:
    th = "".join(f"<th scope=col>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (f'<div class=table-wrap><table id={table_id}><caption>{caption}</caption>'
            f'<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>')


def _refused(p: Prefs, here: str, key: str, status: int = 409) -> Response:
    body = f'<p class="note" role=alert id=refused>{p.t(key)}</p>'
    return _page(p, "tech.refused_title", body, here=here, status=status)


# --------------------------------------------------------------------------- router


def tech_router(runtime: KioskRuntime) -> APIRouter:
    install_log_ring()
    tech = _Tech(runtime)
    router = APIRouter(include_in_schema=False)

    def guarded(handler: Callable[..., Response]) -> Callable[..., Response]:
        """Pages behind the login: without a valid cookie, to the login page."""
        @functools.wraps(handler)
        def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
            if not tech.logged_in(request):
                return RedirectResponse("/tech/login?next=" + quote(request.url.path, safe="/"),
                                        status_code=303)
            return handler(request, *args, **kwargs)
        return wrapper

    # ---------------------------------------------------------------- login
    def login_page(p: Prefs, *, error: str = "", status: int = 200, nxt: str = "/tech"
                   ) -> Response:
        if tech.password_hash is None:
            body = (f'<p class=note role=status id=no-password>{p.t("tech.no_password")}</p>'
                    f'<pre class=command>lendbox kiosk technician-password --config '
                    f'{_e(runtime.config.path)}</pre>')
            return _page(p, "tech.login_title", body, nav=False, status=status)
        alert = f'<p class="note error" role=alert id=login-error>{error}</p>' if error else ""
        body = (f'{alert}<form method=post action="/tech/login" class=login>'
                f'<input type=hidden name=next value="{_e(nxt)}">'
                f'<label for=password>{p.t("tech.password")}</label>'
                f'<input id=password name=password type=password autocomplete=current-password '
                f'required autofocus>'
                f'<button class="btn btn-primary" id=login type=submit>{p.t("tech.login")}</button>'
                f'</form>')
        return _page(p, "tech.login_title", body, nav=False, status=status)

    @router.get("/tech/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/tech") -> Response:  # noqa: A002
        return login_page(Prefs.of(request), nxt=_safe_next(next))

    @router.post("/tech/login")
    async def login(request: Request) -> Response:
        p = Prefs.of(request)
        raw = await request.body()
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True) \
            if len(raw) < 4096 else {}
        password = (form.get("password") or [""])[0]
        nxt = _safe_next((form.get("next") or ["/tech"])[0])
        stored = tech.password_hash
        if stored is None:
            return login_page(p, status=403)
        wait = tech.throttle.wait_s()
        if wait > 0:
            return login_page(p, error=p.t("tech.locked", seconds=int(wait) + 1), status=429,
                              nxt=nxt)
        ok = bool(password) and await run_in_threadpool(verify_password, stored, password)
        if not ok:
            tech.throttle.failed()
            await run_in_threadpool(time.sleep, FAIL_DELAY_S)
            return login_page(p, error=p.t("tech.wrong_password"), status=401, nxt=nxt)
        tech.throttle.succeeded()
        response = RedirectResponse(nxt, status_code=303)
        response.set_cookie(COOKIE, tech.signer.issue(), max_age=int(tech.signer.ttl_s),
                            path="/tech", httponly=True, samesite="strict")
        return response

    @router.post("/tech/logout")
    def logout() -> Response:
        response = RedirectResponse("/tech/login", status_code=303)
        response.delete_cookie(COOKIE, path="/tech", httponly=True, samesite="strict")
        return response

    # ---------------------------------------------------------------- devices
    @router.get("/tech", response_class=HTMLResponse)
    @guarded
    def devices(request: Request) -> Response:
        p = Prefs.of(request)
        assert runtime.hardware is not None
        report = check_devices(runtime.hardware)
        health = runtime.health()
        body = (_devices_section(p, report, health) + _outbox_section(p, health)
                + _events_section(p, runtime) + _alarms_section(p, runtime))
        return _page(p, "tech.devices_title", body, here="/tech")

    # ---------------------------------------------------------------- doors
    @router.get("/tech/doors", response_class=HTMLResponse)
    @guarded
    def doors(request: Request) -> Response:
        p = Prefs.of(request)
        return _page(p, "tech.doors_title", _doors_section(p, runtime), here="/tech/doors")

    @router.post("/tech/doors/{door}/unlock", response_class=HTMLResponse)
    @guarded
    def unlock(request: Request, door: int) -> Response:
        p = Prefs.of(request)
        assert runtime.hardware is not None
        if door not in runtime.config.doors:
            return _refused(p, "/tech/doors", "tech.no_such_door", status=404)
        if not tech.work.acquire(blocking=False):
            return _refused(p, "/tech/doors", "tech.diag_running")
        try:
            if tech.busy():
                return _refused(p, "/tech/doors", "tech.busy")
            check = test_unlock(runtime.hardware, door, watch_s=UNLOCK_WATCH_S)
        except ConfigError:
            return _refused(p, "/tech/doors", "tech.no_such_door", status=404)
        finally:
            tech.work.release()
        body = _unlock_result(p, check) + _doors_section(p, runtime)
        return _page(p, "tech.doors_title", body, here="/tech/doors")

    # ---------------------------------------------------------------- antennas
    @router.get("/tech/inventory", response_class=HTMLResponse)
    @guarded
    def inventory(request: Request, door: int | None = None, rounds: int = 1,
                  auto: str = "") -> Response:
        p = Prefs.of(request)
        assert runtime.hardware is not None
        rounds = max(1, min(MAX_ROUNDS, rounds))
        picker = _inventory_form(p, runtime, door, rounds, auto == "1")
        if door is None:
            return _page(p, "tech.inventory_title", picker, here="/tech/inventory")
        if door not in runtime.config.doors:
            return _refused(p, "/tech/inventory", "tech.no_such_door", status=404)
        if not tech.work.acquire(blocking=False):
            return _refused(p, "/tech/inventory", "tech.diag_running")
        try:
            if tech.busy():
                return _refused(p, "/tech/inventory", "tech.busy")
            try:
                report = inventory_report(runtime.hardware, door, repeat=rounds)
            except DriverError as exc:
                body = picker + (f'<p class="note error" role=alert id=inventory-error>'
                                 f'{p.t("tech.inventory_failed", door=door)} {_en(exc)}</p>')
                return _page(p, "tech.inventory_title", body, here="/tech/inventory",
                             status=503)
        finally:
            tech.work.release()
        return _page(p, "tech.inventory_title", picker + _inventory_result(p, report),
                     here="/tech/inventory")

    # ---------------------------------------------------------------- self-test
    def run(unlock: bool) -> None:
        job = tech.selftest
        assert runtime.hardware is not None
        try:
            def progress(what: str) -> None:
                job.step = what

            job.report = run_selftest(runtime.hardware, unlock=unlock, progress=progress)
        except Exception as exc:  # noqa: BLE001 - shown to the technician, never a crash
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.seconds = time.monotonic() - job.started
            job.running = False
            tech.work.release()

    @router.post("/tech/selftest")
    @guarded
    def start_selftest(request: Request, unlock: str = "") -> Response:
        p = Prefs.of(request)
        if not tech.work.acquire(blocking=False):
            if tech.selftest.running:
                return RedirectResponse("/tech/selftest", status_code=303)
            return _refused(p, "/tech/selftest", "tech.diag_running")
        if tech.busy():
            tech.work.release()
            return _refused(p, "/tech/selftest", "tech.busy")
        tech.selftest = _SelfTest(running=True, step=message("tech.starting", p.lang),
                                  unlock=unlock == "1", started=time.monotonic())
        threading.Thread(target=run, args=(unlock == "1",), name="tech-selftest",
                         daemon=True).start()
        return RedirectResponse("/tech/selftest", status_code=303)

    @router.get("/tech/selftest", response_class=HTMLResponse)
    @guarded
    def selftest(request: Request) -> Response:
        p = Prefs.of(request)
        return _page(p, "tech.selftest_title", _selftest_section(p, tech.selftest),
                     here="/tech/selftest")

    @router.get("/tech/selftest/status.json")
    @guarded
    def selftest_status(request: Request) -> Response:
        job = tech.selftest
        return JSONResponse({"running": job.running, "step": job.step,
                             "done": job.report is not None or bool(job.error)})

    # ---------------------------------------------------------------- bundle
    @router.get("/tech/bundle.zip")
    @guarded
    def bundle(request: Request) -> Response:
        data = build_bundle(runtime)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        name = f"lendbox-diag-{runtime.config.cabinet.id}-{stamp}.zip"
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})

    return router


def _safe_next(target: str) -> str:
    """Only our own technician pages: a login must not redirect anywhere else."""
    if target.startswith("/tech") and not target.startswith("//") and "\\" not in target:
        return target
    return "/tech"


# --------------------------------------------------------------------------- sections


def _devices_section(p: Prefs, report: DevicesReport, health: dict[str, Any]) -> str:
    rows: list[list[str]] = []
    seen = health.get("boards", {})
    for b in report.boards:
        info = b.info
        firmware = _e(info.firmware) if info and info.firmware not in ("", "unknown") else "—"
        serial = _e(info.serial) if info and info.serial not in ("", "unknown") else "—"
        c = b.counters
        counters = "—" if c is None else p.t(
            "tech.counters", uptime=c.uptime_s, ok=c.frames_ok, crc=c.crc_errors,
            retx=c.retransmissions, power=c.power_cycles,
            unlocks=" / ".join(str(u) for u in c.unlocks))
        link = b.link or {}
        if link:
            counters += "<br>" + p.t("tech.link", requests=link.get("requests", 0),
                                     retries=link.get("retries", 0),
                                     timeouts=link.get("timeouts", 0))
        kiosk_view = seen.get(str(b.address), {}).get("availability", "")
        rows.append([p.t("tech.board", address=b.address, bus=b.bus),
                     _availability(p, b.availability) + (f" {_en(b.reason)}" if b.reason else "")
                     + (f'<br><span class=muted>{p.t("tech.kiosk_sees")} '
                        f'{_availability(p, kiosk_view)}</span>' if kiosk_view else ""),
                     f'<span class=firmware>{firmware}</span><br>'
                     f'<span class=muted>{p.t("tech.serial")} {serial}</span>',
                     counters])
    for r in report.readers:
        described = ", ".join(f"{k} {v}" for k, v in (r.info or {}).items())
        link = r.link or {}
        rows.append([p.t("tech.reader", name=r.name, bus=r.bus),
                     _availability(p, r.availability) + (f" {_en(r.reason)}" if r.reason else ""),
                     _en(described) if described else "—",
                     p.t("tech.link", requests=link.get("requests", 0),
                         retries=link.get("retries", 0), timeouts=link.get("timeouts", 0))
                     if link else "—"])
    for per in report.peripherals:
        key = "tech.card_reader" if per.device == "card reader" else "tech.camera"
        what = ", ".join(f"{k} {v}" for k, v in per.details.items() if v not in ("", None))
        rows.append([p.t(key), _availability(p, per.availability)
                     + (f" {_en(per.reason)}" if per.reason else ""),
                     _en(what) if what else "—", "—"])
    head = [p.t("tech.col_device"), p.t("tech.col_availability"), p.t("tech.col_firmware"),
            p.t("tech.col_counters")]
    table = _table(p.t("tech.devices_caption"), head, rows, table_id="devices")
    return (f'<section aria-labelledby=h-devices><h2 id=h-devices>{p.t("tech.devices")}</h2>'
            f'{table}<h3>{p.t("tech.findings")}</h3>'
            f'{_findings(p, report.findings, list_id="device-findings")}</section>')


def _outbox_section(p: Prefs, health: dict[str, Any]) -> str:
    facts = [("tech.online", p.t("tech.yes") if health.get("online") else p.t("tech.no")),
             ("tech.pending", _e(health.get("pending_events", 0))),
             ("tech.last_seq", _e(health.get("last_seq", 0))),
             ("tech.acked", _e(health.get("acked_through", 0))),
             ("tech.exposure", f'{_e(health.get("offline_exposure", 0))} / '
                               f'{_e(health.get("offline_exposure_cap", 0))}')]
    if health.get("sync_error"):
        facts.append(("tech.sync_error", _en(health["sync_error"])))
    dl = "".join(f"<div><dt>{p.t(k)}</dt><dd>{v}</dd></div>" for k, v in facts)
    return (f'<section aria-labelledby=h-outbox><h2 id=h-outbox>{p.t("tech.outbox")}</h2>'
            f'<dl class=facts id=outbox>{dl}</dl></section>')


def _events_section(p: Prefs, runtime: KioskRuntime) -> str:
    recent = list(reversed(runtime.state()["recent"]))
    if not recent:
        items = f'<p id=events>{p.t("tech.no_events")}</p>'
    else:
        lis = "".join(f'<li><time>{_e(str(e.get("at", ""))[11:19])}</time> '
                      f'{_e(e.get("text", {}).get(p.lang) or e.get("key", ""))}</li>'
                      for e in recent)
        items = f"<ol class=events id=events>{lis}</ol>"
    return (f'<section aria-labelledby=h-events><h2 id=h-events>{p.t("tech.events")}</h2>'
            f'{items}</section>')


def _alarms_section(p: Prefs, runtime: KioskRuntime) -> str:
    ledger = runtime.ledger
    assert ledger is not None
    last = ledger.last_seq()
    alarms = [e for e in ledger.events_after(max(0, last - 500), limit=500) if e.kind == "alarm"]
    if not alarms:
        items = f'<p id=alarms>{p.t("tech.no_alarms")}</p>'
    else:
        lis = []
        for e in reversed(alarms[-20:]):
            reason = str(e.payload.get("reason", ""))
            code, _, detail = reason.partition(":")
            key = f"tech.alarm_{code}"
            text = p.t(key) if message(key, p.lang) != key else _en(code)
            door = e.payload.get("door")
            where = p.t("tech.door_n", door=door) if door is not None else ""
            lis.append(f'<li data-reason="{_e(code)}"><time>'
                       f'{_e(e.at.strftime("%Y-%m-%d %H:%M:%S"))}</time> {where} {text}'
                       + (f" ({_en(detail)})" if detail else "") + "</li>")
        items = f'<ol class=events id=alarms>{"".join(lis)}</ol>'
    return (f'<section aria-labelledby=h-alarms><h2 id=h-alarms>{p.t("tech.alarms")}</h2>'
            f'{items}</section>')


def _doors_section(p: Prefs, runtime: KioskRuntime) -> str:
    rows = []
    assert runtime.hardware is not None
    for n, info in sorted(runtime.config.doors.items()):
        spec = runtime.hardware.door(n)
        button = (f'<form method=post action="/tech/doors/{n}/unlock">'
                  f'<button class="btn btn-secondary" id=unlock-{n} type=submit '
                  f'aria-label="{p.t("tech.unlock_door", door=n)}">{p.t("tech.unlock")}'
                  f'</button></form>')
        rows.append([p.t("tech.door_n", door=n), _e(spec.board), _e(spec.lock), _e(spec.antenna),
                     p.t("tech.yes") if info.accessible else p.t("tech.no"), button])
    head = [p.t("tech.col_door"), p.t("tech.col_board"), p.t("tech.col_lock"),
            p.t("tech.col_antenna"), p.t("tech.col_accessible"), p.t("tech.col_action")]
    return (f'<section aria-labelledby=h-doors><h2 id=h-doors>{p.t("tech.doors")}</h2>'
            f'<p>{p.t("tech.unlock_hint")}</p>'
            f'{_table(p.t("tech.doors_caption"), head, rows, table_id="doors")}</section>')


def _unlock_result(p: Prefs, check: UnlockCheck) -> str:
    sensor = p.t("tech.sensor_opened") if check.door_opened else p.t("tech.sensor_closed")
    pulsed = p.t("tech.pulsed") if check.pulsed else p.t("tech.not_pulsed")
    verdict = "pass" if check.passed else "fail"
    return (f'<section class="result {verdict}" aria-labelledby=h-unlock role=status '
            f'id=unlock-result data-door="{check.door}" '
            f'data-opened="{"1" if check.door_opened else "0"}">'
            f'<h2 id=h-unlock>{p.t("tech.unlock_result", door=check.door)}</h2>'
            f'<dl class=facts><div><dt>{p.t("tech.lock")}</dt><dd>{pulsed} '
            f'({p.t("tech.board_lock", board=check.board, lock=check.lock)})</dd></div>'
            f'<div><dt>{p.t("tech.sensor")}</dt><dd id=sensor>{sensor}</dd></div>'
            f'<div><dt>{p.t("tech.time")}</dt><dd>{check.seconds:.1f} s</dd></div></dl>'
            f'{_findings(p, check.findings, list_id="unlock-findings")}'
            + (f'<p class=note>{p.t("tech.close_door", door=check.door)}</p>'
               if check.door_opened else "") + "</section>")


def _inventory_form(p: Prefs, runtime: KioskRuntime, door: int | None, rounds: int,
                    auto: bool) -> str:
    options = "".join(f'<option value={n}{" selected" if n == door else ""}>'
                      f'{p.t("tech.door_n", door=n)}</option>' for n in sorted(runtime.config.doors))
    checked = " checked" if auto else ""
    return (f'<form method=get action="/tech/inventory" class=inline-form id=inventory-form>'
            f'<label for=door>{p.t("tech.col_door")}</label>'
            f'<select id=door name=door>{options}</select>'
            f'<label for=rounds>{p.t("tech.rounds")}</label>'
            f'<input id=rounds name=rounds type=number min=1 max={MAX_ROUNDS} value={rounds}>'
            f'<label class=check><input type=checkbox name=auto value=1 id=auto{checked}> '
            f'{p.t("tech.auto_refresh")}</label>'
            f'<button class="btn btn-primary" id=read type=submit>{p.t("tech.read_antenna")}'
            f'</button></form>')


def _inventory_result(p: Prefs, report: InventoryReport) -> str:
    rows = [[f"<code>{_e(t.uid)}</code>", _e(t.item_id or "?"), _e(t.owner_library or ""),
             f'<span class=rssi>{t.rssi}</span> dBm', f"{t.seen}/{t.rounds} ({t.rate:.0%})",
             _en(t.error) if t.error else ""] for t in report.tags]
    head = [p.t("tech.col_uid"), p.t("tech.col_item"), p.t("tech.col_owner"),
            p.t("tech.col_rssi"), p.t("tech.col_seen"), p.t("tech.col_error")]
    caption = p.t("tech.inventory_caption", door=report.door, antenna=report.antenna,
                  count=len(report.tags), rounds=report.rounds)
    return (f'<section aria-labelledby=h-inv id=inventory-result data-door="{report.door}" '
            f'data-tags="{len(report.tags)}"><h2 id=h-inv>'
            f'{p.t("tech.inventory_of", door=report.door)}</h2>'
            f'{_table(caption, head, rows, table_id="tags")}'
            f'<h3>{p.t("tech.findings")}</h3>'
            f'{_findings(p, report.findings, list_id="inventory-findings")}</section>')


def _selftest_section(p: Prefs, job: _SelfTest) -> str:
    disabled = " disabled" if job.running else ""
    form = (f'<form method=post action="/tech/selftest" class=inline-form id=selftest-form>'
            f'<button class="btn btn-primary" id=run-selftest type=submit{disabled}>'
            f'{p.t("tech.run_selftest")}</button>'
            f'<button class="btn btn-secondary" id=run-selftest-unlock type=submit '
            f'formaction="/tech/selftest?unlock=1"{disabled}>{p.t("tech.selftest_unlock")}'
            f'</button></form>')
    if job.running:
        status = (f'<div class=running id=selftest-running data-running=1 role=status>'
                  f'<p>{p.t("tech.selftest_running")}</p>'
                  f'<p id=selftest-step>{_en(job.step)}</p>'
                  f'<p><a class="btn btn-secondary" href="/tech/selftest">{p.t("tech.refresh")}'
                  f'</a></p></div>')
        return form + status
    if job.error:
        return form + (f'<p class="note error" role=alert id=selftest-error>'
                       f'{p.t("tech.selftest_error")} {_en(job.error)}</p>')
    report = job.report
    if report is None:
        return form + f'<p id=selftest-none>{p.t("tech.selftest_intro")}</p>'
    verdict = "pass" if report.passed else "fail"
    head = p.t("tech.verdict_pass") if report.passed else p.t("tech.verdict_fail")
    parts = []
    for row in report.boards:
        ok = bool(row.get("answering"))
        parts.append([p.t("tech.board", address=row["board"], bus=row["bus"]),
                      _availability(p, "ok" if ok else "unavailable")])
    for row in report.readers:
        ok = bool(row.get("answering"))
        parts.append([p.t("tech.reader", name=row["reader"], bus=row["bus"]),
                      _availability(p, "ok" if ok else "unavailable")])
    for u in report.unlocks:
        parts.append([p.t("tech.door_n", door=u.door),
                      p.t("tech.sensor_opened") if u.door_opened else p.t("tech.sensor_closed")])
    table = _table(p.t("tech.parts_caption"), [p.t("tech.col_part"), p.t("tech.col_result")],
                   parts, table_id="selftest-parts")
    opened = [str(u.door) for u in report.unlocks if u.door_opened]
    if opened:
        table += f'<p class=note>{p.t("tech.close_doors", doors=", ".join(opened))}</p>'
    return form + (f'<section class="result {verdict}" aria-labelledby=h-verdict id=verdict '
                   f'data-passed="{"1" if report.passed else "0"}">'
                   f'<h2 id=h-verdict>{head}</h2>'
                   f'<p class=muted>{p.t("tech.took", seconds=f"{job.seconds:.1f}")}</p>'
                   f'{_findings(p, report.findings, list_id="selftest-findings")}{table}'
                   f'</section>')
