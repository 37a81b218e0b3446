"""Unit tests of firmware_protocol.codec, .crc and .payloads: known bytes, every error path,
and the decoder's contract (what it consumes, raises and keeps after each problem)."""

from __future__ import annotations

import ast
import binascii
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import firmware_protocol
from firmware_protocol import (
    MAX_FRAME,
    NEED_DATA,
    BadCrc,
    BadLength,
    BadPayload,
    Command,
    DoorFlags,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameError,
    Garbage,
    GetStates,
    LocalProtocolError,
    Message,
    Nak,
    StatesReply,
    TruncatedFrame,
    UnknownCommand,
    Unlock,
    UnlockReply,
    crc16,
    decode_frame,
    encode,
)

from . import strategies

UNLOCK = Frame(address=1, seq=7, message=Unlock(lock=2, pulse_ms=500, op_id=0x1234))
UNLOCK_HEX = "a5 05 01 07 03 02 f4 01 34 12 e4 22"


def drain(decoder: FrameDecoder) -> list[object]:
    """Frames and errors (as exception instances) until NEED_DATA."""
    out: list[object] = []
    while True:
        try:
            event = decoder.next_event()
        except FrameError as exc:
            out.append(exc)
            continue
        if event is NEED_DATA:
            return out
        out.append(event)


# ------------------------------------------------------------------ CRC


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_crc_matches_stdlib_crc_hqx(data: bytes) -> None:
    assert crc16(data) == binascii.crc_hqx(data, 0xFFFF)


@settings(max_examples=50)
@given(st.binary(max_size=100), st.binary(max_size=100))
def test_crc_continues_over_pieces(a: bytes, b: bytes) -> None:
    assert crc16(b, crc16(a)) == crc16(a + b)


# ------------------------------------------------------------------ encode / decode_frame


def test_encode_known_frame() -> None:
    assert encode(UNLOCK) == bytes.fromhex(UNLOCK_HEX)
    assert decode_frame(bytes.fromhex(UNLOCK_HEX)) == UNLOCK


def test_crc_is_little_endian_over_len_to_payload() -> None:
    data = encode(UNLOCK)
    crc = binascii.crc_hqx(data[1:-2], 0xFFFF)
    assert data[-2:] == bytes([crc & 0xFF, crc >> 8])


def test_nak_and_ack_command_bytes() -> None:
    nak = encode(Frame(address=3, seq=1, message=Nak(command=0x42, error=ErrorCode.BUSY)))
    assert nak[4] == 0xFF and nak[5:7] == b"\x42\x04"
    ack = encode(Frame(address=3, seq=1, message=firmware_protocol.Ack(command=Command.SET_EAS)))
    assert ack[1] == 0 and ack[4] == 0x88


@pytest.mark.parametrize(
    "bad",
    [
        "not a frame",
        Frame(address=0xFF, seq=0, message=UnlockReply(lock=1, op_id=1, outcome=0,
                                                        door_open=False)),
        Frame(address=1, seq=0, message=StatesReply(doors=(DoorFlags(0x20),))),
    ],
)
def test_encode_refuses_what_the_wire_cannot_carry(bad: object) -> None:
    with pytest.raises(LocalProtocolError):
        encode(bad)  # type: ignore[arg-type]


def test_encode_refuses_foreign_message() -> None:
    class Foreign(Message):
        __slots__ = ()

    with pytest.raises(LocalProtocolError):
        encode(Frame(address=1, seq=0, message=Foreign()))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("", Garbage),
        ("00 a5 05", Garbage),
        ("a5", TruncatedFrame),
        ("a5 fb", BadLength),
        (UNLOCK_HEX[:-6], TruncatedFrame),
        (UNLOCK_HEX + " 00", BadLength),
        (UNLOCK_HEX[:-2] + "23", BadCrc),
    ],
)
def test_decode_frame_is_strict(data: str, error: type[FrameError]) -> None:
    with pytest.raises(error):
        decode_frame(bytes.fromhex(data))


def _frame_bytes(addr: int, seq: int, cmd: int, payload: bytes = b"") -> bytes:
    body = bytes([len(payload), addr, seq, cmd]) + payload
    crc = binascii.crc_hqx(body, 0xFFFF)
    return b"\xa5" + body + bytes([crc & 0xFF, crc >> 8])


def test_unknown_command_carries_what_a_nak_needs() -> None:
    data = _frame_bytes(4, 9, 0x3C, b"\x01")
    with pytest.raises(UnknownCommand) as info:
        decode_frame(data)
    assert (info.value.address, info.value.seq, info.value.command) == (4, 9, 0x3C)
    assert info.value.raw == data


def test_message_validation_becomes_bad_payload() -> None:
    data = _frame_bytes(4, 9, 0x03, b"\x00\xf4\x01\x00\x00")  # lock 0
    with pytest.raises(BadPayload) as info:
        decode_frame(data)
    assert (info.value.address, info.value.seq, info.value.command) == (4, 9, 0x03)
    assert isinstance(info.value.__cause__, LocalProtocolError)


def test_reserved_address_is_bad_payload() -> None:
    with pytest.raises(BadPayload) as info:
        decode_frame(_frame_bytes(0xF9, 1, 0x02))
    assert info.value.address == 0xF9


