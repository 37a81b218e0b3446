"""The reader's borrowing journey on the touchscreen: identify, browse the doors, the live
session, the receipt, the one-tap rating and "need more time?".

Why every page reads the runtime's state and never keeps its own: the cabinet's card reader
and camera start sessions by themselves (``KioskRuntime._credential_arrived``), the machine
ends them (timeout, refusal), and the screen may be reloaded at any moment. So each GET
renders what the cabinet is doing now, and redirects when the reader belongs elsewhere (a
session began → ``/screen/session``; it ended → the receipt, the refusal or the start).
``live.js`` only refetches the page on each event of ``/api/events`` and follows those
redirects; without JavaScript a meta refresh does the same, more slowly.
"""

from __future__ import annotations

import html
import zlib
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .machine import WARN_BEFORE_S, MachineError
from .messages import CLC_CLASSES, message
from .runtime import CredentialRefused, KioskRuntime
from .screens import (
    PAGE_TIMEOUT_S,
    Prefs,
    _last_id,
    back_link,
    end_link,
    page_timeout_html,
    render_page,
)

__all__ = ["alarms_html", "notices_html", "rating_html", "reader_router", "receipt_text",
           "returned_html"]

#: how long a refusal stays on the identify page (then the next person sees a clean page)
REFUSAL_SHOW_S = 60.0
#: longest card number typed on the screen (library card numbers are ~10–20 digits)
CARD_MAX = 64
#: what the session page shows as "to do now" (stale once a door closes after them)
NOTICE_KEYS = ("borrow.put_back", "return.remove_foreign", "return.reposition",
               "session.close_doors_first", "door.unlock_failed", "door.inventory_failed",
               "refused.credential_expired")
#: pages a rating form may send the reader back to
RATE_BACK = ("/screen/receipt", "/screen/return")


