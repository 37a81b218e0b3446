"""Remote commands end to end: the real server (``lendbox server run``), a real kiosk process
(``lendbox kiosk run``) on the simulator, the staff JSON API — what the console's buttons do.

A technician asks cabinet A for a recount, to open door 3 for a stuck reader and for its
diagnostics; each command reaches the cabinet with a sync reply, is executed there, and its
result comes back and shows in the command list and the fleet overview.
"""

from __future__ import annotations

import time
from typing import Any

from lendbox.network_story import NetworkStory


def _wait(what: str, check: Any, timeout: float = 25.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def _finished(network: NetworkStory, cab_id: str, cid: int) -> dict[str, Any]:
    api = network.api
    assert api is not None

    def check() -> dict[str, Any] | None:
        rows = api.get(f"/api/cabinets/{cab_id}/commands",
                               params={"limit": 50}).json()["commands"]
        row = next(r for r in rows if r["id"] == cid)
        return row if row["status"] in ("done", "failed", "expired") else None

    return _wait(f"command {cid} to finish", check)  # type: ignore[no-any-return]


def _queue(network: NetworkStory, cab_id: str, kind: str, args: dict[str, Any]) -> int:
    assert network.api is not None
    r = network.api.post(f"/api/cabinets/{cab_id}/commands", json={"kind": kind, "args": args})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "queued"
    return int(r.json()["id"])


def test_remote_commands_reach_the_cabinet_and_their_results_come_back(
        network: NetworkStory) -> None:
    assert network.api is not None
    a = network.cabinets[0]
    client = a.client()
    try:
        client.wait_idle(20)

        def reported() -> dict[str, Any] | None:
            rows = network.api.get("/api/fleet").json()["cabinets"]  # type: ignore[union-attr]
            row = next(r for r in rows if r["id"] == a.id)
            return row if row["online"] and row["devices"] and row["fill"] else None

        row = _wait("cabinet A to report its status", reported)
        # every device answers (a loaded test machine may make a link re-send: "degraded")
        assert set(row["devices"].values()) <= {"ok", "degraded"}, row["devices"]
        assert row["fill"]["3"]["capacity"] == 10

        # a recount: every door, with the counts the antennas see
        cid = _queue(network, a.id, "reinventory", {})
        done = _finished(network, a.id, cid)
        assert done["status"] == "done", done
        with a.sim.lock:
            physical = {str(n): len(a.sim.model.door(n).items) for n in a.sim.model.doors}
        assert {d: v["count"] for d, v in done["result"]["doors"].items()} == physical

        # a stuck reader at door 3 (no spring: the latch lets go, the door stays shut)
        with a.sim.lock:
            assert a.sim.model.door(3).latched
        cid = _queue(network, a.id, "open_door", {"door": 3, "reason": "读者被困，书在门里"})
        done = _finished(network, a.id, cid)
        assert done["status"] == "done", done
        assert done["result"]["door"] == 3 and done["result"]["unlocked"] is True
        with a.sim.lock:
            assert not a.sim.model.door(3).latched
        a.sim.open_door(3)  # the reader pulls it open, takes nothing, shuts it
        a.sim.close_door(3)
        client.wait_idle(30)

        # diagnostics: the kiosk's own summary, uploaded as the result
        cid = _queue(network, a.id, "fetch_diagnostics", {})
        done = _finished(network, a.id, cid)
        assert done["status"] == "done", done
        assert done["result"]["devices"], done["result"]

        entries = network.api.get("/api/audit", params={"limit": 1000}).json()["entries"]
        mine = [e for e in entries if e["target"] == f"cabinet:{a.id}"]
        queued = {e["detail"]["command"] for e in mine if e["action"] == "command.queue"}
        answered = {e["detail"]["command"] for e in mine if e["action"] == "command.result"}
        assert cid in queued and cid in answered and len(answered) >= 3
    finally:
        client.close()
