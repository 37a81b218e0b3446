"""The sans-IO Modbus RTU splitter: CRC vectors, published frames, round trips, fuzzing.

The CRC is checked against published values and, under hypothesis, against pymodbus's own
implementation (an independent one); pymodbus is only the oracle here, the codec does not use
it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from firmware_protocol.codec import NEED_DATA
from firmware_protocol.errors import (
    BadCrc,
    BadLength,
    BadPayload,
    FrameError,
    LocalProtocolError,
    TruncatedFrame,
    UnknownCommand,
)
from firmware_protocol.modbus_rtu import (
    BitsReply,
    ExceptionReply,
    ReadBits,
    ReadRegisters,
    RegistersReply,
    ReplyDecoder,
    RequestDecoder,
    WriteMultipleCoils,
    WriteMultipleRegisters,
    WriteReply,
    WriteSingle,
    crc16_modbus,
    encode_reply,
    encode_request,
)


def _all(decoder: RequestDecoder | ReplyDecoder) -> list[object]:
    out = []
    while (event := decoder.next_event()) is not NEED_DATA:
        out.append(event)
    return out


# ---------------------------------------------------------------- published vectors


def test_crc_of_the_widely_published_read_holding_registers_request() -> None:
    # "01 03 00 00 00 0A C5 CD": read 10 holding registers from address 0 of unit 1
    assert crc16_modbus(bytes.fromhex("01 03 00 00 00 0A")) == 0xCDC5
    frame = encode_request(ReadRegisters(unit=1, function=3, address=0, count=10))
    assert frame == bytes.fromhex("01 03 00 00 00 0A C5 CD")


def test_crc_catalogue_check_value() -> None:
    # CRC-16/MODBUS check value over ASCII "123456789" (the CRC catalogue's "check").
    assert crc16_modbus(b"123456789") == 0x4B37


def test_published_request_decodes() -> None:
    d = RequestDecoder()
    d.feed(bytes.fromhex("01 03 00 00 00 0A C5 CD"))
    assert d.next_event() == ReadRegisters(unit=1, function=3, address=0, count=10)
    assert d.next_event() is NEED_DATA and d.buffered == 0


def test_exception_reply_from_pymodbus_decodes() -> None:
    # pymodbus's server answered an illegal-address read with these bytes (seen on loopback)
    d = ReplyDecoder()
    d.feed(bytes.fromhex("01 83 02 C0 F1"))
    assert d.next_event() == ExceptionReply(unit=1, function=3, code=2)


@given(st.binary(max_size=300))
def test_crc_matches_pymodbus(data: bytes) -> None:
    swapped = FramerRTU.compute_CRC(data)  # pymodbus returns it byte-swapped (wire order)
    assert crc16_modbus(data) == ((swapped & 0xFF) << 8) | (swapped >> 8)


# ---------------------------------------------------------------- round trips

units = st.integers(0, 247)
addresses = st.integers(0, 0xFFFF)

requests = st.one_of(
    st.builds(ReadBits, unit=units, function=st.sampled_from([1, 2]), address=addresses,
              count=st.integers(1, 2000)),
    st.builds(ReadRegisters, unit=units, function=st.sampled_from([3, 4]), address=addresses,
              count=st.integers(1, 125)),
    st.builds(WriteSingle, unit=units, function=st.just(5), address=addresses,
              value=st.sampled_from([0xFF00, 0])),
    st.builds(WriteSingle, unit=units, function=st.just(6), address=addresses,
              value=st.integers(0, 0xFFFF)),
    st.builds(WriteMultipleCoils, unit=units, address=addresses,
              values=st.lists(st.booleans(), min_size=1, max_size=1968).map(tuple)),
    st.builds(WriteMultipleRegisters, unit=units, address=addresses,
              values=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=123).map(tuple)),
)
replies = st.one_of(
    st.builds(BitsReply, unit=units, function=st.sampled_from([1, 2]),
              bits=st.integers(1, 250).flatmap(
                  lambda n: st.lists(st.booleans(), min_size=8 * n, max_size=8 * n)).map(tuple)),
    st.builds(RegistersReply, unit=units, function=st.sampled_from([3, 4]),
              values=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125).map(tuple)),
    st.builds(WriteSingle, unit=units, function=st.just(5), address=addresses,
              value=st.sampled_from([0xFF00, 0])),
    st.builds(WriteReply, unit=units, function=st.sampled_from([15, 16]), address=addresses,
              count=st.integers(0, 0xFFFF)),
    st.builds(ExceptionReply, unit=units, function=st.integers(1, 0x7F),
              code=st.integers(0, 255)),
)


@given(st.lists(requests, min_size=1, max_size=4), st.integers(1, 40))
def test_requests_round_trip_in_any_chunking(msgs: list[object], chunk: int) -> None:
    stream = b"".join(encode_request(m) for m in msgs)  # type: ignore[arg-type]
    d = RequestDecoder()
    got: list[object] = []
    for i in range(0, len(stream), chunk):
        d.feed(stream[i:i + chunk])
        got.extend(_all(d))
    assert got == msgs and d.buffered == 0


@given(st.lists(replies, min_size=1, max_size=4), st.integers(1, 40))
def test_replies_round_trip_in_any_chunking(msgs: list[object], chunk: int) -> None:
    stream = b"".join(encode_reply(m) for m in msgs)  # type: ignore[arg-type]
    d = ReplyDecoder()
    got: list[object] = []
    for i in range(0, len(stream), chunk):
        d.feed(stream[i:i + chunk])
        got.extend(_all(d))
    assert got == msgs and d.buffered == 0


# ---------------------------------------------------------------- broken input


def test_flipped_bit_is_bad_crc_and_the_decoder_moves_on() -> None:
    good = encode_request(WriteSingle(unit=3, function=5, address=7, value=0xFF00))
    bad = bytearray(good)
    bad[3] ^= 0x10
    d = RequestDecoder()
    d.feed(bytes(bad) + good)
    with pytest.raises(BadCrc):
        d.next_event()
    assert d.next_event() == WriteSingle(unit=3, function=5, address=7, value=0xFF00)


def test_expire_drops_a_partial_frame() -> None:
    d = ReplyDecoder()
    d.feed(encode_reply(BitsReply(unit=1, function=2, bits=(True,) * 8))[:4])
    assert d.next_event() is NEED_DATA
    with pytest.raises(TruncatedFrame):
        d.expire()
    assert d.buffered == 0
    d.expire()  # nothing buffered: nothing to report


def test_unknown_function_with_good_crc_is_unknown_command() -> None:
    body = bytes([9, 0x2B, 0x0E, 0x01, 0x00])  # read device identification
    frame = body + crc16_modbus(body).to_bytes(2, "little")
    d = RequestDecoder()
    d.feed(frame)
    with pytest.raises(UnknownCommand) as info:
        d.next_event()
    assert info.value.command == 0x2B and info.value.address == 9 and info.value.raw == frame


def test_bad_coil_value_is_bad_payload() -> None:
    body = bytes([1, 5, 0, 0, 0x12, 0x34])
    d = RequestDecoder()
    d.feed(body + crc16_modbus(body).to_bytes(2, "little"))
    with pytest.raises(BadPayload):
        d.next_event()


def test_impossible_byte_count_is_bad_length() -> None:
    d = ReplyDecoder()
    d.feed(bytes([1, 2, 0]))  # a bits reply cannot carry 0 bytes
    with pytest.raises(BadLength):
        d.next_event()
    assert d.buffered == 2


def test_encoding_rejects_out_of_range_fields() -> None:
    with pytest.raises(LocalProtocolError):
        encode_request(WriteSingle(unit=1, function=5, address=0, value=1))
    with pytest.raises(LocalProtocolError):
        encode_request(ReadBits(unit=1, function=1, address=0, count=0))
    with pytest.raises(LocalProtocolError):
        encode_reply(BitsReply(unit=1, function=1, bits=(True,) * 3))


@settings(max_examples=300)
@given(st.binary(max_size=600), st.sampled_from([RequestDecoder, ReplyDecoder]),
       st.integers(1, 64))
def test_fuzzing_raises_only_frame_errors_and_the_decoder_stays_usable(
        data: bytes, kind: type[RequestDecoder | ReplyDecoder], chunk: int) -> None:
    d = kind()
    for i in range(0, len(data), chunk):
        d.feed(data[i:i + chunk])
        for _ in range(len(data) + 2):
            try:
                if d.next_event() is NEED_DATA:
                    break
            except FrameError:
                continue
    try:
        d.expire()
    except FrameError:
        pass
    assert d.buffered == 0
    good = (encode_request(ReadBits(unit=1, function=2, address=0, count=8))
            if kind is RequestDecoder
            else encode_reply(BitsReply(unit=1, function=2, bits=(False,) * 8)))
    d.feed(good)
    assert d.next_event() is not NEED_DATA
