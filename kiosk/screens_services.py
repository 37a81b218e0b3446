"""The reader's services on the touchscreen: my loans and renew, holds pickup, 荐购, spoken prompts.

Pages (server-rendered, plain links and forms, every sentence from ``kiosk.messages``):

- ``GET /screen/loans``: the identified reader's loans from the server; offline, what this
  cabinet's ledger knows, saying plainly that the network is down.
- ``POST /screen/loans/{item_id}/renew``: the new due date, or the refusal in plain words
  with what to do next (409).
- ``GET /screen/holds``: the reader's holds waiting in this cabinet and which door holds
  which book (the machine opened those doors when the reader identified).
- ``GET /screen/recommend``, ``POST /screen/recommend`` (typed ISBN and/or title),
  ``POST /screen/recommend/scan`` (the camera reads the barcode): 荐购 to the server.
- ``GET /screen/speech.wav?key=K&lang=zh|en&<params>``: the sentence spoken (``kiosk.speech``).

The pages are for the reader of the cabinet's live session only (``current_reader``);
without one they redirect to ``/screen/borrow``. Forms are parsed here from the urlencoded
body (no multipart dependency), bounded in size.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    Response,
)
from starlette.concurrency import run_in_threadpool

from .messages import CATALOGUE, message
from .reader_services import (
    SCAN_S,
    IsbnError,
    Outcome,
    ReaderServices,
    current_reader,
    parse_isbn,
)
from .runtime import KioskRuntime
from .screens import Prefs, render_page
from .screens_reader import more_time_html
from .speech import Speech, SpeechUnavailable

__all__ = ["services_router"]

_MAX_FORM_BYTES = 4096
_MAX_PARAMS = 8
_MAX_PARAM_CHARS = 200
ItemPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
#: the server's refusal codes that have a sentence of their own
_RENEW_REASONS = ("held_for_another", "overdue", "renewal_limit", "not_your_loan", "offline",
                  "busy")


def services_router(runtime: KioskRuntime) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    services = ReaderServices(runtime)
    speech = Speech(runtime.config.data_dir / "speech")

    def identified(request: Request) -> tuple[Prefs, str]:
        """The display preferences and the reader of the live session; without one the
        reader is sent to identify first (303 to ``/screen/borrow``)."""
        reader = current_reader(runtime)
        if reader is None:
            raise HTTPException(303, "identify first", headers={"Location": "/screen/borrow"})
        return Prefs.of(request), reader

    who_is = Depends(identified)  # a default, not an annotation: annotations are strings here

    def page(p: Prefs, title_key: str, body: str, here: str, status: int = 200, *,
             live: bool = False) -> Response:
        """The frame of every page; ``live`` (GET pages only: live.js fetches the page again
        on each cabinet event): a door closing updates the holds, the session's end sends
        the reader on, the session's "need more time?" prompt appears (H1's)."""
        more, after = "", 0
        if live:
            session = runtime.state()["session"]
            more = more_time_html(p, session) if session is not None else ""
            recent = list(runtime.iter_recent())
            after = int(recent[-1]["id"]) if recent else 0
        full = (f'<link rel=stylesheet href="/static/services.css">'
                f'<h1>{p.t(title_key)}</h1>{more}{body}{_nav(p, here)}')
        text = render_page(p, p.t(title_key), full, live="services" if live else "", after=after)
        return p.keep(HTMLResponse(text, status_code=status))

    @router.get("/screen/loans", response_class=HTMLResponse)
    async def loans(who: tuple[Prefs, str] = who_is) -> Response:
        p, reader = who
        view = await run_in_threadpool(services.loans, reader)
        parts = []
        if not view.online:
            parts.append(f'<p class=note role=alert id=offline>{p.t("services.loans_offline")}</p>')
        if not view.loans:
            parts.append(f'<p class=lead id=no-loans>{p.t("services.loans_none")}</p>')
        else:
            if view.online:
                count = p.t("services.loans_count", count=len(view.loans), max=view.max_renewals)
                parts.append(f"<p class=lead>{count}</p>")
            rows = []
            for loan in view.loans:
                title = loan.title or loan.item_id
                facts = [p.t("services.due", due=loan.due) if loan.due
                         else p.t("services.due_unknown")]
                if loan.overdue:
                    facts.append(f'<strong>{p.t("services.overdue")}</strong>')
                if loan.wanted_by_others:
                    facts.append(p.t("services.wanted"))
                if loan.renewals:
                    facts.append(p.t("services.renewals", count=loan.renewals))
                button = ""
                if view.online:
                    button = (f'<form method=post action="/screen/loans/{quote(loan.item_id)}/renew">'
                              f'<button class="btn btn-secondary" type=submit '
                              f'aria-label="{p.t("services.renew_label", title=title)}">'
                              f'{p.t("services.renew")}</button></form>')
                lines = "".join(f"<p>{f}</p>" for f in facts)
                rows.append(f'<li class=loan data-item="{html.escape(loan.item_id)}">'
                            f'<div><p class=book>{html.escape(title)}</p>{lines}</div>{button}</li>')
            parts.append(f'<ul class=loans>{"".join(rows)}</ul>')
        return page(p, "services.loans", "".join(parts), "loans", live=True)

    @router.post("/screen/loans/{item_id}/renew", response_class=HTMLResponse)
    async def renew(item_id: ItemPath, who: tuple[Prefs, str] = who_is) -> Response:
        p, reader = who
        got = await run_in_threadpool(services.renew, reader, item_id)
        info = runtime.ledger.item(item_id) if runtime.ledger is not None else None
        title = (info.title if info and info.title else item_id)
        again = (f'<p><a class="btn btn-secondary" id=loans-again href="/screen/loans">'
                 f'{p.t("services.loans")}</a></p>')
        if got.ok and got.data is not None:
            body = (f'<p class=lead role=status id=result>'
                    f'{p.t("services.renewed", title=title, due=got.data["due"])}</p>{again}')
            return page(p, "services.loans", body, "loans")
        reason = got.code if got.code in _RENEW_REASONS else "other"
        body = (f'<p class=lead role=alert id=result>{p.t("services.renew_refused", title=title)}'
                f'</p><p class=note id=reason data-code="{html.escape(got.code)}">'
                f'{p.t("services.refused_" + reason)}</p>{again}')
        return page(p, "services.loans", body, "loans", 409)

    @router.get("/screen/holds", response_class=HTMLResponse)
    async def holds(who: tuple[Prefs, str] = who_is) -> Response:
        p, reader = who
        waiting = await run_in_threadpool(services.holds, reader)
        if not waiting:
            return page(p, "services.holds",
                        f'<p class=lead id=no-holds>{p.t("services.holds_none")}</p>', "holds",
                        live=True)
        rows = []
        for w in waiting:
            title = w.title or w.item_id
            if w.taken:
                text = p.t("services.hold_taken", title=title)
            elif w.door is None:
                text = p.t("services.hold_coming", title=title)
            elif w.open:
                text = f'<strong>{p.t("services.hold_open", door=w.door, title=title)}</strong>'
            else:
                text = (p.t("services.hold_in_door", door=w.door, title=title,
                            until=_local(w.expires_at))
                        + f' {p.t("services.hold_reopen", door=w.door)}')
            door = f' data-door="{w.door}"' if w.door is not None else ""
            rows.append(f'<li class=hold data-item="{html.escape(w.item_id)}"{door}>'
                        f'<p>{text}</p></li>')
        body = f'<div role=status><ul class=holds>{"".join(rows)}</ul></div>'
        return page(p, "services.holds", body, "holds", live=True)

    @router.get("/screen/recommend", response_class=HTMLResponse)
    def recommend_form(who: tuple[Prefs, str] = who_is) -> Response:
        p, _ = who
        return page(p, "services.recommend", _recommend_form(p), "recommend", live=True)

    @router.post("/screen/recommend", response_class=HTMLResponse)
    async def recommend(request: Request, who: tuple[Prefs, str] = who_is) -> Response:
        p, reader = who
        form = await _form(request)
        typed, title = form.get("isbn", "").strip(), form.get("title", "").strip()[:300]
        isbn: str | None = None
        if typed:
            try:
                isbn = parse_isbn(typed)
            except IsbnError as exc:
                count = sum(ch.isdigit() or ch in "xX" for ch in typed)
                problem = (f'<p class=note role=alert id=problem data-code="{exc.reason}">'
                           f'{p.t("services.isbn_" + exc.reason, count=count)}</p>')
                return page(p, "services.recommend",
                            problem + _recommend_form(p, typed, title), "recommend", 422)
        elif not title:
            problem = f'<p class=note role=alert id=problem>{p.t("services.recommend_need")}</p>'
            return page(p, "services.recommend", problem + _recommend_form(p), "recommend", 422)
        got = await run_in_threadpool(services.recommend, reader, isbn, title)
        return _recommended(p, got, isbn, title, "", page)

    @router.post("/screen/recommend/scan", response_class=HTMLResponse)
    async def scan(who: tuple[Prefs, str] = who_is) -> Response:
        p, reader = who
        isbn = await run_in_threadpool(services.scan_isbn)
        if isbn is None:
            problem = f'<p class=note role=alert id=problem>{p.t("services.scan_none")}</p>'
            return page(p, "services.recommend", problem + _recommend_form(p), "recommend", 422)
        got = await run_in_threadpool(services.recommend, reader, isbn, "")
        scanned = f'<p id=scanned>{p.t("services.scanned", isbn=isbn)}</p>'
        return _recommended(p, got, isbn, "", scanned, page)

    @router.get("/screen/speech.wav")
    async def speak(request: Request) -> Response:
        query = request.query_params
        key, lang = query.get("key", ""), query.get("lang", "zh")
        params = {k: v for k, v in query.items() if k not in ("key", "lang")}
        said = "en" if lang == "en" else "zh"  # the language the refusal itself is in
        problem = ""
        if key not in CATALOGUE or lang not in ("zh", "en"):
            problem = "services.speech_unknown"
        elif len(params) > _MAX_PARAMS or any(len(v) > _MAX_PARAM_CHARS
                                              for v in params.values()):
            problem = "services.speech_params"
        elif not message(key, lang, params).strip():
            problem = "services.speech_empty"
        if problem:
            return PlainTextResponse(message(problem, said), status_code=400)
        try:
            wav = await run_in_threadpool(speech.wav, message(key, lang, params), lang)
        except SpeechUnavailable:
            return PlainTextResponse(message("services.speech_none", said), status_code=404)
        return FileResponse(wav, media_type="audio/wav",
                            headers={"Cache-Control": "max-age=86400"})

    return router


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    return {k: v[0] for k, v in parsed.items() if v}


def _recommended(p: Prefs, got: Outcome, isbn: str | None, title: str, before: str,
                 page: Callable[..., Response]) -> Response:
    if got.ok:
        text = (p.t("services.recommended", isbn=isbn) if isbn
                else p.t("services.recommended_title", title=title))
        body = f'{before}<p class=lead role=status id=result>{text}</p>'
        return page(p, "services.recommend", body + _again(p), "recommend")
    if got.code == "offline":
        text = p.t("services.recommend_offline")
    elif got.code == "invalid_isbn":
        text = p.t("services.isbn_check_digit")
    elif got.code == "busy":
        text = p.t("services.refused_busy")
    else:
        text = p.t("services.refused_other")
    body = (f'{before}<p class=note role=alert id=result data-code="{html.escape(got.code)}">'
            f'{text}</p>{_recommend_form(p, isbn or "", title)}')
    status = 503 if got.code == "offline" else 409
    return page(p, "services.recommend", body, "recommend", status)


def _again(p: Prefs) -> str:
    return (f'<p><a class="btn btn-secondary" id=recommend-again href="/screen/recommend">'
            f'{p.t("services.recommend")}</a></p>')


def _recommend_form(p: Prefs, isbn: str = "", title: str = "") -> str:
    return f"""<p class=lead>{p.t("services.recommend_hint")}</p>