def reader_router(runtime: KioskRuntime) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    cabinet = runtime.config.cabinet

    def page(p: Prefs, title: str, body: str, status: int = 200, **kw: Any) -> Response:
        return p.keep(HTMLResponse(render_page(p, title, body, **kw), status_code=status))

    # ------------------------------------------------------------ identify
    def identify_page(p: Prefs, refusal: str = "", status: int = 200) -> Response:
        title = p.t("screen.identify")
        alert = ""
        if refusal:
            key = "screen.refused_next" if cabinet.help_line else "screen.refused_next_nohelp"
            alert = (f'<section class="refusal" role=alert aria-labelledby=refused-h>'
                     f'<h2 id=refused-h>{p.t("screen.refused_title")}</h2>'
                     f'<p class=lead id=refusal data-reason="{html.escape(refusal)}">'
                     f'{p.t(refusal)}</p><p>{p.t(key, help_line=cabinet.help_line)}</p>'
                     f'</section>')
        body = f"""<h1>{title}</h1>
{alert}
<div class=identify role=status>
<p class=lead>{p.t("screen.identify_card")}</p>
<p class=lead>{p.t("screen.identify_qr")}</p>
<p class=waiting>{p.t("screen.identify_waiting")}</p>
</div>
<form method=post action="/screen/identify" class=card-form autocomplete=off>
<label for=card>{p.t("screen.type_card")}</label>
<div class=row><input id=card name=card type=text inputmode=numeric maxlength={CARD_MAX}
 autocomplete=off aria-describedby=card-hint>
<button class="btn btn-primary" type=submit id=card-go>{p.t("screen.type_card_go")}</button></div>
<p class=hint id=card-hint>{p.t("screen.card_number")}</p>
</form>
<p><a class="btn btn-secondary" id=browse href="/screen/doors">{p.t("screen.doors_browse")}</a></p>
{back_link(p)}"""
        return page(p, title, body, status, live="borrow", after=_last_id(runtime), refresh=10)

    @router.get("/screen/borrow", response_class=HTMLResponse)
    def borrow(request: Request) -> Response:
        p = Prefs.of(request)
        moved = _elsewhere(runtime, "borrow")
        if moved:
            return RedirectResponse(moved, status_code=303)
        tx = runtime.transaction(ended=True)
        refusal = ""
        if (tx is not None and tx["outcome"] == "refused" and tx["kind"] == "borrow"
                and runtime.mono() - tx["ended"] <= REFUSAL_SHOW_S):
            refusal = next((e["key"] for e in reversed(tx["events"])
                            if e["key"].startswith("refused.")), "refused.bad_credential")
        return identify_page(p, refusal)

    @router.post("/screen/identify")
    async def identify(request: Request) -> Response:
        p = Prefs.of(request)
        raw = (await request.body())[:4096].decode("utf-8", "replace")
        value = (parse_qs(raw).get("card") or [""])[0].strip()
        if not value or len(value) > CARD_MAX:
            return identify_page(p, "refused.bad_credential", 400)
        try:
            runtime.begin_session("barcode", value)
        except CredentialRefused as exc:
            return identify_page(p, "refused." + exc.reason, 403)
        except (MachineError, TimeoutError):
            return identify_page(p, "screen.busy", 409)
        return RedirectResponse("/screen/session", status_code=303)

    # ------------------------------------------------------------ browse and choose
    def doors_page(p: Prefs, cls: str, accessible: bool, error: str = "",
                   status: int = 200) -> Response:
        state = runtime.state()
        s = state["session"]
        can_choose = bool(s and s["phase"] == "active" and s["kind"] in ("borrow", "restock"))
        doors = runtime.doors()
        if accessible:
            doors.sort(key=lambda d: (not d["accessible"], d["door"]))
        present = sorted({(it["category"] or "")[:1].upper() for d in doors for it in d["items"]}
                         & set(CLC_CLASSES))
        cls = cls if cls in present else ""
        acc_q = "&accessible=1" if accessible else ""
        links = [f'<a class="btn btn-chip" href="/screen/doors?cls={acc_q}"'
                 f'{" aria-current=true" if not cls else ""}>{p.t("screen.class_all")}</a>']
        for letter in present:
            n = sum(1 for d in doors for it in d["items"]
                    if (it["category"] or "")[:1].upper() == letter)
            links.append(f'<a class="btn btn-chip" href="/screen/doors?cls={letter}{acc_q}"'
                         f'{" aria-current=true" if cls == letter else ""}>'
                         f'<span class=letter>{letter}</span> {p.t("clc." + letter)} ({n})</a>')
        order_link = (f'<a class="btn btn-secondary" id=accessible href="/screen/doors?cls={cls}'
                      f'{"" if accessible else "&accessible=1"}">'
                      f'{p.t("screen.doors_in_order" if accessible else "screen.accessible_first")}'
                      f"</a>")
        sections = []
        for d in doors:
            n = d["door"]
            items = [it for it in d["items"]
                     if not cls or (it["category"] or "")[:1].upper() == cls]
            spines = "".join(_spine(p, it) for it in items)
            empty = "" if items else (f'<p class=hint>'
                                      f'{p.t("screen.no_match" if d["items"] else "screen.door_empty")}'
                                      f"</p>")
            busy = str(n) in state["doors"]
            action = ""
            if can_choose and busy:
                action = f'<p class=hint>{p.t("screen.door_in_use", door=n)}</p>'
            elif can_choose:
                action = (f'<form method=post action="/screen/doors/{n}/open" class=open-form>'
                          f'<button class="btn btn-primary" type=submit id=open-{n}>'
                          f'{p.t("screen.open_door", door=n)}</button></form>')
            badge = (f'<span class=badge>{p.t("screen.door_accessible")}</span>'
                     if d["accessible"] else "")
            sections.append(
                f'<section class=door aria-labelledby=door-{n}-h data-door="{n}">'
                f'<h2 id=door-{n}-h>{p.t("screen.door_n", door=n)} {badge}'
                f'<span class=count>{p.t("screen.door_count", count=d["count"])}</span></h2>'
                f'{"<ul class=shelf>" + spines + "</ul>" if spines else ""}{empty}{action}'
                f"</section>")
        note = "" if can_choose else (
            f'<p class=note>{p.t("screen.sign_in_first")} <a href="/screen/borrow">'
            f'{p.t("screen.borrow")}</a></p>')
        err = f'<p class="note alert" role=alert>{html.escape(error)}</p>' if error else ""
        title = p.t("screen.doors") if can_choose else p.t("screen.doors_browse")
        filters = (f'<nav class=filters aria-label="{p.t("screen.class_filter")}">'
                   f'{"".join(links)}</nav>' if present else "")
        back = (f'<p><a class="btn btn-secondary" href="/screen/session">{p.t("screen.session")}'
                f"</a></p>" if can_choose else back_link(p))
        body = (f'<h1>{title}</h1>{err}{note}<div class=tools>{order_link}</div>{filters}'
                f'<div class=doors>{"".join(sections)}</div>{back}')
        return page(p, title, body, status)

    @router.get("/screen/doors", response_class=HTMLResponse)
    def browse(request: Request, cls: str = "", accessible: str = "") -> Response:
        return doors_page(Prefs.of(request), cls.strip().upper()[:1], accessible == "1")

    @router.post("/screen/doors/{door}/open")
    def choose(request: Request, door: int) -> Response:
        p = Prefs.of(request)
        try:
            runtime.choose_door(door)
        except MachineError as exc:
            text = str(exc)
            shown = (p.t("screen.door_in_use", door=door) if "already open" in text
                     else message("door.unlock_failed", p.lang, {"door": door})
                     if "out of service" in text else p.t("screen.sign_in_first"))
            return doors_page(p, "", False, html.unescape(shown), 409)
        except TimeoutError:
            return doors_page(p, "", False, message("screen.busy", p.lang), 503)
        return RedirectResponse("/screen/session", status_code=303)

    # ------------------------------------------------------------ the live session
    @router.get("/screen/session", response_class=HTMLResponse)
    def session(request: Request) -> Response:
        p = Prefs.of(request)
        state = runtime.state()
        s = state["session"]
        title = p.t("screen.session")
        if s is None:
            tx = runtime.transaction(ended=True)
            if tx is not None:
                if tx["outcome"] in ("timeout", "expired"):
                    target = "/screen/end?why=timeout"
                elif tx["kind"] == "borrow":
                    target = "/screen/borrow" if tx["outcome"] == "refused" else "/screen/receipt"
                else:
                    target = "/screen/return" if tx["kind"] == "return" else "/screen/end"
                return RedirectResponse(target, status_code=303)
            body = (f'<h1>{title}</h1><p class=lead role=status>{p.t("screen.session_none")}</p>'
                    f'<p><a class="btn btn-primary" href="/screen/borrow">{p.t("screen.borrow")}'
                    f"</a></p>{back_link(p)}")
            return page(p, title, body, live="session", after=_last_id(runtime), refresh=5)
        if s["kind"] == "return":
            return RedirectResponse("/screen/return", status_code=303)
        tx = runtime.transaction(ended=False) or {"events": [], "loans": []}
        parts = [f"<h1>{title}</h1>", alarms_html(p, state), more_time_html(p, s)]
        if s["phase"] == "resolving":
            parts.append(f'<p class=lead role=status>{p.t("session.identifying")}</p>')
        lines = []
        for n_str, run in state["doors"].items():
            n = int(n_str)
            if run["purpose"] == "hold" and run["phase"] in ("unlocking", "open"):
                lines.append(f'<p class="door-open hold" data-door="{n}">'
                             f'{p.t("screen.hold_door", door=n)}</p>')
            elif run["phase"] == "unlocking":
                lines.append(f'<p class=door-open data-door="{n}">'
                             f'{p.t("screen.door_state_unlocking", door=n)}</p>')
            elif run["phase"] == "open":
                lines.append(f'<p class=door-open data-door="{n}">{p.t("door.open", door=n)}</p>')
            elif run["phase"] == "counting":
                lines.append(f'<p class=door-open data-door="{n}">'
                             f'{p.t("screen.door_state_counting", door=n)}</p>')
        if lines:
            parts.append(f'<div class=doors-now role=status>{"".join(lines)}</div>')
        parts.append(notices_html(p, tx["events"]))
        if tx["loans"]:
            parts.append(_loans_html(p, tx["loans"]))
        actions = []
        if s["phase"] == "active" and not state["doors"]:
            actions.append(f'<a class="btn btn-borrow" id=choose href="/screen/doors">'
                           f'<span class=big>{p.t("screen.choose_door")}</span></a>')
        if s["phase"] == "active":
            actions.append(f'<form method=post action="/screen/finish" class=return-form>'
                           f'<button class="btn btn-secondary" type=submit id=finish>'
                           f'{p.t("screen.finish")}</button></form>')
        parts.append(f'<div class=actions>{"".join(actions)}</div>')
        if s["phase"] == "active" and s["kind"] == "borrow":
            parts.append(f'<nav class=options aria-label="{p.t("screen.services")}">'
                        f'<a class="btn btn-secondary" id=loans href="/screen/loans">'
                        f'{p.t("screen.my_loans")}</a>'
                        f'<a class="btn btn-secondary" id=holds href="/screen/holds">'
                        f'{p.t("screen.my_holds")}</a>'
                        f'<a class="btn btn-secondary" id=recommend href="/screen/recommend">'
                        f'{p.t("screen.recommend")}</a></nav>')
        return page(p, title, "\n".join(b for b in parts if b), live="session",
                    after=_last_id(runtime), refresh=3)

    @router.post("/screen/finish")
    def finish(request: Request) -> Response:
        try:
            runtime.finish()
        except (MachineError, TimeoutError):
            pass  # the session page says what the cabinet is doing now
        return RedirectResponse("/screen/session", status_code=303)

    @router.post("/screen/more-time")
    def more_time(request: Request) -> Response:
        try:
            runtime.more_time()
        except (MachineError, TimeoutError):
            pass  # the session ended meanwhile: the session page sends the reader on
        return RedirectResponse("/screen/session", status_code=303)

    # ------------------------------------------------------------ receipt and rating
    @router.get("/screen/receipt", response_class=HTMLResponse)
    def receipt(request: Request) -> Response:
        p = Prefs.of(request)
        title = p.t("screen.receipt")
        tx = runtime.transaction(ended=True)
        if tx is None or tx["kind"] != "borrow" or tx["outcome"] == "refused":
            body = (f'<h1>{title}</h1><p class=lead role=status>{p.t("screen.receipt_none")}'
                    f"</p>{end_link(p)}")
            return page(p, title, body, timeout=PAGE_TIMEOUT_S)
        parts = [f"<h1>{title}</h1>"]
        if tx["loans"]:
            text = receipt_text(tx, p.lang)
            parts.append(_loans_html(p, tx["loans"]))
            parts.append(f'<figure class=receipt-qr><div class=qr role=img '
                         f'aria-label="{p.t("screen.receipt_qr")}">{_qr_svg(text)}</div>'
                         f'<figcaption>{p.t("screen.receipt_hint")}</figcaption></figure>'
                         f'<pre class=receipt-text id=receipt-text>{html.escape(text)}</pre>')
        else:
            parts.append(f'<p class=lead role=status>{p.t("screen.receipt_nothing")}</p>')
        parts += [rating_html(p, tx), page_timeout_html(p), end_link(p)]
        return page(p, title, "\n".join(parts), live="done", timeout=PAGE_TIMEOUT_S)

    @router.post("/screen/rate")
    async def rate(request: Request) -> Response:
        p = Prefs.of(request)
        form = parse_qs((await request.body())[:1024].decode("utf-8", "replace"))
        back = (form.get("next") or [""])[0]
        back = back if back in RATE_BACK else "/screen/receipt"
        raw = (form.get("score") or [""])[0]
        try:
            runtime.rate(int(raw) if raw.isdigit() and len(raw) < 3 else 0)
        except ValueError:
            body = (f'<h1>{p.t("screen.rate_q")}</h1><p class=lead role=alert>'
                    f'{p.t("screen.rate_none")}</p>{end_link(p)}')
            return page(p, p.t("screen.rate_q"), body, 400)
        except LookupError:
            body = (f'<h1>{p.t("screen.rate_q")}</h1><p class=lead role=status>'
                    f'{p.t("screen.rate_none")}</p>{end_link(p)}')
            return page(p, p.t("screen.rate_q"), body, 409)
        return RedirectResponse(back, status_code=303)

    return router


