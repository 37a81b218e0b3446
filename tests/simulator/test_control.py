"""The HTTP/JSON control API: 200 / 400 / 404 / 409 paths over a real socket."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from simulator import Simulator


def _call(sim: Simulator, method: str, path: str, body: Any = None,
          raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"{sim.control_url}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_state_and_people(sim: Simulator) -> None:
    status, state = _call(sim, "GET", "/state")
    assert status == 200 and len(state["doors"]) == 4
    door1 = state["doors"][0]
    assert door1["number"] == 1 and len(door1["items"]) == 30
    item = door1["items"][0]
    assert _call(sim, "POST", f"/items/{item}/take")[0] == 409  # door closed
    assert _call(sim, "POST", "/doors/1/open")[0] == 409  # latched
    assert _call(sim, "POST", "/doors/1/force") == (200, {"ok": True})
    status, taken = _call(sim, "POST", f"/items/{item}/take")
    assert status == 200 and taken["door"] is None
    sim.force_door(4)
    status, put = _call(sim, "POST", f"/items/{item}/put", {"door": 4})
    assert status == 200 and put["door"] == 4
    assert _call(sim, "POST", "/doors/1/close")[0] == 200
    state = _call(sim, "GET", "/state")[1]
    assert item in state["doors"][3]["items"] and not state["doors"][0]["open"]


def test_faults_and_stats(sim: Simulator) -> None:
    assert _call(sim, "POST", "/faults/lock-jammed", {"door": 2})[0] == 200
    assert sim.model.doors[2].lock_jammed
    status, body = _call(sim, "POST", "/faults/link", {"bus": "usb-1", "drop_rate": 0.25,
                                                       "seed": 3})
    assert status == 200 and body["faults"]["drop_rate"] == 0.25
    assert _call(sim, "POST", "/faults/antenna-noise", {"door": 1,
                                                        "noise_floor_dbm": -40})[0] == 200
    assert _call(sim, "POST", "/faults/power-cut", {"board": 1})[0] == 200
    assert not sim.boards[1].powered
    item = sim.door_items(2)[0].item_id
    assert _call(sim, "POST", "/faults/tag-detuned", {"item_id": item, "miss_rate": 0.3})[0] \
        == 200
    status, stats = _call(sim, "GET", "/links/usb-1/stats")
    assert status == 200 and "wire_s" in stats and "air_s" in stats


def test_bad_requests_are_400(sim: Simulator) -> None:
    assert _call(sim, "POST", "/doors/abc/open")[0] == 400
    assert _call(sim, "POST", "/faults/link", {"bus": "usb-1", "garble_rate": 3})[0] == 400
    assert _call(sim, "POST", "/faults/lock-jammed", {})[0] == 400
    assert _call(sim, "POST", "/faults/lock-jammed", raw=b"{not json")[0] == 400
    assert _call(sim, "POST", "/faults/lock-jammed", [1, 2])[0] == 400
    status, body = _call(sim, "POST", "/faults/antenna-detuned", {"door": 1,
                                                                  "reflected_permille": "x"})
    assert status == 400 and "error" in body


def test_unknown_things_are_404(sim: Simulator) -> None:
    status, body = _call(sim, "POST", "/doors/99/open")
    assert status == 404 and "99" in body["error"]
    assert _call(sim, "POST", "/items/nope/take")[0] == 404
    assert _call(sim, "GET", "/links/nope/stats")[0] == 404
    assert _call(sim, "POST", "/faults/power-cut", {"board": 9})[0] == 404
    assert _call(sim, "GET", "/no/such/route")[0] == 404
    assert _call(sim, "GET", "/doors/99")[0] == 404
    assert _call(sim, "GET", "/doors/1/open")[0] == 405


def test_peripherals_not_configured_are_409(sim: Simulator) -> None:
    status, body = _call(sim, "POST", "/cards/present", {"uid": "04A1B2C3"})
    assert status == 409 and "card reader" in body["error"]
    assert _call(sim, "POST", "/camera/qr", {"text": "hello"})[0] == 409
    assert _call(sim, "POST", "/cards/present", {"uid": "zz"})[0] == 400
