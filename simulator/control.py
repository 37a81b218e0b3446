"""HTTP/JSON control API of a running simulator (stdlib ``http.server`` in one thread).

Why HTTP: a technician's browser, ``curl`` and tests in another process can drive the cabinet
(open a door, take a book, pull a cable) without importing Python. The routes mirror the
Simulator methods one to one; errors map in one place: malformed request → 400, unknown door /
item / bus / board / route → 404, action the physical state forbids or device not configured →
409. Every error is ``{"error": "..."}``; a handler bug is a 500 with a message, never a
traceback on the wire.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .errors import Conflict, NotConfigured, NotFound

if TYPE_CHECKING:
    from .simulator import Simulator

__all__ = ["ControlServer", "ROUTES", "BadRequest"]

_MAX_BODY = 64 * 1024


class BadRequest(ValueError):
    """The request body or path is malformed (→ 400)."""


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise BadRequest(f"{name} must be an integer, got {value!r}")


def _num(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name} must be a number")
    return float(value)


def _bool(body: dict[str, Any], name: str, default: bool = True) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def _need(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise BadRequest(f"missing field {name!r}")
    return body[name]


def _str(body: dict[str, Any], name: str) -> str:
    value = _need(body, name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a non-empty string")
    return value


def _uid(text: str) -> bytes:
    try:
        uid = bytes.fromhex(text.replace(":", "").replace(" ", ""))
    except ValueError:
        raise BadRequest("uid must be hex, e.g. 04A1B2C3") from None
    if not 4 <= len(uid) <= 10:
        raise BadRequest("uid must be 4, 7 or 10 bytes")
    return uid


Handler = Callable[["Simulator", dict[str, str], dict[str, Any]], Any]


def _ok(_: Any = None) -> dict[str, Any]:
    return {"ok": True}


def _link_faults(sim: Simulator, p: dict[str, str], b: dict[str, Any]) -> Any:
    seed = b.get("seed")
    if seed is not None:
        seed = _int(seed, "seed")
    sim.set_link_faults(_str(b, "bus"), garble_rate=_num(b, "garble_rate", 0.0),
                        drop_rate=_num(b, "drop_rate", 0.0), delay_ms=_num(b, "delay_ms", 0.0),
                        seed=seed)
    return {"ok": True, "faults": sim.faults[b["bus"]].as_dict()}


#: (method, path pattern, handler). Patterns name their parameters.
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", r"/state", lambda s, p, b: s.state()),
    ("GET", r"/doors/(?P<door>[^/]+)", lambda s, p, b: next(
        d for d in s.state()["doors"] if d["number"] == s.model.door(_int(p["door"], "door")).number)),
    ("POST", r"/doors/(?P<door>[^/]+)/open", lambda s, p, b: _ok(s.open_door(_int(p["door"], "door")))),
    ("POST", r"/doors/(?P<door>[^/]+)/close", lambda s, p, b: _ok(s.close_door(_int(p["door"], "door")))),
    ("POST", r"/doors/(?P<door>[^/]+)/leave-open",
     lambda s, p, b: _ok(s.leave_door_open(_int(p["door"], "door")))),
    ("POST", r"/doors/(?P<door>[^/]+)/force", lambda s, p, b: _ok(s.force_door(_int(p["door"], "door")))),
    ("GET", r"/items/(?P<item>[^/]+)", lambda s, p, b: s.model.item(p["item"]).as_json()),
    ("POST", r"/items/(?P<item>[^/]+)/take", lambda s, p, b: s.take_item(p["item"]).as_json()),
    ("POST", r"/items/(?P<item>[^/]+)/put",
     lambda s, p, b: s.put_item(p["item"], _int(_need(b, "door"), "door")).as_json()),
    ("POST", r"/faults/link", _link_faults),
    ("POST", r"/faults/unplug", lambda s, p, b: _ok(s.unplug(_str(b, "bus")))),
    ("POST", r"/faults/replug", lambda s, p, b: _ok(s.replug(_str(b, "bus")))),
    ("POST", r"/faults/lock-jammed", lambda s, p, b: _ok(
        s.jam_lock(_int(_need(b, "door"), "door"), _bool(b, "jammed")))),
    ("POST", r"/faults/lock-wiring", lambda s, p, b: _ok(
        s.break_lock_wiring(_int(_need(b, "door"), "door"), _bool(b, "broken")))),
    ("POST", r"/faults/door-sensor", lambda s, p, b: _ok(
        s.break_door_sensor(_int(_need(b, "door"), "door"), _bool(b, "broken")))),
    ("POST", r"/faults/antenna-detuned", lambda s, p, b: _ok(s.detune_antenna(
        _int(_need(b, "door"), "door"), _int(b.get("reflected_permille", 450),
                                             "reflected_permille")))),
    ("POST", r"/faults/antenna-noise", lambda s, p, b: _ok(s.set_antenna_noise(
        _int(_need(b, "door"), "door"), _int(b.get("noise_floor_dbm", -40), "noise_floor_dbm")))),
    ("POST", r"/faults/tag-unreadable", lambda s, p, b: _ok(
        s.make_tag_unreadable(_str(b, "item_id"), _bool(b, "unreadable")))),
    ("POST", r"/faults/tag-corrupt", lambda s, p, b: _ok(
        s.corrupt_tag_memory(_str(b, "item_id"), _bool(b, "corrupted")))),
    ("POST", r"/faults/tag-detuned", lambda s, p, b: _ok(
        s.detune_tag(_str(b, "item_id"), _num(b, "miss_rate", 0.5)))),
    ("POST", r"/faults/power-cut", lambda s, p, b: _ok(s.power_cut(_int(_need(b, "board"), "board")))),
    ("POST", r"/faults/power-restore",
     lambda s, p, b: _ok(s.power_restore(_int(_need(b, "board"), "board")))),
    ("GET", r"/links/(?P<bus>[^/]+)/stats", lambda s, p, b: s.link_stats(p["bus"])),
    ("POST", r"/cards/present", lambda s, p, b: _ok(s.present_card(_uid(_str(b, "uid"))))),
    ("POST", r"/cards/remove", lambda s, p, b: _ok(s.remove_card())),
    ("POST", r"/camera/qr", lambda s, p, b: _ok(s.show_qr(_str(b, "text")))),
    ("POST", r"/camera/isbn", lambda s, p, b: _ok(s.show_isbn(_str(b, "isbn")))),
    ("POST", r"/camera/clear", lambda s, p, b: _ok(s.clear_camera())),
]
_COMPILED = [(m, re.compile(f"^{pat}/?$"), h) for m, pat, h in ROUTES]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class ControlServer:
    """Serves :data:`ROUTES` for one simulator on ``127.0.0.1:port`` (0 = free port)."""

    def __init__(self, sim: Simulator, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind and serve from a thread."""
        self._server = _Server((self.host, self.port), self._handler_class())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, name="sim-control",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket, join the thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def dispatch(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Route one request; returns (HTTP status, JSON-ready body). Never raises."""
        path = path.split("?", 1)[0]
        allowed = False
        for m, pattern, handler in _COMPILED:
            match = pattern.match(path)
            if not match:
                continue
            if m != method:
                allowed = True
                continue
            try:
                data: Any = {}
                if body.strip():
                    data = json.loads(body)
                if not isinstance(data, dict):
                    raise BadRequest("the request body must be a JSON object")
                return 200, handler(self.sim, match.groupdict(), data)
            except json.JSONDecodeError as exc:
                return 400, {"error": f"body is not valid JSON: {exc.msg}"}
            except (NotFound, StopIteration) as exc:
                return 404, {"error": str(exc) or "not found"}
            except (Conflict, NotConfigured) as exc:
                return 409, {"error": str(exc)}
            except (BadRequest, ValueError, TypeError) as exc:
                return 400, {"error": str(exc)}
            except Exception as exc:  # a bug: say so, keep serving
                return 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}
        if allowed:
            return 405, {"error": f"method {method} not allowed on {path}"}
        return 404, {"error": f"no route {method} {path}"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return json_handler(self.dispatch)


def json_handler(dispatch: Callable[[str, str, bytes], tuple[int, Any]]
                 ) -> type[BaseHTTPRequestHandler]:
    """An ``http.server`` handler for a small JSON control API: GET and POST go to
    ``dispatch(method, path, body) -> (status, payload)``; a body over 64 KiB or a bad
    Content-Length is a 400 before ``dispatch`` sees it. Shared by every emulator's
    control port (the cabinet simulator's, the ILS emulator's)."""

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _serve(self, method: str) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= _MAX_BODY:
                status, payload = 400, {"error": "bad or too large Content-Length"}
            else:
                body = self.rfile.read(length) if length else b""
                status, payload = dispatch(method, self.path, body)
            data = json.dumps(payload, default=str, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

    return _Handler