# ---------------------------------------------------------------- pieces (shared with return)
def _elsewhere(runtime: KioskRuntime, here: str) -> str:
    """Where a running session's reader belongs, if not ``here``."""
    s = runtime.state()["session"]
    if s is None:
        return ""
    target = "/screen/return" if s["kind"] == "return" else "/screen/session"
    return "" if target.endswith(here) else target


def _title(p: Prefs, row: dict[str, Any]) -> str:
    return html.escape(row.get("title") or "") or p.t("screen.untitled")


def _loans_html(p: Prefs, loans: list[dict[str, Any]]) -> str:
    rows = "".join(f'<li data-item="{html.escape(r["item_id"])}"><span class=book-title>'
                   f'{_title(p, r)}</span> <span class=due>{p.t("screen.due", due=r["due"])}'
                   f"</span></li>" for r in loans)
    return (f'<section class=borrowed aria-labelledby=borrowed-h><h2 id=borrowed-h>'
            f'{p.t("screen.borrowed")}</h2><ul class=books>{rows}</ul></section>')


def returned_html(p: Prefs, tx: dict[str, Any]) -> str:
    """What a return recognised: titles, and where a book from elsewhere goes home."""
    if not tx["returns"]:
        return f'<p class=note>{p.t("screen.return_none")}</p>'
    rows = []
    for r in tx["returns"]:
        home = ""
        if r["goes_home"] == "?":
            home = f'<span class=home>{p.t("screen.goes_home_branch")}</span>'
        elif r["goes_home"]:
            home = f'<span class=home>{p.t("screen.goes_home", home=r["goes_home"])}</span>'
        rows.append(f'<li data-item="{html.escape(r["item_id"])}"><span class=book-title>'
                    f'{_title(p, r)}</span> {home}</li>')
    return (f'<section class=returned aria-labelledby=returned-h><h2 id=returned-h>'
            f'{p.t("screen.return_recognised")}</h2><ul class=books>{"".join(rows)}</ul>'
            f"</section>")