<form method=post action="/screen/recommend" class=recommend-form>
<label for=isbn>{p.t("services.isbn")}</label>
<input id=isbn name=isbn inputmode=text autocomplete=off maxlength=32 value="{html.escape(isbn)}">
<label for=title>{p.t("services.title_optional")}</label>
<input id=title name=title autocomplete=off maxlength=300 value="{html.escape(title)}">
<button class="btn btn-send" id=send type=submit>{p.t("services.send")}</button>
</form>
<form method=post action="/screen/recommend/scan" class=scan-form>
<button class="btn btn-secondary" id=scan type=submit aria-describedby=scan-hint>
{p.t("services.scan")}</button>
<p id=scan-hint>{p.t("services.scan_hint", seconds=int(SCAN_S))}</p>
</form>"""


def _nav(p: Prefs, here: str) -> str:
    links = [("session", "/screen/session", "services.back_session"),
             ("loans", "/screen/loans", "services.loans"),
             ("holds", "/screen/holds", "services.holds"),
             ("recommend", "/screen/recommend", "services.recommend")]
    other = "en" if p.lang == "zh" else "zh"
    other_lang = "en" if other == "en" else "zh-CN"
    items = "".join(
        f'<a class="btn btn-secondary" id=nav-{name} href="{href}"'
        f'{" aria-current=page" if name == here else ""}>{p.t(key)}</a>'
        for name, href, key in links)
    items += (f'<a class="btn btn-secondary" id=lang href="/screen/{here}?lang={other}" '
              f'lang="{other_lang}" hreflang="{other_lang}">{p.t("screen.other_language")}</a>')
    return f'<nav class=services-nav aria-label="{p.t("services.nav")}">{items}</nav>'


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M")
