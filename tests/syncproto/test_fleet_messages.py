"""The protocol additions for the fleet overview and remote commands: ``SyncBatch.status``,
``SyncBatch.command_results`` and ``SyncReply.commands``.

Properties: every valid message survives JSON and back unchanged; a batch or reply in the
older format (without the new keys) is still accepted with empty defaults; bad values are a
ValidationError, never accepted silently.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from syncproto.messages import (
    CabinetStatus,
    Command,
    CommandResult,
    DoorFill,
    StatusAlarm,
    SyncBatch,
    SyncReply,
)
from tests.syncproto.helpers import T0, ids, times

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
_doors = st.integers(1, 999)

alarms = st.builds(StatusAlarm, kind=ids(64), door=st.none() | _doors, at=times)
fills = st.builds(DoorFill, door=_doors, count=st.integers(0, 10_000),
                  capacity=st.integers(0, 10_000))
statuses = st.builds(
    CabinetStatus, reported_at=times, kiosk_version=st.text(max_size=64),
    devices=st.dictionaries(st.text(max_size=20), st.sampled_from(["ok", "degraded",
                                                                     "unavailable"]),
                            max_size=8),
    open_alarms=st.lists(alarms, max_size=5), fill=st.lists(fills, max_size=8),
    offline_exposure=st.integers(0, 10_000), offline_exposure_cap=st.integers(0, 10_000),
    pending_events=st.integers(0, 10**9))
commands = st.builds(Command, id=st.integers(1, 2**31), kind=st.sampled_from(
    ["open_door", "reinventory", "fetch_diagnostics"]),
    args=st.dictionaries(st.text(max_size=8), _json, max_size=3), issued_at=times,
    expires_at=times)
results = st.builds(CommandResult, id=st.integers(1, 2**31),
                    status=st.sampled_from(["done", "failed"]),
                    result=st.dictionaries(st.text(max_size=8), _json, max_size=4),
                    finished_at=times)


@settings(max_examples=60, deadline=None)
@given(status=st.none() | statuses, res=st.lists(results, max_size=4))
def test_a_batch_with_status_and_results_round_trips(status: CabinetStatus | None,
                                                     res: list[CommandResult]) -> None:
    batch = SyncBatch(cabinet_id="cab-1", sent_at=T0, status=status, command_results=res)
    again = SyncBatch.model_validate_json(batch.model_dump_json())
    assert again == batch
    assert again.status == status and again.command_results == res


@settings(max_examples=60, deadline=None)
@given(cmds=st.lists(commands, max_size=5))
def test_a_reply_with_commands_round_trips(cmds: list[Command]) -> None:
    reply = SyncReply(applied_through=3, server_time=T0, commands=cmds)
    assert SyncReply.model_validate_json(reply.model_dump_json()) == reply


def test_the_older_format_is_still_accepted_with_empty_defaults() -> None:
    batch = SyncBatch.model_validate({"version": 1, "cabinet_id": "cab-1",
                                      "sent_at": "2025-06-01T08:30:00+08:00", "events": [],
                                      "deny_version": 0, "items_version": 0, "inventory": []})
    assert batch.status is None and batch.command_results == []
    reply = SyncReply.model_validate({"version": 1, "applied_through": 0,
                                      "server_time": datetime(2025, 6, 1, tzinfo=UTC)})
    assert reply.commands == []
    # an empty commands list is left out of the wire form a server sends an older kiosk
    assert "commands" not in json.loads(reply.model_dump_json(exclude={"commands"}))


@pytest.mark.parametrize("bad", [
    {"command_results": [{"id": 0, "status": "done", "finished_at": T0.isoformat()}]},
    {"command_results": [{"id": 1, "status": "maybe", "finished_at": T0.isoformat()}]},
    {"command_results": [{"id": 1, "status": "done"}]},
    {"status": {"reported_at": T0.isoformat(), "offline_exposure": -1}},
    {"status": {"reported_at": T0.isoformat(), "fill": [{"door": 0, "count": 1,
                                                          "capacity": 1}]}},
    {"status": {"reported_at": T0.isoformat(), "surprise": 1}},
    {"status": {"devices": {}}},
    {"status": {"reported_at": T0.isoformat(),
                "open_alarms": [{"kind": "", "at": T0.isoformat()}]}},
])
def test_bad_new_fields_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SyncBatch.model_validate({"cabinet_id": "cab-1", "sent_at": T0.isoformat(), **bad})


@pytest.mark.parametrize("bad", [
    {"id": 1, "kind": "self_destruct", "issued_at": T0.isoformat(),
     "expires_at": T0.isoformat()},
    {"id": -1, "kind": "reinventory", "issued_at": T0.isoformat(),
     "expires_at": T0.isoformat()},
    {"id": 1, "kind": "reinventory", "issued_at": T0.isoformat()},
])
def test_bad_commands_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SyncReply.model_validate({"applied_through": 0, "server_time": T0.isoformat(),
                                  "commands": [bad]})
