"""Kerong CU codec: the published frame byte for byte, round trips, fuzzing, any chunking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_protocol import kerong as k
from firmware_protocol.codec import NEED_DATA
from firmware_protocol.errors import (
    BadCrc,
    FrameError,
    Garbage,
    LocalProtocolError,
    TruncatedFrame,
    UnknownCommand,
)

VECTORS = Path(__file__).resolve().parents[2] / "firmware_protocol/vectors/kerong"


def _load(name: str) -> list[dict]:
    doc = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    assert {"protocol", "format", "description", "vectors"} <= set(doc)
    for v in doc["vectors"]:
        assert v["source"], v["name"]
    return doc["vectors"]


def _message(spec: dict) -> object:
    spec = dict(spec)
    kind = spec.pop("type")
    if kind == "StatusReply":
        opened, items = set(spec.pop("hooks_open")), set(spec.pop("items"))
        return k.StatusReply(address=spec["address"],
                             hooks=tuple(n not in opened for n in range(1, 17)),
                             infrared=tuple(n in items for n in range(1, 17)))
    return getattr(k, kind)(**spec)


@pytest.mark.parametrize("vector", _load("requests.json"), ids=lambda v: v["name"])
def test_requests_byte_exact(vector: dict) -> None:
    data = bytes.fromhex(vector["hex"])
    message = _message(vector["message"])
    assert k.encode_request(message) == data
    assert k.decode_request(data) == message


@pytest.mark.parametrize("vector", _load("replies.json"), ids=lambda v: v["name"])
def test_replies_byte_exact(vector: dict) -> None:
    data = bytes.fromhex(vector["hex"])
    message = _message(vector["message"])
    assert k.encode_reply(message) == data
    assert k.decode_reply(data) == message


def test_published_example_and_checksum() -> None:
    assert k.encode_request(k.GetStatus(unit=0)) == bytes.fromhex("0200300335")
    assert k.checksum(bytes.fromhex("02003003")) == 0x35


def test_status_bit_order() -> None:
    reply = k.StatusReply(address=0, hooks=tuple(n in (1, 16) for n in range(1, 17)),
                          infrared=tuple(n == 10 for n in range(1, 17)))
    data = k.encode_reply(reply)
    # hook 1 = bit 0 of HOOK1-8, hook 16 = bit 7 of HOOK9-16, IR 10 = bit 1 of IR9-16
    assert data[3:7] == bytes((0x01, 0x80, 0x00, 0x02))
    assert k.decode_reply(data) == reply


def test_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        k.Unlock(unit=15, lock=1)  # 0xF_ is broadcast
    with pytest.raises(LocalProtocolError):
        k.SetPulse(unit=0, pulse_ms=60_010)
    with pytest.raises(LocalProtocolError):
        k.SetPulse(unit=0, pulse_ms=505)


units = st.integers(0, k.MAX_UNIT)
lock_numbers = st.integers(1, 16)
requests = st.one_of(
    st.builds(k.GetStatus, unit=units, lock=lock_numbers),
    st.builds(k.Unlock, unit=units, lock=lock_numbers),
    st.builds(k.UnlockAll, unit=units),
    st.builds(k.QueryBus, address=st.integers(0, 255)),
    st.builds(k.SetPulse, unit=units, pulse_ms=st.integers(0, 6000).map(lambda x: x * 10)),
    st.builds(k.DelayedUnlock, unit=units, delay_s=st.integers(0, 250)),
)
flags = st.lists(st.booleans(), min_size=16, max_size=16).map(tuple)
replies = st.one_of(
    st.builds(k.StatusReply, address=st.integers(0, 255), hooks=flags, infrared=flags,
              all_units=st.booleans()),
    st.builds(k.PulseReply, address=st.integers(0, 255),
              pulse_ms=st.integers(0, 0xFFFF).map(lambda x: x * 10)),
)


@given(requests)
def test_request_round_trip(message: object) -> None:
    assert k.decode_request(k.encode_request(message)) == message  # type: ignore[arg-type]


@given(replies)
def test_reply_round_trip(message: object) -> None:
    assert k.decode_reply(k.encode_reply(message)) == message  # type: ignore[arg-type]


def _drain(decoder: k.RequestDecoder | k.ReplyDecoder) -> tuple[list[object], list[str]]:
    events: list[object] = []
    errors: list[str] = []
    while True:
        try:
            event = decoder.next_event()
        except FrameError as exc:
            errors.append(type(exc).__name__)
            continue
        if event is NEED_DATA:
            return events, errors
        events.append(event)


@given(st.lists(replies, min_size=1, max_size=6), st.data())
def test_reply_stream_any_chunking(messages: list[object], data: st.DataObject) -> None:
    stream = b"".join(k.encode_reply(m) for m in messages)  # type: ignore[arg-type]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = k.ReplyDecoder()
    events: list[object] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[last:cut])
        last = cut
        got, errors = _drain(decoder)
        assert errors == []
        events.extend(got)
    assert events == messages


@given(st.lists(requests, min_size=1, max_size=6), st.data())
def test_request_stream_any_chunking(messages: list[object], data: st.DataObject) -> None:
    stream = b"".join(k.encode_request(m) for m in messages)  # type: ignore[arg-type]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = k.RequestDecoder()
    events: list[object] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[last:cut])
        last = cut
        got, errors = _drain(decoder)
        assert errors == []
        events.extend(got)
    assert events == messages


@given(st.binary(max_size=80))
def test_fuzzed_decoders_raise_only_frame_errors(blob: bytes) -> None:
    for decoder in (k.RequestDecoder(), k.ReplyDecoder()):
        decoder.feed(blob)
        for _ in range(len(blob) + 2):
            try:
                if decoder.next_event() is NEED_DATA:
                    break
            except FrameError:
                continue
        try:
            decoder.expire()
        except TruncatedFrame:
            pass
        assert decoder.buffered == 0


@given(st.binary(min_size=1, max_size=12), replies)
def test_resync_after_garbage(junk: bytes, message: object) -> None:
    decoder = k.ReplyDecoder()
    frame = k.encode_reply(message)  # type: ignore[arg-type]
    decoder.feed(junk + frame)
    events, errors = _drain(decoder)
    if message not in events:
        try:
            decoder.expire()
        except TruncatedFrame:
            pass
        decoder.feed(frame)
        events, _ = _drain(decoder)
    assert events[-1] == message
    assert set(errors) <= {"Garbage", "BadCrc", "UnknownCommand"}


def test_bad_sum_drops_one_byte_and_resyncs() -> None:
    good = k.encode_reply(k.StatusReply(address=0x20, hooks=(True,) * 16, infrared=(False,) * 16))
    decoder = k.ReplyDecoder()
    decoder.feed(good[:-1] + bytes((good[-1] ^ 0x10,)) + good)
    with pytest.raises(BadCrc):
        decoder.next_event()
    events, errors = _drain(decoder)
    assert events == [k.decode_reply(good)]
    assert set(errors) <= {"Garbage", "BadCrc"}


def test_unknown_command_and_garbage() -> None:
    decoder = k.RequestDecoder()
    body = bytes((0x02, 0x00, 0x40, 0x03))
    decoder.feed(b"\xff\xfe" + body + bytes((sum(body) & 0xFF,)))
    with pytest.raises(Garbage):
        decoder.next_event()
    with pytest.raises(UnknownCommand) as err:
        decoder.next_event()
    assert err.value.command == 0x40
    assert decoder.next_event() is NEED_DATA


def test_expire() -> None:
    decoder = k.ReplyDecoder()
    decoder.feed(bytes.fromhex("020035ff"))
    assert decoder.next_event() is NEED_DATA
    with pytest.raises(TruncatedFrame):
        decoder.expire()
    assert decoder.buffered == 0
