"""The central server's FastAPI application: its routers, its state and its one error shape.

Why one error shape for everything: two very different clients read these answers — the
cabinet's sync agent, which must find ``server_time`` in a 401 to correct its clock, and the
staff web interface, which shows ``detail`` to a person. So every 4xx and 5xx, whether raised
by our code (:class:`server.security.ApiError`), by routing (404, 405) or by validation
(422), is ``{"error": code, "detail": text, "server_time": iso}``. Bad input never reaches a
500: the request models refuse it first; an unexpected exception is logged with its
traceback (never with the request's headers or body, which hold tokens and passwords) and
answered with a generic 500.

``create_app(settings, engine=…, clock=…)``: tests pass their own engine (a migrated test
database) and clock (to expire tokens and move signature windows without sleeping).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import (
    routes_admin,
    routes_exceptions,
    routes_ils,
    routes_items,
    routes_readers,
    routes_reports,
    routes_restock,
    routes_rotation,
    routes_services,
    routes_sync,
)
from .security import ApiError, aware_utc
from .settings import Settings

__all__ = ["MAX_BODY_BYTES", "create_app", "error_response"]

#: Largest request body accepted (413 above it): a generous sync batch is well under 1 MiB,
#: and nothing else sends more than a few hundred bytes.
MAX_BODY_BYTES = 8 * 1024 * 1024

_log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def error_response(request: Request, status: int, error: str, detail: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error every refusal of this server uses, stamped with the server's time.

    ``server_time`` is in every error because a cabinet whose clock drifted out of the
    signature window can only learn the offset from the 401 its timestamp earned it.
    """
    clock: Callable[[], datetime] = getattr(request.app.state, "clock", _utc_now)
    return JSONResponse(status_code=status, headers=headers, content={
        "error": error, "detail": detail, "server_time": aware_utc(clock()).isoformat()})


def _status_code_name(status: int) -> str:
    if status == 413:  # Python's phrase is the old "Request Entity Too Large"
        return "content_too_large"
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _describe_validation(errors: Sequence[Any]) -> tuple[str, str]:
    """(error code, one readable line) for pydantic's list of validation errors.

    Only the location and pydantic's message are used, never the ``input``: a refused
    login body holds the password.
    """
    parts: list[str] = []
    for err in errors:
        if not isinstance(err, dict):
            continue
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            loc = err.get("loc") or ()
            where = f" at position {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
            return "invalid_json", f"the body is not valid JSON{where}: {ctx.get('error', '')}".rstrip(": ")
        loc = ".".join(str(part) for part in err.get("loc", ())) or "request"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    shown = parts[:10]
    if len(parts) > len(shown):
        shown.append(f"… and {len(parts) - len(shown)} more")
    return "invalid_request", "; ".join(shown) or "the request is not valid"


class _BodyTooLarge(StarletteHTTPException):
    """Raised while the body is read, so the error handlers render it (JSON, server_time)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class _BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a JSON 413, declared or streamed.

    A declared Content-Length over the limit is answered at once; a chunked body is counted
    as it arrives and cut off by raising inside the body read (Starlette's own limiter
    answers in plain text, which the cabinet's agent could not read).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(Request(scope), 413, "content_too_large",
                                      str(_BodyTooLarge(self.max_bytes).detail))
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(request, exc.status, exc.error, exc.detail, exc.headers or None)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if status == 404 and detail == "Not Found":
            detail = f"no endpoint {request.url.path!r} on this server"
        elif status == 405 and detail == "Method Not Allowed":
            allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow") or ""
            detail = f"{request.method} is not allowed on {request.url.path!r}" + (
                f"; allowed: {allowed}" if allowed else "")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(request, status, _status_code_name(status), detail, headers)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        error, detail = _describe_validation(exc.errors())
        content_type = request.headers.get("content-type", "")
        if (request.method in ("POST", "PUT", "PATCH") and "json" not in content_type.lower()
                and any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors())):
            error, detail = "invalid_json", ("the body must be a JSON object sent with "
                                             "'Content-Type: application/json'")
        return error_response(request, 422, error, detail)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # method and path only: headers carry bearer tokens, bodies carry passwords
        _log.error("unexpected error answering %s %s", request.method, request.url.path,
                   exc_info=exc)
        return error_response(request, 500, "internal_error",
                              "the server failed to answer this request; it has been logged")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)


def create_app(settings: Settings | None = None, *, engine: Engine | None = None,
               clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The server application on ``settings`` (default: from the environment).

    ``engine``: the database to use (default: ``make_engine(settings.database_url)``, which
    the app then disposes when it shuts down). ``clock``: returns the current time as an
    aware datetime (default: the system clock in UTC). The schema is not created here:
    ``lendbox server init`` / ``migrate`` own it.
    """
    if settings is None:
        settings = Settings.from_env()
    owned = engine is None
    if engine is None:
        from .db import make_engine

        engine = make_engine(settings.database_url)
    the_engine = engine

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        lookup = getattr(_app.state, "ils_lookup", None)
        if lookup is not None:  # the ILS lookup's SIP2 connections (server.routes_ils)
            lookup.close()
        if owned:
            the_engine.dispose()

    # No /docs or /openapi.json: a listener cabinets reach over the internet should not
    # hand anyone a map of the staff API.
    app = FastAPI(title="lendbox server", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.clock = clock or _utc_now
    _install_error_handlers(app)
    app.add_middleware(_BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.include_router(routes_admin.router)
    app.include_router(routes_sync.router)
    app.include_router(routes_readers.router)
    app.include_router(routes_exceptions.router)
    app.include_router(routes_services.router)
    app.include_router(routes_reports.router)
    app.include_router(routes_rotation.router)
    app.include_router(routes_restock.router)
    app.include_router(routes_items.router)
    app.include_router(routes_ils.router)
    from .routes_cabinet_readers import router as cabinet_readers  # reader services (H2)
    app.include_router(cabinet_readers)
    from .routes_commands import router as commands_router  # fleet + remote commands (H5)
    app.include_router(commands_router)
    from .console import mount_console  # the central console's pages (H4)
    mount_console(app)
    return app
