"""cn485 codec: the published frames byte for byte, round trips, fuzzing, any chunking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_protocol import cn485 as c
from firmware_protocol.codec import NEED_DATA
from firmware_protocol.errors import BadCrc, FrameError, Garbage, LocalProtocolError, TruncatedFrame

VECTORS = Path(__file__).resolve().parents[2] / "firmware_protocol/vectors/cn485"


def _load(name: str) -> list[dict]:
    doc = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    assert {"protocol", "format", "description", "vectors"} <= set(doc)
    for v in doc["vectors"]:
        assert v["source"], v["name"]
    return doc["vectors"]


def _message(spec: dict) -> object:
    spec = dict(spec)
    kind = spec.pop("type")
    if kind == "BoardStatusReply":
        n = spec.pop("status_bytes")
        high = set(spec.pop("channels_high"))
        return c.BoardStatusReply(board=spec["board"],
                                  signals=tuple(ch in high for ch in range(1, 8 * n + 1)))
    return getattr(c, kind)(**spec)


@pytest.mark.parametrize("vector", _load("requests.json"), ids=lambda v: v["name"])
def test_published_requests_byte_exact(vector: dict) -> None:
    data = bytes.fromhex(vector["hex"])
    message = _message(vector["message"])
    assert c.encode_request(message) == data
    assert c.decode_request(data) == message


@pytest.mark.parametrize("vector", _load("replies.json"), ids=lambda v: v["name"])
def test_published_replies_byte_exact(vector: dict) -> None:
    data = bytes.fromhex(vector["hex"])
    message = _message(vector["message"])
    assert c.encode_reply(message) == data
    assert c.decode_reply(data, expect=vector.get("expect")) == message


def test_worked_example_bcc() -> None:
    assert c.bcc(bytes.fromhex("8A010111")) == 0x9B


def test_whole_board_bit_order_highest_group_first() -> None:
    # Open-Locker's captured case: 12 channels, bytes 05 03 → ch1, ch2, ch9, ch11 high
    reply = c.decode_reply(bytes.fromhex("8002050333b7"), expect="board")
    assert isinstance(reply, c.BoardStatusReply)
    assert [n + 1 for n, on in enumerate(reply.signals) if on] == [1, 2, 9, 11]


def test_invalid_messages_are_refused_locally() -> None:
    with pytest.raises(LocalProtocolError):
        c.Open(board=1, lock=1, hold_s=10)
    with pytest.raises(LocalProtocolError):
        c.Open(board=1, lock=0, hold_s=2)
    with pytest.raises(LocalProtocolError):  # would be ambiguous with a 5-byte open
        c.Open(board=100, lock=246, hold_s=9)
    with pytest.raises(LocalProtocolError):
        c.BoardStatusReply(board=1, signals=(True,) * 7)
    with pytest.raises(LocalProtocolError):
        c.encode_request(c.OpenReply(board=1, lock=1, high=True))  # type: ignore[arg-type]


# ---------------------------------------------------------------- property tests

boards = st.integers(0, 255)
locks = st.integers(1, 255)
requests = st.one_of(
    st.builds(c.Open, board=boards, lock=st.integers(0, 255)),
    st.builds(c.Open, board=st.integers(0, 127), lock=st.integers(1, 127),
              hold_s=st.integers(1, 9)),
    st.builds(c.ReadLock, board=boards, lock=locks),
    st.builds(c.ReadBoard, board=boards),
)
status_sizes = st.integers(1, 4)


@st.composite
def board_replies(draw: st.DrawFn) -> c.BoardStatusReply:
    n = draw(status_sizes)
    return c.BoardStatusReply(board=draw(boards),
                              signals=tuple(draw(st.lists(st.booleans(), min_size=8 * n,
                                                          max_size=8 * n))))


@given(requests)
def test_request_round_trip(message: object) -> None:
    assert c.decode_request(c.encode_request(message)) == message  # type: ignore[arg-type]


@given(st.one_of(st.builds(c.OpenReply, board=boards, lock=st.integers(0, 255),
                           high=st.booleans()),
                 st.builds(c.LockStatusReply, board=boards, lock=locks, high=st.booleans())))
def test_short_reply_round_trip(message: c.Cn485Reply) -> None:
    expect = "lock" if isinstance(message, c.LockStatusReply) else None
    assert c.decode_reply(c.encode_reply(message), expect=expect) == message


@given(board_replies())
def test_board_reply_round_trip(message: c.BoardStatusReply) -> None:
    data = c.encode_reply(message)
    assert len(data) == 4 + message.status_bytes
    assert c.decode_reply(data, expect="board") == message


def _drain(decoder: c.RequestDecoder | c.ReplyDecoder) -> tuple[list[object], list[str]]:
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


@given(st.lists(requests, min_size=1, max_size=6), st.data())
def test_request_stream_any_chunking(messages: list[object], data: st.DataObject) -> None:
    stream = b"".join(c.encode_request(m) for m in messages)  # type: ignore[arg-type]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = c.RequestDecoder()
    events: list[object] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[last:cut])
        last = cut
        got, errors = _drain(decoder)
        assert errors == []
        events.extend(got)
    assert events == messages
    assert decoder.buffered == 0


@given(st.lists(board_replies(), min_size=1, max_size=4), st.data())
def test_reply_stream_any_chunking(messages: list[c.BoardStatusReply], data: st.DataObject
                                   ) -> None:
    sizes = {m.board: m.status_bytes for m in messages}
    messages = [m for m in messages if m.status_bytes == sizes[m.board]]
    stream = b"".join(c.encode_reply(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = c.ReplyDecoder(status_bytes=sizes, expect=lambda b: "board")
    events: list[object] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[last:cut])
        last = cut
        got, errors = _drain(decoder)
        assert errors == []
        events.extend(got)
    assert events == messages


@given(st.binary(max_size=64), st.sampled_from([None, "lock", "board"]), status_sizes)
def test_fuzzed_decoders_raise_only_frame_errors(blob: bytes, expect: str | None,
                                                 n: int) -> None:
    for decoder in (c.RequestDecoder(),
                    c.ReplyDecoder(status_bytes=n, expect=lambda b: expect)):  # type: ignore
        decoder.feed(blob)
        for _ in range(len(blob) + 2):  # every call consumes at least one byte or stops
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


@given(st.binary(min_size=1, max_size=12), requests)
def test_resync_after_garbage(junk: bytes, message: object) -> None:
    """Garbage before a frame costs errors, never the frame (one byte dropped at a time)."""
    decoder = c.RequestDecoder()
    decoder.feed(junk + c.encode_request(message))  # type: ignore[arg-type]
    events, errors = _drain(decoder)
    if events != [message]:
        # the junk may have formed a head whose frame swallowed the real one's first bytes;
        # the gap then drops it, and the next copy of the frame decodes
        try:
            decoder.expire()
        except TruncatedFrame:
            pass
        decoder.feed(c.encode_request(message))  # type: ignore[arg-type]
        events, _ = _drain(decoder)
        assert events[-1:] == [message]
    assert all(e in ("Garbage", "BadCrc") for e in errors)


def test_bad_bcc_is_badcrc_and_drops_one_byte() -> None:
    decoder = c.ReplyDecoder(expect=lambda b: "lock")
    good = c.encode_reply(c.LockStatusReply(board=1, lock=2, high=True))
    decoder.feed(good[:-1] + bytes((good[-1] ^ 1,)) + good)
    with pytest.raises(BadCrc):
        decoder.next_event()
    events, errors = _drain(decoder)
    assert events == [c.LockStatusReply(board=1, lock=2, high=True)]
    assert set(errors) <= {"Garbage"}


def test_expire_drops_partial_frame() -> None:
    decoder = c.RequestDecoder()
    decoder.feed(bytes.fromhex("8A0101"))
    assert decoder.next_event() is NEED_DATA
    with pytest.raises(TruncatedFrame) as err:
        decoder.expire()
    assert err.value.raw == bytes.fromhex("8A0101")
    assert decoder.buffered == 0
    decoder.feed(bytes.fromhex("8A0101119B"))
    assert decoder.next_event() == c.Open(board=1, lock=1)


def test_garbage_is_one_error_up_to_next_head() -> None:
    decoder = c.RequestDecoder()
    decoder.feed(b"\x01\x02\x03" + bytes.fromhex("80010033B2"))
    with pytest.raises(Garbage) as err:
        decoder.next_event()
    assert err.value.raw == b"\x01\x02\x03"
    assert decoder.next_event() == c.ReadBoard(board=1)


def test_echoed_read_lock_is_recognised() -> None:
    decoder = c.ReplyDecoder(expect=lambda b: "lock")
    decoder.feed(c.encode_request(c.ReadLock(board=4, lock=7)))
    assert decoder.next_event() == c.ReadLock(board=4, lock=7)