def notices_html(p: Prefs, events: list[dict[str, Any]]) -> str:
    """What the reader must do now (put a refused book back, take out a foreign object …):
    the notices since the last door closed, in plain words from the event's own text."""
    last_close = max((i for i, e in enumerate(events) if e["key"] == "door.closed"), default=-1)
    shown = []
    for e in events[last_close + 1:]:
        if e["key"] in NOTICE_KEYS:
            text = e.get("text", {}).get(p.lang) or message(e["key"], p.lang, e.get("params"))
            shown.append(f'<p class="note alert" data-key="{html.escape(e["key"])}">'
                         f"{html.escape(text)}</p>")
    return f'<div class=notices role=alert>{"".join(shown)}</div>' if shown else ""


def alarms_html(p: Prefs, state: dict[str, Any]) -> str:
    """Doors left open: a prompt that grows with each step of ``door_prompt_s``, then the
    alarm (staff notified). ``data-level`` drives the emphasis and live.js's sound."""
    out = []
    for n_str, run in state["doors"].items():
        level = int(run.get("prompts") or 0) + (1 if run.get("alarmed") else 0)
        if run["phase"] != "open" or level == 0:
            continue
        key = "alarm.door_left_open" if run.get("alarmed") else "door.close_prompt"
        out.append(f'<section class="alarm level-{min(level, 3)}" role=alert data-level="{level}"'
                   f' data-door="{n_str}"><h2>{p.t("screen.alarm_title")}</h2>'
                   f'<p>{p.t(key, door=n_str)}</p></section>')
    return "".join(out)


