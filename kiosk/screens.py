"""The reader touchscreen: server-rendered pages the cabinet's Chromium shows full-screen.

Why server-rendered and plain: the cabinet serves everything itself (no CDN, no web font, no
build toolchain), the pages work with JavaScript off, and every control is a link or a form
button, so a keyboard or an assistive switch reaches all of them. Every sentence comes from
``kiosk.messages`` (Simplified Chinese by default, English one tap away); the display
preferences (``lang``, ``contrast=high``, ``text=large``) come from the query string and are
kept in cookies so the next page keeps them.

Pages here: the idle/attract page (``/`` and ``/screen``), returning without login
(``POST /screen/return`` → ``/screen/return``: the door the machine opened, then what it
recognised) and ``/screen/end`` (a reader is done: their display choices are forgotten). The
borrowing journey is in ``kiosk.screens_reader``.

Live pages carry ``data-live`` on ``<main>``: ``/static/live.js`` follows the event stream
and, on each event, fetches the page again and swaps ``<main>`` (one renderer, so the page
without JavaScript — a meta refresh — shows exactly the same thing).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from .machine import MachineError
from .messages import message
from .runtime import KioskRuntime

#: the reader's own choices, forgotten when their session ends
PREF_COOKIES = ("lang", "contrast", "text", "speech")
#: a finished page (receipt, return done) goes back to the start after this long; the "need
#: more time?" prompt shows in its last PAGE_WARN_S seconds
PAGE_TIMEOUT_S = 90
PAGE_WARN_S = 25

__all__ = ["PAGE_TIMEOUT_S", "STATIC_DIR", "Prefs", "back_link", "end_link", "mount_screens",
           "page_timeout_html", "render_page"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: what ``[cabinet] hours`` holds when the cabinet never closes
ALWAYS_OPEN = {"", "24h", "24", "24/7"}


@dataclass(frozen=True, slots=True)
class Prefs:
    """The reader's display preferences for one request."""

    lang: str = "zh"
    contrast: str = "normal"
    text: str = "normal"
    speech: str = "off"

    @classmethod
    def of(cls, request: Request) -> Prefs:
        def pick(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = request.query_params.get(name) or request.cookies.get(name) or default
            return value if value in allowed else default

        return cls(lang=pick("lang", ("zh", "en"), "zh"),
                   contrast=pick("contrast", ("normal", "high"), "normal"),
                   text=pick("text", ("normal", "large"), "normal"),
                   speech=pick("speech", ("on", "off"), "off"))

    def keep(self, response: Response) -> Response:
        """Session cookies: the kiosk's browser keeps them until it restarts (or the reader's
        session ends: ``/screen/end``)."""
        for name in PREF_COOKIES:
            response.set_cookie(name, getattr(self, name), samesite="strict")
        return response

    def t(self, key: str, **params: Any) -> str:
        return html.escape(message(key, self.lang, params))


def mount_screens(app: FastAPI, runtime: KioskRuntime) -> None:
    """Add the touchscreen's pages and its static files (``/static``) to the kiosk's app."""
    from .screens_reader import reader_router
    from .screens_services import services_router
    from .screens_tech import tech_router

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(_router(runtime))
    app.include_router(reader_router(runtime))
    app.include_router(services_router(runtime))
    app.include_router(tech_router(runtime))


def _router(runtime: KioskRuntime) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    cabinet = runtime.config.cabinet

    @router.get("/", response_class=HTMLResponse)
    @router.get("/screen", response_class=HTMLResponse)
    def idle(request: Request, notice: str = "") -> Response:
        p = Prefs.of(request)
        busy = runtime.state()["session"] is not None
        return p.keep(HTMLResponse(_idlerender_page(p, cabinet, busy=busy,
                                                    timed_out=notice == "timeout",
                                                    after=_last_id(runtime))))

    @router.get("/screen/end")
    def end(why: str = "", then: str = "") -> Response:
        """The reader is done: forget their language, contrast, text size and speech, so
        the next person starts in the defaults (``then=session``: someone new has just
        tapped their card)."""
        target = "/?notice=timeout" if why == "timeout" else "/"
        if then == "session":
            target = "/screen/session"
        response = RedirectResponse(target, status_code=303)
        for name in PREF_COOKIES:
            response.delete_cookie(name, samesite="strict")
        return response

    @router.post("/screen/return")
    def start_return(request: Request, accessible: str = "") -> Response:
        p = Prefs.of(request)
        try:
            runtime.begin_return(accessible == "1")
        except MachineError as exc:
            body = (f'<h1>{p.t("screen.return")}</h1><p class=lead role=alert>'
                    f'{_refusal(p, str(exc))}</p>{back_link(p)}')
            return p.keep(HTMLResponse(render_page(p, p.t("screen.return"), body), status_code=409))
        return RedirectResponse("/screen/return", status_code=303)

    @router.get("/screen/return", response_class=HTMLResponse)
    def returning(request: Request) -> Response:
        from .screens_reader import alarms_html, notices_html, rating_html, returned_html

        p = Prefs.of(request)
        state = runtime.state()
        session = state["session"]
        running = runtime.transaction(ended=False)
        if session is not None and session["kind"] != "return":
            return RedirectResponse("/screen/session", status_code=303)
        doors = sorted(int(n) for n, run in state["doors"].items()
                       if run["purpose"] in ("return", "reopen"))
        title = p.t("screen.return")
        if session is not None or doors:
            lines = "".join(f'<p class=door-open data-door="{n}">{p.t("screen.return_open", door=n)}'
                            f"</p>" for n in doors if state["doors"][str(n)]["phase"] != "counting")
            counting = "".join(f'<p class=lead>{p.t("screen.door_state_counting", door=n)}</p>'
                               for n in doors if state["doors"][str(n)]["phase"] == "counting")
            events = running["events"] if running is not None else []
            body = (f'<h1>{title}</h1>{alarms_html(p, state)}<div role=status>{lines}</div>'
                    f'{counting}{notices_html(p, events)}'
                    f'<p class=note>{p.t("screen.return_counting")}</p>{back_link(p)}')
            return p.keep(HTMLResponse(render_page(p, title, body, live="return",
                                                   after=_last_id(runtime), refresh=3)))
        last = runtime.transaction(ended=True)
        done = last if last is not None and last["kind"] == "return" else None
        found = returned_html(p, done) if done is not None else ""
        notices = notices_html(p, done["events"]) if done is not None else ""
        rating = rating_html(p, done) if done is not None else ""
        body = (f'<h1>{title}</h1><p class=lead role=status>{p.t("return.done")}</p>'
                f'{found}{notices}{rating}{page_timeout_html(p)}{end_link(p)}')
        return p.keep(HTMLResponse(render_page(p, title, body, live="done",
                                               timeout=PAGE_TIMEOUT_S)))

    return router


def _refusal(p: Prefs, text: str) -> str:
    if "full" in text:
        return p.t("return.full")
    return p.t("screen.busy")


def back_link(p: Prefs) -> str:
    return f'<p><a class="btn btn-secondary" href="/">{p.t("screen.back")}</a></p>'


def end_link(p: Prefs) -> str:
    """"Finish": back to the start, forgetting this reader's display choices."""
    return (f'<p><a class="btn btn-secondary" id=end href="/screen/end">{p.t("screen.back")}'
            f"</a></p>")


def page_timeout_html(p: Prefs) -> str:
    """The "need more time?" prompt of a page that goes back to the start by itself
    (live.js shows it in the last ``PAGE_WARN_S`` seconds; its button starts again)."""
    return (f'<section class="more-time" id=page-more-time role=alert hidden '
            f'data-warn="{PAGE_WARN_S}"><h2>{p.t("screen.more_time_q")}</h2>'
            f'<p>{message("screen.page_left", p.lang, {"seconds": PAGE_WARN_S})}</p>'
            f'<button class="btn btn-primary" type=button id=page-more-time-btn>'
            f'{p.t("screen.more_time")}</button></section>')


def _last_id(runtime: KioskRuntime) -> int:
    recent = list(runtime.iter_recent())
    return int(recent[-1]["id"]) if recent else 0


def _idlerender_page(p: Prefs, cabinet: Any, *, busy: bool, timed_out: bool = False,
                     after: int = 0) -> str:
    hours = (p.t("screen.hours_24h") if cabinet.hours.strip().lower() in ALWAYS_OPEN
             else html.escape(cabinet.hours))
    place_lang = "en" if cabinet.language == "en" else "zh-CN"  # config text: the cabinet's
    place = f'<span lang="{place_lang}">{html.escape(cabinet.location or cabinet.branch)}</span>'
    facts = [("screen.location", place),
             ("screen.hours", hours)]
    if cabinet.help_line:
        facts.append(("screen.help_line", html.escape(cabinet.help_line)))  # no tel: link on a kiosk
    dl = "".join(f"<div><dt>{p.t(k)}</dt><dd>{v}</dd></div>" for k, v in facts)
    notice = f'<p class=note role=status>{p.t("screen.busy")}</p>' if busy else ""
    if timed_out and not busy:
        notice = f'<p class=note role=status>{p.t("session.timeout")}</p>'
    speech_to = "off" if p.speech == "on" else "on"
    speech_label = "screen.speech_off" if p.speech == "on" else "screen.speech_on"
    other = "en" if p.lang == "zh" else "zh"
    other_html_lang = "en" if other == "en" else "zh-CN"
    text_to = "normal" if p.text == "large" else "large"
    contrast_to = "normal" if p.contrast == "high" else "high"
    text_label = "screen.text_normal" if p.text == "large" else "screen.text_large"
    contrast_label = ("screen.contrast_normal" if p.contrast == "high"
                      else "screen.contrast_high")
    body = f"""<h1>{p.t("screen.welcome")}</h1>
<dl class=facts>{dl}</dl>
{notice}
<div class=actions>
<a class="btn btn-borrow" id=borrow href="/screen/borrow"><span class=big>{p.t("screen.borrow")}</span>
<span class=hint>{p.t("screen.borrow_hint")}</span></a>
<form method=post action="/screen/return" class=return-form>
<button class="btn btn-return" id=return type=submit><span class=big>{p.t("screen.return")}</span>
<span class=hint>{p.t("screen.return_hint")}</span></button></form>
<form method=post action="/screen/return?accessible=1" class=return-form>
<button class="btn btn-secondary" id=return-accessible type=submit>{p.t("screen.return_accessible")}
</button></form>
</div>
<nav class=options aria-label="{p.t("screen.options")}">
<a class="btn btn-secondary" id=lang href="/?lang={other}" lang="{other_html_lang}"
 hreflang="{other_html_lang}" aria-label="{p.t("screen.language_label")}: {p.t("screen.other_language")}"
>{p.t("screen.other_language")}</a>
<a class="btn btn-secondary" id=text href="/?text={text_to}">{p.t(text_label)}</a>
<a class="btn btn-secondary" id=contrast href="/?contrast={contrast_to}">{p.t(contrast_label)}</a>
<a class="btn btn-secondary" id=speech href="/?speech={speech_to}">{p.t(speech_label)}</a>
<a class="btn btn-secondary" id=browse href="/screen/doors">{p.t("screen.doors_browse")}</a>
</nav>"""
    return render_page(p, p.t("screen.title"), body, live="idle", after=after)


def render_page(p: Prefs, title: str, body: str, *, live: str = "", after: int = 0,
                refresh: int = 0, timeout: int = 0) -> str:
    """One touchscreen page. ``live``: follow the event stream (live.js) from event
    ``after``; ``refresh``: without JavaScript, reload every so many seconds; ``timeout``:
    go back to the start (forgetting the reader's choices) after so many seconds, with a
    "need more time?" prompt first."""
    html_lang = "en" if p.lang == "en" else "zh-CN"
    classes = f"contrast-{p.contrast} text-{p.text}"
    head = ""
    attrs = ""
    if refresh:
        head += f"<noscript><meta http-equiv=refresh content={refresh}></noscript>\n"
    if timeout:
        head += (f'<noscript><meta http-equiv=refresh content="{timeout + PAGE_WARN_S};'
                 f'url=/screen/end"></noscript>\n')
        attrs += f' data-timeout="{timeout}"'
    if live or timeout:
        head += "<script src=\"/static/live.js\" defer></script>\n"
        attrs += f' data-live="{html.escape(live)}" data-after="{after}" data-lang="{p.lang}"'
        attrs += f' data-speech="{p.speech}"'
    return f"""<!doctype html>
<html lang="{html_lang}" class="{classes}">
<head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel=stylesheet href="/static/screen.css">
{head}</head>
<body>
<main id=main{attrs}>
{body}
</main>
</body>
</html>
"""
