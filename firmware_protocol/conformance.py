"""Conformance vectors (``vectors/*.json``, SPEC.md §10): load them, run a decoder, compare.

The JSON form of a frame is what a firmware author can print from C without a JSON library
and compare by eye: bytes as lowercase hex strings, enums as their names, flag words as lists
of names. This module converts both ways so that a vector checks the decoder (hex → frames)
and the encoder (frames → hex) of the reference implementation alike.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .codec import NEED_DATA, FrameDecoder
from .const import (
    Capability,
    Command,
    DoorFlags,
    ErrorCode,
    EventType,
    PartKind,
    PartStatus,
    UnlockOutcome,
)
from .errors import FrameError, LocalProtocolError
from .messages import (
    Ack,
    AntennaDiag,
    AntennaDiagReply,
    BoardEvent,
    CountersReply,
    EventsReply,
    Frame,
    GetCounters,
    GetStates,
    Identify,
    IdentifyReply,
    Inventory,
    InventoryReply,
    Message,
    Nak,
    PartResult,
    ReadBlocks,
    ReadBlocksReply,
    ReadEvents,
    Request,
    SelfTest,
    SelfTestReply,
    SetAddress,
    SetEas,
    StatesReply,
    TagReport,
    Unlock,
    UnlockReply,
    WriteAfi,
)

__all__ = [
    "VECTOR_DIR",
    "Vector",
    "frame_from_json",
    "frame_to_json",
    "load_vectors",
    "mismatches",
    "run_decoder",
]

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"

_REQUESTS: dict[Command, type[Message]] = {
    cls.COMMAND: cls
    for cls in (Identify, GetStates, Unlock, ReadEvents, Inventory, ReadBlocks, WriteAfi, SetEas,
                AntennaDiag, GetCounters, SelfTest, SetAddress)
}
_REPLIES: dict[Command, type[Message]] = {
    cls.COMMAND: cls
    for cls in (IdentifyReply, StatesReply, UnlockReply, EventsReply, InventoryReply,
                ReadBlocksReply, AntennaDiagReply, CountersReply, SelfTestReply, Nak)
}
_REPLIES.update({c: Ack for c in (Command.WRITE_AFI, Command.SET_EAS, Command.SET_ADDRESS)})

_ENUM_FIELDS: dict[str, type[enum.Enum]] = {
    "outcome": UnlockOutcome,
    "kind": EventType,
    "part": PartKind,
    "status": PartStatus,
    "error": ErrorCode,
}
_NESTED: dict[str, type] = {"events": BoardEvent, "tags": TagReport, "results": PartResult}
_BYTES_FIELDS = {"uid", "data"}


def _flags_to_json(value: enum.IntFlag) -> list[str | int]:
    out: list[str | int] = []
    rest = int(value)
    for member in type(value):
        if member.value and rest & member.value == member.value:
            out.append(member.name or "")
            rest &= ~member.value
    if rest:
        out.append(rest)  # bits this version does not name (capabilities only)
    return out


def _flags_from_json(cls: type[enum.IntFlag], names: Iterable[str | int]) -> enum.IntFlag:
    value = 0
    for name in names:
        value |= name if isinstance(name, int) else cls[name].value
    return cls(value)


def _value_to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.IntFlag):
        return _flags_to_json(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, tuple):
        return [_value_to_json(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _value_to_json(getattr(value, f.name)) for f in fields(value)}
    return value


def _field_from_json(name: str, value: Any) -> Any:
    if name in _BYTES_FIELDS:
        return bytes.fromhex(value)
    if name in _ENUM_FIELDS:
        return _ENUM_FIELDS[name][value]
    if name == "capabilities":
        return _flags_from_json(Capability, value)
    if name == "doors":
        return tuple(_flags_from_json(DoorFlags, d) for d in value)
    if name in _NESTED:
        cls = _NESTED[name]
        return tuple(cls(**{k: _field_from_json(k, v) for k, v in item.items()}) for item in value)
    if isinstance(value, list):
        return tuple(value)
    return value


def frame_to_json(frame: Frame) -> dict[str, Any]:
    """The JSON form of ``frame`` used in vectors (see SPEC.md §10)."""
    message = frame.message
    if isinstance(message, Ack):
        command, body = message.command, {}
    else:
        command = message.COMMAND
        body = {f.name: _value_to_json(getattr(message, f.name))
                for f in fields(message)}  # type: ignore[arg-type]  # every Message is one
    return {
        "address": frame.address,
        "seq": frame.seq,
        "command": command.name,
        "reply": not isinstance(message, Request),
        "message": body,
    }


def frame_from_json(data: dict[str, Any]) -> Frame:
    """The Frame described by a vector's JSON frame.

    Raises:
        LocalProtocolError: unknown command name or a field the message refuses.
    """
    try:
        command = Command[data["command"]]
        cls = (_REPLIES if data["reply"] else _REQUESTS)[command]
        kwargs = {k: _field_from_json(k, v) for k, v in data["message"].items()}
        if cls is Ack:
            kwargs["command"] = command
        return Frame(address=data["address"], seq=data["seq"], message=cls(**kwargs))
    except (KeyError, TypeError, ValueError) as exc:
        raise LocalProtocolError(f"bad vector frame {data!r}: {exc!r}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class Vector:
    """One conformance vector: a byte stream and what a decoder must make of it."""

    file: str
    name: str
    description: str
    data: bytes
    frames: tuple[dict[str, Any], ...]
    errors: tuple[str, ...]


def load_vectors(directory: Path | None = None) -> list[Vector]:
    """Every vector of every ``*.json`` file in ``directory`` (the shipped set by default)."""
    out: list[Vector] = []
    for path in sorted((directory or VECTOR_DIR).glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for item in doc["vectors"]:
            expect = item["expect"]
            out.append(
                Vector(
                    file=path.name,
                    name=item["name"],
                    description=item["description"],
                    data=bytes.fromhex(item["hex"]),
                    frames=tuple(expect.get("frames", ())),
                    errors=tuple(expect.get("errors", ())),
                )
            )
    return out


def run_decoder(data: bytes, decoder: FrameDecoder | None = None) -> dict[str, list[Any]]:
    """Feed ``data`` at once, drain, then let the inter-byte gap expire and drain again.

    Returns:
        ``{"frames": [JSON frames…], "errors": [error class names…]}`` in arrival order.
    """
    decoder = decoder or FrameDecoder()
    frames: list[Any] = []
    errors: list[str] = []
    decoder.feed(data)
    while True:
        try:
            event = decoder.next_event()
        except FrameError as exc:
            errors.append(type(exc).__name__)
            continue
        if event is NEED_DATA:
            break
        frames.append(frame_to_json(event))
    try:
        decoder.expire()
    except FrameError as exc:
        errors.append(type(exc).__name__)
    return {"frames": frames, "errors": errors}


def mismatches(vector: Vector, result: dict[str, list[Any]]) -> list[str]:
    """Human-readable differences between ``result`` (as from ``run_decoder``) and
    ``vector``'s expectation; empty when they agree."""
    problems = []
    if list(vector.frames) != result["frames"]:
        problems.append(f"frames: expected {list(vector.frames)!r}, got {result['frames']!r}")
    if list(vector.errors) != result["errors"]:
        problems.append(f"errors: expected {list(vector.errors)!r}, got {result['errors']!r}")
    return problems