def more_time_html(p: Prefs, s: dict[str, Any]) -> str:
    left = s.get("idle_left_s")
    if s["phase"] != "active" or left is None or left > WARN_BEFORE_S:
        return ""
    seconds = int(left)
    return (f'<section class=more-time id=more-time-box role=alert aria-labelledby=more-time-h>'
            f'<h2 id=more-time-h>{p.t("screen.more_time_q")}</h2>'
            f'<p>{message("screen.more_time_left", p.lang, {"seconds": seconds})}</p>'
            f'<form method=post action="/screen/more-time"><button class="btn btn-primary" '
            f'type=submit id=more-time autofocus>{p.t("screen.more_time")}</button></form>'
            f"</section>")


def rating_html(p: Prefs, tx: dict[str, Any]) -> str:
    """One tap, 1..5 (满意度), once per transaction."""
    if tx["rated"]:
        return f'<p class=lead role=status id=rated>{p.t("screen.rate_thanks")}</p>'
    back = "/screen/return" if tx["kind"] == "return" else "/screen/receipt"
    buttons = "".join(f'<button class="btn btn-rate" type=submit name=score value="{n}" '
                      f'id=rate-{n}>{p.t(f"screen.rate_{n}")}</button>' for n in range(1, 6))
    return (f'<form method=post action="/screen/rate" class=rating>'
            f'<input type=hidden name=next value="{back}">'
            f'<fieldset><legend>{p.t("screen.rate_q")}</legend>'
            f'<div class=stars>{buttons}</div></fieldset></form>')


