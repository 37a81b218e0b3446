"""Property tests of the codec: round-trip per message type and profile, chunked streams, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip2proto import LAYOUTS, PROFILES, Message, Parser, SIP2Error, decode, encode

from .strategies import messages

ALL_PROFILES = sorted(PROFILES)


@pytest.mark.parametrize("profile_name", ALL_PROFILES)
@pytest.mark.parametrize("code", sorted(LAYOUTS))
@settings(max_examples=12)
@given(data=st.data())
def test_round_trip_every_message_type_and_profile(profile_name: str, code: str, data: st.DataObject) -> None:
    profile = PROFILES[profile_name]
    message = data.draw(messages(profile, code))
    frame = encode(message, profile)
    assert frame.endswith(profile.terminator)
    assert decode(frame, profile) == message


@pytest.mark.parametrize("profile_name", ALL_PROFILES)
@settings(max_examples=60)
@given(data=st.data())
def test_round_trip_any_message(profile_name: str, data: st.DataObject) -> None:
    profile = PROFILES[profile_name]
    message = data.draw(messages(profile))
    assert decode(encode(message, profile), profile) == message


def _outcome(item: Message | SIP2Error) -> object:
    return item if isinstance(item, Message) else (type(item), str(item))


@pytest.mark.parametrize("profile_name", ALL_PROFILES)
@settings(max_examples=40)
@given(data=st.data())
def test_random_chunking_equals_whole_frames(profile_name: str, data: st.DataObject) -> None:
    profile = PROFILES[profile_name]
    msgs = data.draw(st.lists(messages(profile), min_size=1, max_size=5))
    frames = [encode(m, profile) for m in msgs]
    if profile.lenient_terminator:  # a lenient peer may mix CR and CRLF in one stream
        frames = [f.rstrip(b"\r\n") + data.draw(st.sampled_from([b"\r", b"\r\n"])) for f in frames]
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    parser = Parser(profile)
    out: list[Message | SIP2Error] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += parser.feed(stream[a:b])
    assert out == msgs
    assert parser.pending == 0


@pytest.mark.parametrize("profile_name", ALL_PROFILES)
@settings(max_examples=40)
@given(data=st.data())
def test_merged_frames_in_one_read(profile_name: str, data: st.DataObject) -> None:
    profile = PROFILES[profile_name]
    msgs = data.draw(st.lists(messages(profile), min_size=2, max_size=6))
    assert Parser(profile).feed(b"".join(encode(m, profile) for m in msgs)) == msgs


@pytest.mark.parametrize("profile_name", ALL_PROFILES)
@settings(max_examples=150)
@given(raw=st.binary(max_size=200))
def test_decode_fuzz_raises_only_sip2_errors(profile_name: str, raw: bytes) -> None:
    try:
        decode(raw, PROFILES[profile_name])
    except SIP2Error:
        pass


@pytest.mark.parametrize("profile_name", ALL_PROFILES)
@settings(max_examples=100)
@given(data=st.data())
def test_decode_fuzz_near_valid_frames(profile_name: str, data: st.DataObject) -> None:
    """Mutations of valid frames (byte flips, cuts, inserted delimiters) stay typed."""
    profile = PROFILES[profile_name]
    frame = bytearray(encode(data.draw(messages(profile)), profile))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, max(0, len(frame) - 1)))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and frame:
            frame[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del frame[i:]
        else:
            frame[i:i] = data.draw(st.sampled_from([b"|", b"\r", b"AZ", b"\xff", b"AY1AZ0000"]))
    try:
        decode(bytes(frame), profile)
    except SIP2Error:
        pass


@pytest.mark.parametrize("profile_name", ALL_PROFILES)
@settings(max_examples=80)
@given(chunks=st.lists(st.binary(max_size=80), max_size=8))
def test_parser_fuzz_returns_only_messages_and_sip2_errors(profile_name: str, chunks: list[bytes]) -> None:
    parser = Parser(PROFILES[profile_name])
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, (Message, SIP2Error))
    assert parser.pending <= PROFILES[profile_name].max_frame
