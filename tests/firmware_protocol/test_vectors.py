"""The committed conformance vectors (firmware_protocol/vectors/*.json) against the codec:
decoding each stream gives exactly the expected frames and errors, and encoding the expected
frames of every clean vector gives back its bytes. The JSON is the reference; nothing here
regenerates it."""

from __future__ import annotations

import json

import pytest

from firmware_protocol import (
    NEED_DATA,
    BadPayload,
    FrameDecoder,
    FrameError,
    UnknownCommand,
    encode,
)
from firmware_protocol.conformance import (
    VECTOR_DIR,
    Vector,
    frame_from_json,
    frame_to_json,
    load_vectors,
    mismatches,
    run_decoder,
)

VECTORS = load_vectors()


def test_enough_vectors_of_every_kind() -> None:
    assert len(VECTORS) >= 40
    assert {v.file for v in VECTORS} == {
        "valid-requests.json", "valid-replies.json", "invalid.json", "streams.json"}
    names = [(v.file, v.name) for v in VECTORS]
    assert len(names) == len(set(names))
    kinds = {e for v in VECTORS for e in v.errors}
    assert kinds == {"Garbage", "BadCrc", "BadLength", "TruncatedFrame", "UnknownCommand",
                     "BadPayload"}


def test_every_message_type_has_a_vector() -> None:
    types = {type(frame_from_json(f).message).__name__ for v in VECTORS for f in v.frames}
    assert len(types) == 23  # 12 requests, 10 replies + Ack (NAK included)


def test_vector_files_have_the_documented_shape() -> None:
    for path in VECTOR_DIR.glob("*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert {"protocol", "format", "description", "vectors"} <= set(doc)
        for item in doc["vectors"]:
            assert set(item) == {"name", "description", "hex", "expect"}
            assert set(item["expect"]) <= {"frames", "errors"}


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v.file}:{v.name}")
def test_decoder_meets_vector(vector: Vector) -> None:
    assert mismatches(vector, run_decoder(vector.data)) == []


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v.file}:{v.name}")
def test_byte_at_a_time_gives_the_same_frames(vector: Vector) -> None:
    decoder = FrameDecoder()
    frames = []
    for byte in vector.data:
        decoder.feed(bytes([byte]))
        while True:
            try:
                event = decoder.next_event()
            except FrameError:
                continue
            if event is NEED_DATA:
                break
            frames.append(frame_to_json(event))
    assert frames == list(vector.frames)


@pytest.mark.parametrize("vector", [v for v in VECTORS if not v.errors],
                         ids=lambda v: f"{v.file}:{v.name}")
def test_encoder_meets_clean_vector(vector: Vector) -> None:
    encoded = b"".join(encode(frame_from_json(f)) for f in vector.frames)
    assert encoded == vector.data


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.file == "invalid.json"
                                    and v.errors in (("BadPayload",), ("UnknownCommand",))],
                         ids=lambda v: v.name)
def test_refusals_carry_the_header_for_a_nak(vector: Vector) -> None:
    decoder = FrameDecoder()
    decoder.feed(vector.data)
    with pytest.raises((BadPayload, UnknownCommand)) as info:
        decoder.next_event()
    exc = info.value
    assert (exc.address, exc.seq, exc.command) == tuple(vector.data[2:5])
    assert exc.raw == vector.data