def receipt_text(tx: dict[str, Any], lang: str) -> str:
    """The receipt as plain text (what the QR code holds), in the reader's language."""
    lines = [message("receipt.head", lang, {"cabinet": tx["cabinet"],
                                            "date": str(tx["at"])[:10]})]
    for i, r in enumerate(tx["loans"], 1):
        lines.append(message("receipt.line", lang, {
            "n": i, "title": r.get("title") or r["item_id"], "item_id": r["item_id"],
            "due": r["due"]}))
    return "\n".join(lines)


def _qr_svg(text: str) -> str:
    # imported here: qrcode pulls in Pillow (~5 MB), needed only once a receipt is shown
    import qrcode  # type: ignore[import-untyped]
    import qrcode.image.svg  # type: ignore[import-untyped]

    img = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10,
                      border=4)
    svg: str = img.to_string(encoding="unicode")
    return svg[svg.find("<svg"):] if "<svg" in svg else svg


def _spine(p: Prefs, item: dict[str, Any]) -> str:
    """A book spine drawn in CSS: its height varies a little by book (as on a shelf)."""
    ident = item["item_id"] or ""
    height = 10 + zlib.crc32(ident.encode()) % 5  # rem, stable per book
    letter = (item["category"] or "")[:1].upper()
    cls = f" cls-{letter}" if letter in CLC_CLASSES else ""
    author = (f'<span class=spine-author>{html.escape(item["author"])}</span>'
              if item["author"] else "")
    label = _title(p, item) if item["title"] else html.escape(ident)
    hold = " on-hold" if item.get("on_hold") else ""
    return (f'<li class="spine{cls}{hold}" style="--h:{height}rem" data-item="{html.escape(ident)}">'
            f'<span class=spine-title>{label}</span>{author}</li>')
