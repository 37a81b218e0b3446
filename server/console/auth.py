"""Who is using the console: the staff token from the ``console_token`` cookie or a Bearer
header, the role's permission, and the cross-site-request check on forms.

Why the same token as the API: one login, one expiry, one revocation (logout deletes it),
and the role matrix of ``server.security`` decides every page — the console does not have
permissions of its own. A browser keeps the token in an HttpOnly, SameSite=Strict cookie
scoped to ``/console``; scripts and the role-matrix test send ``Authorization: Bearer``.

Refusals: a browser (it asks for ``text/html`` and carries no Bearer header) gets pages —
not logged in → 303 to the login form, wrong role → a 403 page in words; any other caller
gets the server's JSON error (``server.security.ApiError``), exactly as the API answers.

CSRF: the cookie is SameSite=Strict, and a form POST authenticated by the cookie must also
carry an ``Origin`` (or, failing that, a ``Referer``) of this server's own host, else 403.
A Bearer header is never sent by a browser on its own, so it needs no such check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request

from ..security import ApiError, Staff, current_staff

__all__ = ["COOKIE", "ConsolePageError", "console_require", "origin_ok", "staff_of",
           "wants_html"]

COOKIE = "console_token"


@dataclass
class ConsolePageError(Exception):
    """A refusal shown to a browser as a page: ``status`` with a sentence, or a redirect."""

    status: int
    key: str = "error.title"
    params: dict[str, str] | None = None
    location: str | None = None


def wants_html(request: Request) -> bool:
    """A browser page view (asks for HTML, no Bearer header of its own)."""
    return ("authorization" not in request.headers
            and "text/html" in request.headers.get("accept", ""))


def origin_ok(request: Request) -> bool:
    """The form was posted from a page of this server (Origin, else Referer, same host)."""
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return bool(parts.scheme in ("http", "https") and parts.netloc
                and parts.netloc == request.headers.get("host", ""))


def _with_cookie_token(request: Request) -> Request:
    """The request as :func:`current_staff` reads it: the cookie's token as a Bearer header
    (one code path for token checks, expiry and disabled accounts)."""
    token = request.cookies.get(COOKIE)
    if "authorization" in request.headers or not token:
        return request
    scope = dict(request.scope)
    scope["headers"] = [*request.scope["headers"],
                        (b"authorization", f"Bearer {token}".encode("latin-1", "replace"))]
    return Request(scope, request.receive)


def staff_of(request: Request) -> Staff:
    """The logged-in staff member (cookie or Bearer); ApiError 401 otherwise."""
    return current_staff(_with_cookie_token(request))


def _login_redirect(request: Request) -> ConsolePageError:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/console"
    expired = "expired=1&" if request.cookies.get(COOKIE) else ""
    return ConsolePageError(303, location=f"/console/login?{expired}next={quote(target, safe='')}")


def console_require(permission: str) -> Callable[[Request], Staff]:
    """FastAPI dependency: the staff member if their role has ``permission`` (as
    :func:`server.security.require`), from the cookie or a Bearer header; POSTs by cookie
    must come from this server's own pages. ``.permission`` is read by the role matrix."""
    from ..security import ALL_PERMISSIONS

    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def dependency(request: Request) -> Staff:
        page = wants_html(request)
        try:
            member = staff_of(request)
        except ApiError:
            if page:
                raise _login_redirect(request) from None
            raise
        if request.method == "POST" and "authorization" not in request.headers \
                and not origin_ok(request):
            raise ConsolePageError(403, "error.origin")
        if permission not in member.permissions:
            if page:
                raise ConsolePageError(403, "error.forbidden",
                                       {"role": member.role, "permission": permission})
            raise ApiError(403, "forbidden",
                           f"role {member.role!r} lacks permission {permission!r}")
        return member

    dependency.__name__ = f"console_require_{permission.replace('.', '_')}"
    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency
