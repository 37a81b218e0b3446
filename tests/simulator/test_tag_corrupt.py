"""The corrupted-tag fault: the tag still answers, its memory no longer decodes; restorable."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from firmware_protocol.errors import TagDataError
from firmware_protocol.iso28560 import decode_tag
from simulator import Simulator


def _post(sim: Simulator, path: str, body: object) -> tuple[int, object]:
    req = urllib.request.Request(f"{sim.control_url}{path}", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_corrupt_tag_memory_over_http_and_back(sim: Simulator) -> None:
    item = sim.door_items(2)[0]
    good = item.memory
    assert decode_tag(good, item.dsfid).primary_item_id == item.item_id
    assert _post(sim, "/faults/tag-corrupt", {"item_id": item.item_id}) == (200, {"ok": True})
    assert item.memory != good and len(item.memory) == len(good) and item.memory_corrupted
    with pytest.raises(TagDataError):
        decode_tag(item.memory, item.dsfid)
    sim.corrupt_tag_memory(item.item_id)  # idempotent: corrupting twice changes nothing more
    assert item.memory_corrupted and item.memory != good
    assert sim.model.item(item.item_id).as_json()["memory_corrupted"] is True
    assert _post(sim, "/faults/tag-corrupt", {"item_id": item.item_id, "corrupted": False})[0] \
        == 200
    assert item.memory == good and not item.memory_corrupted
    assert _post(sim, "/faults/tag-corrupt", {"item_id": "nope"})[0] == 404
    assert _post(sim, "/faults/tag-corrupt", {"item_id": item.item_id, "corrupted": 1})[0] == 400
