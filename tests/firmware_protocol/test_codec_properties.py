"""Properties of the codec under hypothesis: round trips for every message type, chunking
invariance, corruption never turning into a different message, fuzzing, resync and bounds.

Corruption and resync tests run derandomized: CRC-16 catches every burst of ≤ 16 bits, but a
shifted or re-lengthed frame is caught only with probability 1 - 2^-16, and a flaky test that
"found" that 1-in-65536 would teach nothing.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocol import (
    MAX_FRAME,
    NEED_DATA,
    Frame,
    FrameDecoder,
    FrameError,
    Garbage,
    TruncatedFrame,
    decode_frame,
    encode,
)

from . import strategies

Event = object


def drain(decoder: FrameDecoder, out: list[Event]) -> None:
    while True:
        try:
            event = decoder.next_event()
        except FrameError as exc:
            out.append(exc)
            continue
        if event is NEED_DATA:
            return
        out.append(event)


def decode_stream(chunks: list[bytes], decoder: FrameDecoder | None = None) -> list[Event]:
    decoder = decoder or FrameDecoder()
    out: list[Event] = []
    for chunk in chunks:
        decoder.feed(chunk)
        drain(decoder, out)
    try:
        decoder.expire()
    except FrameError as exc:
        out.append(exc)
    assert decoder.buffered == 0
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points)]


def signature(events: list[Event]) -> list[object]:
    """Frames and error types, consecutive Garbage merged (chunking may split a run)."""
    out: list[object] = []
    for e in events:
        if isinstance(e, Garbage) and out and isinstance(out[-1], tuple):
            out[-1] = ("Garbage", out[-1][1] + e.raw)
        elif isinstance(e, Garbage):
            out.append(("Garbage", e.raw))
        elif isinstance(e, FrameError):
            out.append(type(e).__name__)
        else:
            out.append(e)
    return out


@pytest.mark.parametrize("name", sorted(strategies.MESSAGES))
@settings(max_examples=40)
@given(data=st.data())
def test_round_trip_every_message_type(name: str, data: st.DataObject) -> None:
    frame = data.draw(strategies.frames_of(strategies.MESSAGES[name]))
    wire = encode(frame)
    assert len(wire) <= MAX_FRAME
    assert decode_frame(wire) == frame
    decoder = FrameDecoder()
    decoder.feed(wire)
    assert decoder.next_event() == frame
    assert decoder.next_event() is NEED_DATA


@settings(max_examples=150)
@given(st.lists(strategies.frames, max_size=8), st.lists(st.integers(0, 4000), max_size=30))
def test_any_chunking_gives_the_same_frames(frames: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(encode(f) for f in frames)
    assert decode_stream(split(stream, cuts)) == frames


@settings(max_examples=150)
@given(st.binary(max_size=600), st.lists(st.integers(0, 1000), max_size=20))
def test_chunking_does_not_change_what_noise_decodes_to(noise: bytes, cuts: list[int]) -> None:
    whole = decode_stream([noise])
    assert signature(decode_stream(split(noise, cuts))) == signature(whole)


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[Frame, bytes]:
    frame = draw(strategies.frames)
    wire = bytearray(encode(frame))
    kind = draw(st.sampled_from(["flips", "burst", "insert", "delete", "replace"]))
    if kind == "flips":
        for bit in draw(st.lists(st.integers(0, len(wire) * 8 - 1), min_size=1, max_size=3,
                                 unique=True)):
            wire[bit // 8] ^= 1 << (bit % 8)
    elif kind == "burst":
        width = draw(st.integers(1, 16))
        start = draw(st.integers(0, len(wire) * 8 - width))
        pattern = draw(st.integers(1, (1 << width) - 1)) | 1 | (1 << (width - 1))
        for i in range(width):
            if pattern >> i & 1:
                wire[(start + i) // 8] ^= 1 << ((start + i) % 8)
    elif kind == "insert":
        at = draw(st.integers(0, len(wire)))
        wire[at:at] = draw(st.binary(min_size=1, max_size=3))
    elif kind == "delete":
        at = draw(st.integers(0, len(wire) - 1))
        del wire[at:at + draw(st.integers(1, 3))]
    else:
        at = draw(st.integers(0, len(wire) - 1))
        wire[at] = draw(st.integers(0, 255).filter(lambda b: b != wire[at]))
    return frame, bytes(wire)


@settings(max_examples=400, derandomize=True)
@given(corruptions(), st.lists(st.integers(0, 300), max_size=5))
def test_corruption_never_yields_a_different_message(case: tuple[Frame, bytes],
                                                     cuts: list[int]) -> None:
    frame, wire = case
    events = decode_stream(split(wire, cuts))
    frames = [e for e in events if isinstance(e, Frame)]
    assert all(f == frame for f in frames), (frames, frame)
    assert len(frames) <= 1
    if not frames:
        assert events and all(isinstance(e, FrameError) for e in events)


@settings(max_examples=300)
@given(st.binary(max_size=1200), st.lists(st.integers(0, 2000), max_size=20))
def test_fuzz_raises_only_frame_errors(noise: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder()
    for chunk in split(noise, cuts):
        decoder.feed(chunk)
        while True:
            try:
                if decoder.next_event() is NEED_DATA:
                    break
            except FrameError:
                pass
        assert decoder.buffered < MAX_FRAME
    try:
        decoder.expire()
    except TruncatedFrame:
        pass
    assert decoder.buffered == 0


@settings(max_examples=300)
@given(st.lists(st.just(0xA5) | st.integers(0, 8) | st.integers(0, 255), max_size=400).map(bytes))
def test_fuzz_sof_heavy(noise: bytes) -> None:
    """Noise rich in SOF bytes and small LENs drives the decoder down its every path."""
    for event in decode_stream([noise]):
        assert isinstance(event, (FrameError, Frame))


@settings(max_examples=200, derandomize=True)
@given(st.binary(max_size=300), strategies.frames, st.lists(st.integers(0, 900), max_size=8))
def test_resync_finds_good_frame_after_garbage(garbage: bytes, frame: Frame,
                                               cuts: list[int]) -> None:
    # Trailing traffic settles any false candidate that began in the garbage (SPEC §3).
    stream = garbage + encode(frame) + b"\x00" * MAX_FRAME
    events = decode_stream(split(stream, cuts))
    assert [e for e in events if isinstance(e, Frame)][-1:] == [frame]


@settings(max_examples=100)
@given(st.binary(min_size=1, max_size=3000), st.integers(MAX_FRAME, 1024))
def test_buffer_stays_bounded_without_draining(noise: bytes, limit: int) -> None:
    decoder = FrameDecoder(max_buffer=limit)
    for i in range(0, len(noise), 97):
        decoder.feed(noise[i:i + 97])
        assert decoder.buffered <= limit
