"""A kiosk wired to a running simulator: its config, its process and an HTTP client.

Why here (the glue package): the full-stack tests, the crash-trial harness, the benchmarks
and the demo all need "this simulated cabinet, run by a real kiosk process I can kill", and
they must build it the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from .child import ReadyChild

__all__ = ["KioskClient", "KioskProcess", "add_technician_password_hash", "kiosk_config", "to_toml",
           "write_kiosk_config"]

DEFAULT_POLICY: dict[str, Any] = {
    "loan_days": 30, "max_loans": 10, "offline_allowance": 2, "offline_exposure_cap": 20,
    "door_prompt_s": [30, 60], "door_alarm_s": 120, "session_idle_s": 60,
}


def kiosk_config(sim: Any, *, data_dir: Path, server_url: str | None = None,
                 trusted_keys: Mapping[str, str] | None = None,
                 policy: Mapping[str, Any] | None = None, api_port: int = 0,
                 network: list[str] | None = None, accessible: set[int] | None = None,
                 sync_interval_s: float = 1.0, timeout_s: float = 1.0,
                 resolve_timeout_s: float | None = None,
                 technician_password_hash: str | None = None) -> dict[str, Any]:
    """The kiosk config (a dict for :func:`to_toml`) of the running simulator ``sim``.

    The simulator's own libraries (its items' owners) form the network unless ``network``
    says otherwise; ``accessible``: door numbers reachable from a wheelchair (default: the
    lower half of the doors); ``technician_password_hash`` (from
    ``kiosk.tech_auth.hash_password``): the ``[technician]`` section that lets a technician
    log in to the kiosk's ``/tech`` pages (none: no technician login)."""
    hw = sim.hardware_config()
    from collections import Counter

    owners = Counter(it.owner_library for it in sim.config.items if it.owner_library)
    own = owners.most_common(1)[0][0] if owners else "CN-440300"
    others = sorted(set(owners) - {own})
    numbers = sorted(d.number for d in sim.config.doors)
    if accessible is None:
        accessible = set(numbers[len(numbers) // 2:])
    doc: dict[str, Any] = {
        "cabinet": {"id": hw["cabinet"]["id"], "branch": "福田区图书馆",
                    "location": "深圳北站 2F 候车室", "language": "zh",
                    "data_dir": str(data_dir), "own_library": own,
                    "network_libraries": network or [own, *others],
                    "help_line": "0755-12345678"},
    }
    if server_url is not None:
        doc["server"] = {"url": server_url, "timeout_s": timeout_s,
                         "sync_interval_s": sync_interval_s,
                         "trusted_keys": dict(trusted_keys or {})}
        if resolve_timeout_s is not None:
            doc["server"]["resolve_timeout_s"] = resolve_timeout_s
    doc["api"] = {"host": "127.0.0.1", "port": api_port}
    doc["policy"] = {**DEFAULT_POLICY, **(policy or {})}
    for key in ("buses", "boards", "readers"):
        if key in hw:
            doc[key] = hw[key]
    sim_doors = {d.number: d for d in sim.config.doors}
    doors = []
    for d in hw["doors"]:
        sd = sim_doors[d["number"]]
        doors.append({**d, "size": sd.size, "capacity": sd.capacity,
                      "accessible": d["number"] in accessible})
    doc["doors"] = doors
    for key in ("card_reader", "camera"):
        if key in hw:
            doc[key] = hw[key]
    if technician_password_hash is not None:
        doc["technician"] = {"password_hash": technician_password_hash}
    return doc


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_value(x)}"
                                for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(doc: Mapping[str, Any]) -> str:
    """Tables and arrays of tables of plain values (enough for kiosk configs)."""
    lines: list[str] = []
    for key, value in doc.items():
        rows = value if isinstance(value, list) else [value]
        for row in rows:
            lines.append(f"[[{key}]]" if isinstance(value, list) else f"[{key}]")
            lines.extend(f"{k} = {_value(v)}" for k, v in row.items() if v is not None)
            lines.append("")
    return "\n".join(lines)


def write_kiosk_config(path: Path, sim: Any, **kwargs: Any) -> Path:
    path.write_text(to_toml(kiosk_config(sim, **kwargs)), encoding="utf-8")
    return path


def add_technician_password_hash(path: Path, password_hash: str) -> Path:
    """Add the ``[technician]`` section to a kiosk config written earlier (by a story that
    did not know the technician's password): the same section ``technician_password_hash``
    of :func:`write_kiosk_config` writes. ValueError if the file has one already."""
    import tomllib

    text = path.read_text(encoding="utf-8")
    if "technician" in tomllib.loads(text):
        raise ValueError(f"{path} has a [technician] section already")
    section = to_toml({"technician": {"password_hash": password_hash}})
    path.write_text(text.rstrip("\n") + "\n\n" + section, encoding="utf-8")
    return path


class KioskProcess(ReadyChild):
    """``lendbox kiosk run CONFIG`` as a child process (its own session), ready when it
    prints ``kiosk ready URL``; stopped by its pid."""

    def __init__(self, config: Path, *, log: Path | None = None,
                 log_level: str = "warning") -> None:
        super().__init__(["kiosk", "run", str(config), "--log-level", log_level],
                         "kiosk ready ", log=log)
        self.config = config

    def start(self, timeout: float = 30.0) -> KioskProcess:
        super().start(timeout)
        return self


class KioskClient:
    """The kiosk's HTTP API, as the touchscreen (or a test) uses it."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _ok(self, r: httpx.Response) -> Any:
        if r.status_code >= 400:
            raise KioskRefused(r.status_code, r.json().get("detail", r.text))
        return r.json()

    def start_session(self, kind: str, value: str) -> dict[str, Any]:
        return self._ok(self.http.post("/api/session", json={
            "credential": {"kind": kind, "value": value}}))

    def open_door(self, door: int) -> dict[str, Any]:
        return self._ok(self.http.post(f"/api/session/doors/{door}/open"))

    def start_return(self, accessible: bool = False) -> dict[str, Any]:
        return self._ok(self.http.post("/api/return", json={"accessible": accessible}))

    def finish(self) -> dict[str, Any]:
        return self._ok(self.http.post("/api/session/finish"))

    def state(self) -> dict[str, Any]:
        return self._ok(self.http.get("/api/state"))

    def doors(self) -> list[dict[str, Any]]:
        return self._ok(self.http.get("/api/doors"))

    def health(self) -> dict[str, Any]:
        return self._ok(self.http.get("/api/health"))

    def wait(self, predicate: Any, timeout: float = 10.0, what: str = "condition"
             ) -> dict[str, Any]:
        """Poll /api/state until ``predicate(state)``; raises TimeoutError naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.state()
            if predicate(st):
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"kiosk: {what} not reached; state {st}")
            time.sleep(0.02)

    def wait_idle(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait(lambda s: s["session"] is None and not s["doors"], timeout, "idle")


class KioskRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