# ------------------------------------------------------------------ FrameDecoder


def test_decoder_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    data = encode(UNLOCK)
    for byte in data[:-1]:
        decoder.feed(bytes([byte]))
        assert decoder.next_event() is NEED_DATA
    decoder.feed(data[-1:])
    assert decoder.next_event() == UNLOCK
    assert decoder.next_event() is NEED_DATA
    assert (decoder.buffered, decoder.frames, decoder.errors) == (0, 1, 0)


def test_decoder_raises_each_problem_once_and_continues() -> None:
    decoder = FrameDecoder()
    good = encode(UNLOCK)
    bad = bytearray(good)
    bad[6] ^= 0x01
    decoder.feed(b"\x00\x01" + bytes(bad) + good)
    events = drain(decoder)
    assert [type(e) for e in events] == [Garbage, BadCrc, Garbage, Frame]
    assert events[0].raw == b"\x00\x01"  # type: ignore[attr-defined]
    assert events[1].raw == bytes(bad)  # type: ignore[attr-defined]
    assert events[2].raw == bytes(bad[1:])  # type: ignore[attr-defined]
    assert events[3] == UNLOCK
    assert (decoder.frames, decoder.errors) == (1, 3)


def test_bad_length_drops_only_sof() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\xa5\xfb")
    with pytest.raises(BadLength) as info:
        decoder.next_event()
    assert info.value.raw == b"\xa5\xfb"
    assert decoder.buffered == 1


def test_expire_drops_partial_frame() -> None:
    decoder = FrameDecoder()
    decoder.expire()  # nothing buffered: nothing happens
    decoder.feed(encode(UNLOCK)[:5])
    assert decoder.next_event() is NEED_DATA
    with pytest.raises(TruncatedFrame) as info:
        decoder.expire()
    assert info.value.raw == encode(UNLOCK)[:5]
    assert decoder.buffered == 0
    decoder.expire()
    decoder.feed(encode(UNLOCK))
    assert decoder.next_event() == UNLOCK


def test_feed_eof_is_expire() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\xa5")
    assert decoder.next_event() is NEED_DATA
    with pytest.raises(TruncatedFrame):
        decoder.feed_eof()


def test_expire_before_draining_is_a_local_error() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode(UNLOCK))
    with pytest.raises(LocalProtocolError):
        decoder.expire()
    assert decoder.next_event() == UNLOCK  # nothing was lost


def test_overflow_drops_oldest_as_garbage() -> None:
    decoder = FrameDecoder(max_buffer=MAX_FRAME)
    frame = encode(Frame(address=1, seq=1, message=GetStates()))
    decoder.feed(b"\x00" * 1000 + frame)
    assert decoder.buffered == MAX_FRAME
    events = drain(decoder)
    assert isinstance(events[0], Garbage)
    assert events[-1] == Frame(address=1, seq=1, message=GetStates())
    assert len(events[0].raw) <= MAX_FRAME  # type: ignore[attr-defined]  # report is bounded


def test_max_buffer_must_hold_a_frame() -> None:
    with pytest.raises(LocalProtocolError):
        FrameDecoder(max_buffer=MAX_FRAME - 1)


def test_need_data_is_a_returned_sentinel() -> None:
    assert repr(NEED_DATA) == "NEED_DATA"
    assert FrameDecoder().next_event() is NEED_DATA


# ------------------------------------------------------------------ surface and imports


def test_strategies_cover_every_message_type() -> None:
    concrete = {
        name for name in firmware_protocol.messages.__all__
        if name not in {"Message", "Request", "Reply", "Frame", "BoardEvent", "TagReport",
                        "PartResult"}
    }
    assert concrete == set(strategies.MESSAGES)


def test_public_names_are_exported() -> None:
    for name in firmware_protocol.__all__:
        assert hasattr(firmware_protocol, name), name
    for name in ("encode", "decode_frame", "FrameDecoder", "NEED_DATA", "crc16", "Unlock",
                 "Command", "BadCrc"):
        assert name in firmware_protocol.__all__


PACKAGE = Path(firmware_protocol.__file__).resolve().parent
IO_MODULES = {"socket", "serial", "threading", "asyncio", "time", "sqlite3"}


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "cli.py":  # the command-line face is the I/O edge
            continue
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        names.append(".".join(parts))
    return names


def test_no_module_imports_io_directly() -> None:
    offenders = []
    for name in _modules():
        path = PACKAGE.parent / Path(*name.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = {node.module.split(".")[0]}
            else:
                continue
            offenders += [f"{name} imports {m}" for m in found & IO_MODULES]
    assert offenders == []


def test_importing_the_package_loads_no_io_module() -> None:
    script = (
        "import importlib, sys\nbefore = set(sys.modules)\n"
        f"for n in {_modules()!r}: importlib.import_module(n)\n"
        f"print(sorted((set(sys.modules) - before) & set({sorted(IO_MODULES)!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"


def test_package_all_covers_every_submodule_all() -> None:
    from firmware_protocol import codec, const, crc, errors, messages, payloads

    for module in (codec, const, crc, errors, messages, payloads):
        assert set(module.__all__) <= set(firmware_protocol.__all__), module.__name__
