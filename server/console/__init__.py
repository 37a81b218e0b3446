"""The central console: staff pages served by the server under ``/console`` (issue 8 §3).

Server-rendered HTML in Chinese and English, one stylesheet of our own, charts as inline
SVG, no JavaScript needed; data from the server's modules in-process. ``mount_console(app)``
adds the routes and the handler that turns a console refusal into a page.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from .auth import ConsolePageError
from .circulation import router as circulation_router
from .pages import error_page
from .pages import router as pages_router
from .stats_pages import router as stats_router

__all__ = ["mount_console"]


def mount_console(app: FastAPI) -> None:
    """Add the console's pages (and its refusal pages) to the server's app."""

    async def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsolePageError)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(error_page, request, exc)

    app.add_exception_handler(ConsolePageError, on_page_error)
    app.include_router(pages_router)
    app.include_router(circulation_router)
    app.include_router(stats_router)
