"""The cabinet's HTTP API on localhost: what the touchscreen (and the demo) drive.

Why thin: every decision is the session machine's; this module only validates requests,
hands them to the engine (``KioskRuntime.submit``) and maps a refusal to a 4xx with the
machine's own words. A refused request changes nothing. ``/api/events`` is a Server-Sent
Events stream of everything the screen must show, in order, with ids so a screen that
reconnects (``Last-Event-ID``) does not miss what happened meanwhile.

OpenAPI: ``/openapi.json``; ``/docs`` is a plain page rendered from it on the cabinet
(Swagger UI would need a CDN, and a cabinet serves nothing from outside).
"""

from __future__ import annotations

import html
import json
import queue
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from .machine import MachineError
from .messages import message
from .runtime import CredentialRefused, KioskRuntime
from .screens import mount_screens

__all__ = ["create_app"]

#: SSE comment sent when nothing happened for this long (keeps proxies and screens alive).
HEARTBEAT_S = 15.0


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credential(_Body):
    kind: Literal["card", "barcode", "qr"] = Field(
        description="card: contactless card UID (hex); barcode: library card number; "
        "qr: the dynamic QR text of the electronic reader card")
    value: str = Field(min_length=1, max_length=2048)


class StartSession(_Body):
    credential: Credential


class StartReturn(_Body):
    accessible: bool = Field(False, description="open a door reachable from a wheelchair")


def _refused(exc: MachineError) -> HTTPException:
    text = str(exc)
    status = 404 if text.startswith("no door") else 409
    return HTTPException(status_code=status, detail=text)


def create_app(runtime: KioskRuntime) -> FastAPI:
    """The FastAPI application of one running cabinet."""
    app = FastAPI(title=f"lendbox kiosk {runtime.config.cabinet.id}", version="1",
                  docs_url=None, redoc_url=None,
                  description="The cabinet's local API: sessions, doors, returns and the "
                  "event stream the touchscreen shows.")

    def call(fn: Any, *args: Any) -> dict[str, Any]:
        try:
            return fn(*args)
        except MachineError as exc:
            raise _refused(exc) from None
        except CredentialRefused as exc:
            raise HTTPException(403, {"reason": exc.reason,
                                      "message": message("refused." + exc.reason, "en"),
                                      "message_zh": message("refused." + exc.reason, "zh")}) from None
        except TimeoutError:
            raise HTTPException(503, "the cabinet is busy; try again") from None

    @app.get("/api/state", summary="Current session, open doors, online state")
    def state() -> dict[str, Any]:
        return runtime.state()

    @app.get("/api/doors", summary="Every door with the books the cabinet believes it holds")
    def doors() -> list[dict[str, Any]]:
        return runtime.doors()

    @app.post("/api/session", status_code=201, summary="Start a session with a credential")
    def start_session(body: StartSession) -> dict[str, Any]:
        return call(runtime.begin_session, body.credential.kind, body.credential.value)

    @app.post("/api/session/doors/{door}/open", summary="Open a door in the current session")
    def open_door(door: int) -> dict[str, Any]:
        return call(runtime.choose_door, door)

    @app.post("/api/session/finish", summary="End the session (all doors must be closed)")
    def finish() -> dict[str, Any]:
        return call(runtime.finish)

    @app.post("/api/return", status_code=201, summary="Return books: no login needed")
    def start_return(body: StartReturn | None = None) -> dict[str, Any]:
        return call(runtime.begin_return, bool(body and body.accessible))

    @app.get("/api/health", summary="Devices, ledger and sync at a glance")
    def health() -> dict[str, Any]:
        return runtime.health()

    @app.get("/api/events", summary="Server-Sent Events: everything the screen must show",
             response_class=StreamingResponse)
    def events(request: Request, after: str = "", named: bool = True) -> StreamingResponse:
        # ``?after=ID``: a page rendered at event ID (the screen's first connection cannot
        # send Last-Event-ID) gets what happened between its rendering and its connection;
        # ``?named=false``: no ``event:`` line, so a browser's ``onmessage`` sees every event
        last = request.headers.get("last-event-id", "") or after
        after_id = int(last) if last.isdigit() and len(last) < 20 else None
        q = runtime.subscribe()

        def stream() -> Iterator[bytes]:
            try:
                yield b"retry: 1000\n\n"
                if after_id is not None:
                    for item in runtime.iter_recent():
                        if item["id"] > after_id:
                            yield _sse(item, named)
                quiet = 0.0
                while not runtime.stopping:
                    try:
                        item = q.get(timeout=1.0)  # short: a shutdown ends the stream soon
                    except queue.Empty:
                        quiet += 1.0
                        if quiet >= HEARTBEAT_S:
                            quiet = 0.0
                            yield b": alive\n\n"
                        continue
                    quiet = 0.0
                    yield _sse(item, named)
            finally:
                runtime.unsubscribe(q)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> str:
        return _docs_page(app.openapi())

    mount_screens(app, runtime)  # the reader touchscreen: /, /screen/..., /static/
    return app


def _sse(item: dict[str, Any], named: bool = True) -> bytes:
    data = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    kind = f"event: {item['key']}\n" if named else ""
    return f"id: {item['id']}\n{kind}data: {data}\n\n".encode()


def _docs_page(spec: dict[str, Any]) -> str:
    rows = []
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>"
                        f"{html.escape(path)}</code></td><td>"
                        f"{html.escape(op.get('summary', ''))}</td></tr>")
    title = html.escape(spec.get("info", {}).get("title", "API"))
    return (f"<!doctype html><meta charset=utf-8><title>{title}</title>"
            f"<h1>{title}</h1><p>{html.escape(spec.get('info', {}).get('description', ''))}"
            f"</p><p>Machine-readable: <a href=/openapi.json>/openapi.json</a></p>"
            f"<table border=1 cellpadding=6>{''.join(rows)}</table>")
