"""The console's page frame, its display preferences and its form reading.

Preferences (``lang`` zh|en, ``contrast`` normal|high) come from the query string, else from
cookies ``console_lang`` / ``console_contrast`` scoped to ``/console`` (the kiosks on the
same host keep their own ``lang`` cookie: a technician switching the console to English must
not switch a reader's screen). Forms are read here from ``application/x-www-form-urlencoded``
bodies (no multipart dependency): a malformed body, a field given twice or an overlong
value is a 400 page in words, never a 500.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from ..security import Staff
from .auth import ConsolePageError
from .messages import code_label, message

__all__ = ["MAX_FIELD", "Ctx", "compact_json", "read_form", "render"]

MAX_FIELD = 2000
_MAX_BODY = 64 * 1024

NAV = (("fleet", "/console", "cabinets.read"),
       ("exceptions", "/console/exceptions", "circulation.read"),
       ("restock", "/console/restock", "circulation.read"),
       ("holds", "/console/holds", "circulation.read"),
       ("recommendations", "/console/recommendations", "circulation.read"),
       ("stats", "/console/stats", "circulation.read"))


@dataclass
class Ctx:
    """One request's language, contrast, staff member and query (for links that keep it)."""

    request: Request
    lang: str = "zh"
    contrast: str = "normal"
    staff: Staff | None = None

    @classmethod
    def of(cls, request: Request, staff: Staff | None = None) -> Ctx:
        def pick(name: str, allowed: tuple[str, ...]) -> str:
            value = request.query_params.get(name) or request.cookies.get(f"console_{name}") or ""
            return value if value in allowed else allowed[0]

        return cls(request, pick("lang", ("zh", "en")), pick("contrast", ("normal", "high")),
                   staff)

    def t(self, key: str, **params: Any) -> str:
        """The sentence, HTML-escaped (params are escaped with it)."""
        return html.escape(message(key, self.lang, params))

    def code(self, prefix: str, value: str | None) -> str:
        return html.escape(code_label(prefix, value, self.lang))

    def can(self, permission: str) -> bool:
        return self.staff is not None and permission in self.staff.permissions

    def link(self, **changes: str | None) -> str:
        """This page's URL with some query parameters changed (None removes one)."""
        params = dict(self.request.query_params)
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        query = urlencode(params)
        return html.escape(self.request.url.path + (f"?{query}" if query else ""))

    def keep(self, response: Response) -> Response:
        for name in ("lang", "contrast"):
            response.set_cookie(f"console_{name}", getattr(self, name), path="/console",
                                samesite="strict")
        return response

    def page(self, title: str, body: str, *, active: str = "", status: int = 200,
             flash: str = "") -> Response:
        return self.keep(HTMLResponse(render(self, title, body, active=active, flash=flash),
                                      status_code=status,
                                      headers={"Cache-Control": "no-store"}))


def _header(ctx: Ctx, active: str) -> str:
    other = "en" if ctx.lang == "zh" else "zh"
    other_html = "en" if other == "en" else "zh-CN"
    contrast_to = "normal" if ctx.contrast == "high" else "high"
    contrast_key = "nav.contrast_normal" if ctx.contrast == "high" else "nav.contrast_high"
    prefs = (f'<a class="btn btn-secondary" id=lang href="{ctx.link(lang=other)}" '
             f'lang="{other_html}" hreflang="{other_html}">{ctx.t("nav.other_language")}</a>'
             f'<a class="btn btn-secondary" id=contrast href="{ctx.link(contrast=contrast_to)}">'
             f'{ctx.t(contrast_key)}</a>')
    if ctx.staff is None:
        return (f'<header class=top><p class=brand>{ctx.t("console.title")}</p>'
                f'<div class=prefs>{prefs}</div></header>')
    links = []
    for key, href, permission in NAV:
        if not ctx.can(permission):
            continue
        current = ' aria-current="page"' if key == active else ""
        links.append(f'<li><a href="{href}"{current}>{ctx.t("nav." + key)}</a></li>')
    who = ctx.t("nav.signed_in", user=ctx.staff.username,
                role=message("role." + ctx.staff.role, ctx.lang))
    return (f'<header class=top><p class=brand>{ctx.t("console.title")}</p>'
            f'<nav aria-label="{ctx.t("nav.label")}"><ul>{"".join(links)}</ul></nav>'
            f'<div class=prefs>{prefs}<span class=who>{who}</span>'
            f'<form method=post action="/console/logout"><button class="btn btn-secondary" '
            f'id=logout type=submit>{ctx.t("nav.logout")}</button></form></div></header>')


def render(ctx: Ctx, title: str, body: str, *, active: str = "", flash: str = "") -> str:
    """A whole page: skip link, header with navigation and switches, one ``<main>``."""
    html_lang = "en" if ctx.lang == "en" else "zh-CN"
    notice = f'<p class=flash role=status>{flash}</p>' if flash else ""
    return f"""<!doctype html>
<html lang="{html_lang}" class="contrast-{ctx.contrast}">
<head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>{title} · {ctx.t("console.title")}</title>
<link rel=stylesheet href="/console/static/console.css">
</head>
<body>
<a class=skip href="#main">{ctx.t("console.skip")}</a>
{_header(ctx, active)}
<main id=main>
<h1>{title}</h1>
{notice}{body}
</main>
</body>
</html>
"""


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form body; ConsolePageError 400 when it is not one."""
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise ConsolePageError(400, "error.bad_form", {"detail": "too long"})
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise ConsolePageError(400, "error.bad_form", {"detail": "not a form"}) from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise ConsolePageError(400, "error.bad_form", {"detail": f"{name} given twice"})
        if len(value) > MAX_FIELD:
            raise ConsolePageError(400, "error.bad_form", {"detail": f"{name} is too long"})
        fields[name] = value
    return fields


def compact_json(value: Any, limit: int = 600) -> str:
    """A stored JSON value as short escaped text for a table cell."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > limit:
        text = text[:limit] + "…"
    return html.escape(text)
