"""The reader touchscreen: server-rendered pages the cabinet's Chromium shows full-screen.

Why server-rendered and plain: the cabinet serves everything itself (no CDN, no web font, no
build toolchain), the pages work with JavaScript off, and every control is a link or a form
button, so a keyboard or an assistive switch reaches all of them. Every sentence comes from
``kiosk.messages`` (Simplified Chinese by default, English one tap away); the display
preferences (``lang``, ``contrast=high``, ``text=large``) come from the query string and are
kept in cookies so the next page keeps them.

Pages so far: the idle/attract page (``/`` and ``/screen``), returning without login
(``POST /screen/return`` → ``/screen/return``, which shows the door the machine opened from
``runtime.state()``) and a placeholder for borrowing. The rest of the journeys are issue 8.
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

__all__ = ["STATIC_DIR", "Prefs", "back_link", "mount_screens", "render_page"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: what ``[cabinet] hours`` holds when the cabinet never closes
ALWAYS_OPEN = {"", "24h", "24", "24/7"}


@dataclass(frozen=True, slots=True)
class Prefs:
    """The reader's display preferences for one request."""

    lang: str = "zh"
    contrast: str = "normal"
    text: str = "normal"

    @classmethod
    def of(cls, request: Request) -> Prefs:
        def pick(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = request.query_params.get(name) or request.cookies.get(name) or default
            return value if value in allowed else default

        return cls(lang=pick("lang", ("zh", "en"), "zh"),
                   contrast=pick("contrast", ("normal", "high"), "normal"),
                   text=pick("text", ("normal", "large"), "normal"))

    def keep(self, response: Response) -> Response:
        """Session cookies: the kiosk's browser keeps them until it restarts."""
        for name in ("lang", "contrast", "text"):
            response.set_cookie(name, getattr(self, name), samesite="strict")
        return response

    def t(self, key: str, **params: Any) -> str:
        return html.escape(message(key, self.lang, params))


def mount_screens(app: FastAPI, runtime: KioskRuntime) -> None:
    """Add the touchscreen's pages and its static files (``/static``) to the kiosk's app."""
    from .screens_services import services_router
    from .screens_tech import tech_router

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(_router(runtime))
    app.include_router(services_router(runtime))
    app.include_router(tech_router(runtime))


def _router(runtime: KioskRuntime) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    cabinet = runtime.config.cabinet

    @router.get("/", response_class=HTMLResponse)
    @router.get("/screen", response_class=HTMLResponse)
    def idle(request: Request) -> Response:
        p = Prefs.of(request)
        busy = runtime.state()["session"] is not None
        return p.keep(HTMLResponse(_idlerender_page(p, cabinet, busy=busy)))

    @router.get("/screen/borrow", response_class=HTMLResponse)
    def borrow(request: Request) -> Response:
        p = Prefs.of(request)
        body = (f'<h1>{p.t("screen.borrow")}</h1><p class=lead>{p.t("screen.borrow_hint")}</p>'
                f'<p class=note>{p.t("screen.coming")}</p>{back_link(p)}')
        return p.keep(HTMLResponse(render_page(p, p.t("screen.borrow"), body)))

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
        p = Prefs.of(request)
        state = runtime.state()
        doors = sorted(int(n) for n, run in state["doors"].items() if run["purpose"] == "return")
        if doors:
            lines = "".join(f'<p class=door-open data-door="{n}">{p.t("screen.return_open", door=n)}'
                            f"</p>" for n in doors)
            body = (f'<h1>{p.t("screen.return")}</h1><div role=status>{lines}</div>'
                    f'<p class=note>{p.t("screen.return_counting")}</p>{back_link(p)}')
        else:
            body = (f'<h1>{p.t("screen.return")}</h1><p class=lead role=status>'
                    f'{p.t("return.done")}</p>{back_link(p)}')
        return p.keep(HTMLResponse(render_page(p, p.t("screen.return"), body)))

    return router


def _refusal(p: Prefs, text: str) -> str:
    if "full" in text:
        return p.t("return.full")
    return p.t("screen.busy")


def back_link(p: Prefs) -> str:
    return f'<p><a class="btn btn-secondary" href="/">{p.t("screen.back")}</a></p>'


def _idlerender_page(p: Prefs, cabinet: Any, *, busy: bool) -> str:
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
</nav>"""
    return render_page(p, p.t("screen.title"), body)


def render_page(p: Prefs, title: str, body: str) -> str:
    html_lang = "en" if p.lang == "en" else "zh-CN"
    classes = f"contrast-{p.contrast} text-{p.text}"
    return f"""<!doctype html>
<html lang="{html_lang}" class="{classes}">
<head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel=stylesheet href="/static/screen.css">
</head>
<body>
<main id=main>
{body}
</main>
</body>
</html>
"""
