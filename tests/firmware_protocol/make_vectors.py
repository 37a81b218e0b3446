"""Writes firmware_protocol/vectors/*.json — run by hand when adding vectors, never by tests.

Frames here are laid out byte by byte from SPEC.md §6 and checked with ``binascii.crc_hqx``,
not with our codec, and every expectation is written by hand: the committed JSON is then an
independent reference that the codec is tested against (tests/firmware_protocol/test_vectors.py).
Review the diff of the JSON before committing it.

    .venv/bin/python tests/firmware_protocol/make_vectors.py
"""

from __future__ import annotations

import json
import struct
from binascii import crc_hqx
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "firmware_protocol" / "vectors"
UID1 = "e004010012345678"
UID2 = "e0040150aabbccdd"


def frame(addr: int, seq: int, cmd: int, payload: bytes | str = b"", *, length: int | None = None,
          crc_xor: int = 0) -> bytes:
    """SOF LEN ADDR SEQ CMD PAYLOAD CRC(lo, hi); ``length``/``crc_xor`` forge broken frames."""
    p = bytes.fromhex(payload) if isinstance(payload, str) else payload
    body = bytes([len(p) if length is None else length, addr, seq, cmd]) + p
    crc = crc_hqx(body, 0xFFFF) ^ crc_xor
    return b"\xa5" + body + bytes([crc & 0xFF, crc >> 8])


def j(addr: int, seq: int, cmd: str, reply: bool, /, **message: Any) -> dict[str, Any]:
    return {"address": addr, "seq": seq, "command": cmd, "reply": reply, "message": message}


def v(name: str, description: str, data: bytes, frames: list[dict[str, Any]],
      errors: list[str] | None = None) -> dict[str, Any]:
    expect: dict[str, Any] = {}
    if errors is not None:
        expect["errors"] = errors
    expect["frames"] = frames
    return {"name": name, "description": description, "hex": data.hex(" "), "expect": expect}


def serial(text: str) -> str:
    return text.encode("ascii").ljust(12, b"\0").hex()


# ------------------------------------------------------------------ requests
UNLOCK = frame(0x01, 0x07, 0x03, "02 f401 3412")
REQUESTS = [
    v("identify", "IDENTIFY to board 1, seq 0: no payload.",
      frame(0x01, 0x00, 0x01), [j(1, 0, "IDENTIFY", False)]),
    v("get-states", "GET_STATES to board 3, seq 0x10.",
      frame(0x03, 0x10, 0x02), [j(3, 16, "GET_STATES", False)]),
    v("unlock", "UNLOCK lock 2 for 500 ms (0x01F4), op_id 0x1234.",
      UNLOCK, [j(1, 7, "UNLOCK", False, lock=2, pulse_ms=500, op_id=0x1234)]),
    v("unlock-limits", "UNLOCK with the extreme values: lock 255, pulse 65535 ms, op_id 0.",
      frame(0xF7, 0xFF, 0x03, "ff ffff 0000"),
      [j(0xF7, 255, "UNLOCK", False, lock=255, pulse_ms=65535, op_id=0)]),
    v("read-events", "READ_EVENTS: acknowledge everything below 0x12345678, at most 24 events.",
      frame(0x02, 0x21, 0x04, "78563412 18"),
      [j(2, 0x21, "READ_EVENTS", False, cursor=0x12345678, max_events=24)]),
    v("read-events-first", "READ_EVENTS from cursor 0, one event at a time.",
      frame(0x01, 0x01, 0x04, "00000000 01"),
      [j(1, 1, "READ_EVENTS", False, cursor=0, max_events=1)]),
    v("inventory-new-round", "INVENTORY antenna 1 page 0: run a new round.",
      frame(0x01, 0x30, 0x05, "01 00"), [j(1, 0x30, "INVENTORY", False, antenna=1, page=0, page_size=24)]),
    v("inventory-page", "INVENTORY antenna 2 page 3 of the stored round.",
      frame(0x01, 0x31, 0x05, "02 03"), [j(1, 0x31, "INVENTORY", False, antenna=2, page=3, page_size=24)]),
    v("inventory-small-pages", "INVENTORY antenna 1 page 2 in pages of 4 tags (noisy line).",
      frame(0x01, 0x32, 0x05, "01 02 04"),
      [j(1, 0x32, "INVENTORY", False, antenna=1, page=2, page_size=4)]),
    v("read-blocks", "READ_BLOCKS antenna 1, uid E0 04 01 00 12 34 56 78 (MSB first), blocks 0..7.",
      frame(0x01, 0x40, 0x06, f"01 {UID1} 00 08"),
      [j(1, 0x40, "READ_BLOCKS", False, antenna=1, uid=UID1, first_block=0, count=8)]),
    v("write-afi", "WRITE_AFI 0xC2 (checked out) to a tag on antenna 1.",
      frame(0x01, 0x41, 0x07, f"01 {UID1} c2"),
      [j(1, 0x41, "WRITE_AFI", False, antenna=1, uid=UID1, afi=0xC2)]),
    v("set-eas-on", "SET_EAS enabled (1) on antenna 4.",
      frame(0x01, 0x42, 0x08, f"04 {UID2} 01"),
      [j(1, 0x42, "SET_EAS", False, antenna=4, uid=UID2, enabled=True)]),
    v("set-eas-off", "SET_EAS disabled (0).",
      frame(0x01, 0x43, 0x08, f"01 {UID2} 00"),
      [j(1, 0x43, "SET_EAS", False, antenna=1, uid=UID2, enabled=False)]),
    v("antenna-diag", "ANTENNA_DIAG antenna 3.",
      frame(0x05, 0x50, 0x09, "03"), [j(5, 0x50, "ANTENNA_DIAG", False, antenna=3)]),
    v("get-counters", "GET_COUNTERS.", frame(0x01, 0x60, 0x0A), [j(1, 0x60, "GET_COUNTERS", False)]),
    v("self-test", "SELF_TEST.", frame(0x01, 0x61, 0x0B), [j(1, 0x61, "SELF_TEST", False)]),
    v("set-address-broadcast", "SET_ADDRESS sent to broadcast: the board with serial "
      "LB2403000117 takes address 5; every other board ignores it.",
      frame(0xFF, 0x70, 0x0C, serial("LB2403000117") + "05"),
      [j(0xFF, 0x70, "SET_ADDRESS", False, serial="LB2403000117", new_address=5)]),
    v("set-address-short-serial", "SET_ADDRESS with a 2-character serial, NUL-padded to 12.",
      frame(0x01, 0x71, 0x0C, serial("A1") + "f7"),
      [j(1, 0x71, "SET_ADDRESS", False, serial="A1", new_address=0xF7)]),
    v("identify-broadcast", "IDENTIFY to broadcast decodes (a board must not answer it).",
      frame(0xFF, 0x00, 0x01), [j(0xFF, 0, "IDENTIFY", False)]),
]

# ------------------------------------------------------------------ replies
EVENTS3 = (struct.pack("<IIB", 100, 103, 3)
           + struct.pack("<IBBI", 100, 0x01, 2, 123456)
           + struct.pack("<IBBI", 101, 0x02, 2, 130000)
           + struct.pack("<IBBI", 102, 0x07, 0, 4000000000))
TAGS24 = b"".join(bytes.fromhex("e0040100000000") + bytes([i, 0, (256 - 40 - i) & 0xFF])
                  for i in range(24))
SELF83 = bytes([83]) + b"".join(bytes([0x01, i + 1, 0x00]) for i in range(83))
REPLIES = [
    v("identify-reply", "IDENTIFY reply: protocol 1.0, firmware 1.2.3, serial LB2403000117, "
      "12 locks, 12 sensors, 4 antennas, capabilities 0x001F.",
      frame(0x01, 0x00, 0x81, "01 00 01 02 03" + serial("LB2403000117") + "0c 0c 04 1f00"),
      [j(1, 0, "IDENTIFY", True, protocol_version=[1, 0], firmware_version=[1, 2, 3],
         serial="LB2403000117", locks=12, sensors=12, antennas=4,
         capabilities=["EVENT_RING", "RFID", "ANTENNA_DIAG", "EAS", "SELF_TEST"])]),
    v("identify-reply-future-capability", "IDENTIFY reply with an empty serial and capability "
      "bit 15, unknown to v1.0: kept, not refused (hosts ignore unknown capability bits).",
      frame(0x02, 0x01, 0x81, "01 00 00 00 01" + serial("") + "02 00 00 0180"),
      [j(2, 1, "IDENTIFY", True, protocol_version=[1, 0], firmware_version=[0, 0, 1],
         serial="", locks=2, sensors=0, antennas=0, capabilities=["EVENT_RING", 32768])]),
    v("states-reply", "GET_STATES reply, 4 doors: closed; open; open+released; "
      "open+jammed+forced.",
      frame(0x01, 0x10, 0x82, "04 00 01 03 0d"),
      [j(1, 16, "GET_STATES", True, doors=[[], ["DOOR_OPEN"], ["DOOR_OPEN", "LOCK_RELEASED"],
                                            ["DOOR_OPEN", "JAMMED", "FORCED"]])]),
    v("states-reply-empty", "GET_STATES reply of a board with no locks.",
      frame(0x01, 0x11, 0x82, "00"), [j(1, 17, "GET_STATES", True, doors=[])]),
    v("unlock-reply", "UNLOCK reply: lock 2 pulsed, op_id 0x1234, door seen open.",
      frame(0x01, 0x07, 0x83, "02 3412 00 01"),
      [j(1, 7, "UNLOCK", True, lock=2, op_id=0x1234, outcome="PULSED", door_open=True)]),
    v("unlock-reply-jammed", "UNLOCK reply: lock 1 jammed, door closed.",
      frame(0x01, 0x08, 0x83, "01 0100 01 00"),
      [j(1, 8, "UNLOCK", True, lock=1, op_id=1, outcome="JAMMED", door_open=False)]),
    v("events-reply", "READ_EVENTS reply: ring holds 100..102, three events (door 2 opened "
      "and closed, board power lost).",
      frame(0x01, 0x21, 0x84, EVENTS3),
      [j(1, 0x21, "READ_EVENTS", True, oldest_seq=100, next_seq=103, events=[
          {"seq": 100, "kind": "DOOR_OPENED", "lock": 2, "uptime_ms": 123456},
          {"seq": 101, "kind": "DOOR_CLOSED", "lock": 2, "uptime_ms": 130000},
          {"seq": 102, "kind": "POWER_LOST", "lock": 0, "uptime_ms": 4000000000}])]),
    v("events-reply-empty", "READ_EVENTS reply with nothing new: oldest = next = 5.",
      frame(0x01, 0x22, 0x84, struct.pack("<IIB", 5, 5, 0)),
      [j(1, 0x22, "READ_EVENTS", True, oldest_seq=5, next_seq=5, events=[])]),
    v("inventory-reply", "INVENTORY reply page 0 of 1 on antenna 1, two tags; rssi is signed "
      "(0xD3 = -45 dBm).",
      frame(0x01, 0x30, 0x85, f"01 00 01 0200 02 {UID1} 00 d3 {UID2} 06 c4"),
      [j(1, 0x30, "INVENTORY", True, antenna=1, page=0, pages=1, total_tags=2, tags=[
          {"uid": UID1, "dsfid": 0, "rssi": -45}, {"uid": UID2, "dsfid": 6, "rssi": -60}])]),
    v("inventory-reply-full-page", "INVENTORY reply page 1 of 3 with 24 tags (LEN 246), "
      "total 60.",
      frame(0x01, 0x32, 0x85, bytes([1, 1, 3, 60, 0, 24]) + TAGS24),
      [j(1, 0x32, "INVENTORY", True, antenna=1, page=1, pages=3, total_tags=60, tags=[
          {"uid": f"e0040100000000{i:02x}", "dsfid": 0, "rssi": -40 - i} for i in range(24)])]),
    v("inventory-reply-none", "INVENTORY reply of a round that saw no tag: page 0 of 1, empty.",
      frame(0x01, 0x33, 0x85, "02 00 01 0000 00"),
      [j(1, 0x33, "INVENTORY", True, antenna=2, page=0, pages=1, total_tags=0, tags=[])]),
    v("read-blocks-reply", "READ_BLOCKS reply: 2 blocks of 4 bytes from block 0.",
      frame(0x01, 0x40, 0x86, f"{UID1} 00 04 02 11000101 31323334"),
      [j(1, 0x40, "READ_BLOCKS", True, uid=UID1, first_block=0, block_size=4,
         data="1100010131323334")]),
    v("ack-write-afi", "Empty reply (ACK) to WRITE_AFI: CMD 0x87, LEN 0.",
      frame(0x01, 0x41, 0x87), [j(1, 0x41, "WRITE_AFI", True)]),
    v("ack-set-eas", "Empty reply (ACK) to SET_EAS: CMD 0x88, LEN 0.",
      frame(0x01, 0x42, 0x88), [j(1, 0x42, "SET_EAS", True)]),
    v("ack-set-address", "Empty reply (ACK) to SET_ADDRESS, sent from the new address 5.",
      frame(0x05, 0x70, 0x8C), [j(5, 0x70, "SET_ADDRESS", True)]),
    v("antenna-diag-reply", "ANTENNA_DIAG reply: antenna 3, 45 permille reflected, "
      "noise floor -72 dBm (0xB8).",
      frame(0x05, 0x50, 0x89, "03 2d00 b8"),
      [j(5, 0x50, "ANTENNA_DIAG", True, antenna=3, reflected_permille=45, noise_floor_dbm=-72)]),
    v("counters-reply", "GET_COUNTERS reply with per-lock unlock counts for 3 locks.",
      frame(0x01, 0x60, 0x8A, struct.pack("<5IB3I", 86400, 10000, 3, 2, 7, 3, 10, 0, 5)),
      [j(1, 0x60, "GET_COUNTERS", True, uptime_s=86400, frames_ok=10000, crc_errors=3,
         retransmissions=2, power_cycles=7, unlocks=[10, 0, 5])]),
    v("self-test-reply", "SELF_TEST reply: board OK, lock 1 OK, antenna 2 detuned.",
      frame(0x01, 0x61, 0x8B, "03 000000 010100 030203"),
      [j(1, 0x61, "SELF_TEST", True, results=[
          {"part": "BOARD", "index": 0, "status": "OK"},
          {"part": "LOCK", "index": 1, "status": "OK"},
          {"part": "ANTENNA", "index": 2, "status": "DETUNED"}])]),
    v("self-test-reply-max", "SELF_TEST reply with 83 results: LEN 250, the largest frame.",
      frame(0x01, 0x62, 0x8B, SELF83),
      [j(1, 0x62, "SELF_TEST", True, results=[
          {"part": "LOCK", "index": i + 1, "status": "OK"} for i in range(83)])]),
    v("nak-bad-index", "NAK of UNLOCK (0x03): BAD_INDEX.",
      frame(0x01, 0x07, 0xFF, "03 03"), [j(1, 7, "NAK", True, command=3, error="BAD_INDEX")]),
    v("nak-unknown-command", "NAK of an unknown command 0x42: UNKNOWN_COMMAND.",
      frame(0x01, 0x09, 0xFF, "42 01"),
      [j(1, 9, "NAK", True, command=0x42, error="UNKNOWN_COMMAND")]),
]

# ------------------------------------------------------------------ invalid single frames
BP, UC = ["BadPayload"], ["UnknownCommand"]
INVALID = [
    v("bad-crc", "The UNLOCK frame with its CRC low byte flipped: BadCrc drops only the SOF, "
      "the remaining 11 bytes hold no SOF and go as one Garbage.",
      frame(0x01, 0x07, 0x03, "02 f401 3412", crc_xor=0x00FF), [], ["BadCrc", "Garbage"]),
    v("bad-crc-payload-bit", "The UNLOCK frame with one payload bit flipped (pulse 0x01F4 → "
      "0x01F5).",
      UNLOCK[:6] + b"\xf5" + UNLOCK[7:], [], ["BadCrc", "Garbage"]),
    v("len-251", "LEN 251 (0xFB) is over the limit: BadLength drops the SOF; the rest is "
      "Garbage.", b"\xa5\xfb\x01\x00\x01\x00\x00", [], ["BadLength", "Garbage"]),
    v("len-255", "LEN 255.", b"\xa5\xff\x01\x00\x01", [], ["BadLength", "Garbage"]),
    v("unknown-request-0x0d", "CMD 0x0D, good CRC: UnknownCommand (a board NAKs it with "
      "UNKNOWN_COMMAND).", frame(0x01, 0x05, 0x0D), [], UC),
    v("unknown-request-0x00", "CMD 0x00 is no command.", frame(0x01, 0x05, 0x00, "00"), [], UC),
    v("unknown-request-0x7f", "CMD 0x7F with a payload.", frame(0x01, 0x05, 0x7F, "0102"), [], UC),
    v("unknown-reply-0x8d", "Reply code 0x8D answers no command.",
      frame(0x01, 0x05, 0x8D), [], UC),
    v("unknown-reply-0x80", "Reply code 0x80 (reply to command 0).",
      frame(0x01, 0x05, 0x80), [], UC),
    v("unlock-short", "UNLOCK payload of 4 bytes (needs 5).",
      frame(0x01, 0x07, 0x03, "02 f401 34"), [], BP),
    v("unlock-long", "UNLOCK payload of 6 bytes.",
      frame(0x01, 0x07, 0x03, "02 f401 3412 00"), [], BP),
    v("identify-with-payload", "IDENTIFY takes no payload.",
      frame(0x01, 0x00, 0x01, "00"), [], BP),
    v("ack-with-payload", "An ACK (0x87) must be empty.", frame(0x01, 0x41, 0x87, "00"), [], BP),
    v("unlock-lock-0", "UNLOCK lock 0: locks count from 1.",
      frame(0x01, 0x07, 0x03, "00 f401 3412"), [], BP),
    v("unlock-pulse-0", "UNLOCK pulse 0 ms.", frame(0x01, 0x07, 0x03, "01 0000 3412"), [], BP),
    v("read-events-max-0", "READ_EVENTS max 0.",
      frame(0x01, 0x01, 0x04, "00000000 00"), [], BP),
    v("read-events-max-25", "READ_EVENTS max 25 (limit 24).",
      frame(0x01, 0x01, 0x04, "00000000 19"), [], BP),
    v("inventory-antenna-0", "INVENTORY antenna 0: antennas count from 1.",
      frame(0x01, 0x30, 0x05, "00 00"), [], BP),
    v("inventory-page-size-0", "INVENTORY page_size 0: pages hold 1..24 tags.",
      frame(0x01, 0x30, 0x05, "01 00 00"), [], BP),
    v("inventory-page-size-25", "INVENTORY page_size 25 (limit 24).",
      frame(0x01, 0x30, 0x05, "01 00 19"), [], BP),
    v("read-blocks-count-33", "READ_BLOCKS count 33 (limit 32).",
      frame(0x01, 0x40, 0x06, f"01 {UID1} 00 21"), [], BP),
    v("set-eas-bool-2", "SET_EAS enabled = 2: a bool is 0 or 1.",
      frame(0x01, 0x42, 0x08, f"01 {UID2} 02"), [], BP),
    v("set-address-non-ascii", "SET_ADDRESS serial with byte 0xC3: not ASCII.",
      frame(0xFF, 0x70, 0x0C, "4c42c3" + "00" * 9 + "05"), [], BP),
    v("set-address-empty-serial", "SET_ADDRESS serial of 12 NULs.",
      frame(0xFF, 0x70, 0x0C, "00" * 12 + "05"), [], BP),
    v("set-address-nul-inside", "SET_ADDRESS serial 'AB\\0CD': NUL before the padding.",
      frame(0xFF, 0x70, 0x0C, "41420043440000000000000005"), [], BP),
    v("set-address-reserved", "SET_ADDRESS new_address 0xF8 is reserved.",
      frame(0xFF, 0x70, 0x0C, serial("LB1") + "f8"), [], BP),
    v("address-0", "A request to address 0x00 (reserved).", frame(0x00, 0x01, 0x01), [], BP),
    v("address-0xf8", "A request to address 0xF8 (reserved).", frame(0xF8, 0x01, 0x01), [], BP),
    v("reply-from-broadcast", "A reply with ADDR 0xFF: boards answer from their own address.",
      frame(0xFF, 0x01, 0x8A, struct.pack("<5IB", 0, 0, 0, 0, 0, 0)), [], BP),
    v("unlock-reply-outcome-2", "UNLOCK reply outcome 2 (only 0 and 1 exist).",
      frame(0x01, 0x07, 0x83, "02 3412 02 01"), [], BP),
    v("unlock-reply-door-open-2", "UNLOCK reply door_open 2.",
      frame(0x01, 0x07, 0x83, "02 3412 00 02"), [], BP),
    v("events-reply-count-mismatch", "READ_EVENTS reply says 2 events but carries 1.",
      frame(0x01, 0x21, 0x84, struct.pack("<IIB", 1, 2, 2) + struct.pack("<IBBI", 1, 1, 1, 0)),
      [], BP),
    v("events-reply-bad-kind", "READ_EVENTS reply with event kind 0x0A (undefined).",
      frame(0x01, 0x21, 0x84, struct.pack("<IIB", 1, 2, 1) + struct.pack("<IBBI", 1, 10, 1, 0)),
      [], BP),
    v("events-reply-short", "READ_EVENTS reply of 8 bytes (header needs 9).",
      frame(0x01, 0x21, 0x84, struct.pack("<II", 1, 2)), [], BP),
    v("inventory-reply-count-25", "INVENTORY reply count 25 (limit 24) with 24 tags' bytes.",
      frame(0x01, 0x32, 0x85, bytes([1, 0, 1, 25, 0, 25]) + TAGS24), [], BP),
    v("states-reply-reserved-bit", "GET_STATES reply with door flag bit 5 (reserved).",
      frame(0x01, 0x10, 0x82, "02 00 20"), [], BP),
    v("states-reply-count-mismatch", "GET_STATES reply count 3 with 2 flag bytes.",
      frame(0x01, 0x10, 0x82, "03 00 01"), [], BP),
    v("states-reply-empty-payload", "GET_STATES reply with no count byte.",
      frame(0x01, 0x10, 0x82), [], BP),
    v("self-test-bad-part", "SELF_TEST reply with part kind 0x06 (undefined).",
      frame(0x01, 0x61, 0x8B, "01 060000"), [], BP),
    v("self-test-bad-status", "SELF_TEST reply with status 0x07 (undefined).",
      frame(0x01, 0x61, 0x8B, "01 010107"), [], BP),
    v("nak-bad-error", "NAK with error code 0x0B (undefined).",
      frame(0x01, 0x07, 0xFF, "03 0b"), [], BP),
    v("nak-short", "NAK with one byte.", frame(0x01, 0x07, 0xFF, "03"), [], BP),
    v("antenna-diag-reply-1001", "ANTENNA_DIAG reply reflected 1001 permille (max 1000).",
      frame(0x05, 0x50, 0x89, "03 e903 b8"), [], BP),
    v("read-blocks-reply-block-size-0", "READ_BLOCKS reply block_size 0.",
      frame(0x01, 0x40, 0x86, f"{UID1} 00 00 00"), [], BP),
    v("read-blocks-reply-partial", "READ_BLOCKS reply: 2 blocks of 4 announced, 7 data bytes.",
      frame(0x01, 0x40, 0x86, f"{UID1} 00 04 02 11000101 313233"), [], BP),
    v("counters-reply-count-mismatch", "GET_COUNTERS reply n = 2 with one counter.",
      frame(0x01, 0x60, 0x8A, struct.pack("<5IB1I", 1, 2, 3, 4, 5, 2, 6)), [], BP),
    v("identify-reply-non-ascii", "IDENTIFY reply serial with byte 0xFF.",
      frame(0x01, 0x00, 0x81, "01 00 01 02 03" + "ff" + "00" * 11 + "0c 0c 04 1f00"), [], BP),
]

# ------------------------------------------------------------------ streams
ACK = frame(0x01, 0x41, 0x87)
STATES = frame(0x01, 0x10, 0x82, "02 00 01")
J_UNLOCK = j(1, 7, "UNLOCK", False, lock=2, pulse_ms=500, op_id=0x1234)
J_ACK = j(1, 0x41, "WRITE_AFI", True)
J_STATES = j(1, 16, "GET_STATES", True, doors=[[], ["DOOR_OPEN"]])
STREAMS = [
    v("empty", "No bytes: no frame, no error.", b"", [], []),
    v("two-frames", "Two frames back to back (a request and its reply as heard on the bus).",
      UNLOCK + frame(0x01, 0x07, 0x83, "02 3412 00 01"),
      [J_UNLOCK, j(1, 7, "UNLOCK", True, lock=2, op_id=0x1234, outcome="PULSED",
                   door_open=True)], []),
    v("garbage-before", "Three bytes of line noise, then a frame.",
      b"\x00\x11\xff" + UNLOCK, [J_UNLOCK], ["Garbage"]),
    v("garbage-between", "Frame, noise, frame.", UNLOCK + b"\x55\x55" + ACK,
      [J_UNLOCK, J_ACK], ["Garbage"]),
    v("garbage-after", "Frame then noise: the noise is reported when scanned.",
      ACK + b"\x00\x00", [J_ACK], ["Garbage"]),
    v("only-garbage", "Noise with no SOF: one Garbage.", b"\x01\x02\x03\x04", [], ["Garbage"]),
    v("false-sof", "A stray A5 03 before a frame: the 10-byte candidate it starts fails its "
      "CRC, the SOF is dropped, 03 is garbage, the real frame is found.",
      b"\xa5\x03" + UNLOCK, [J_UNLOCK], ["BadCrc", "Garbage"]),
    v("false-sof-long", "A stray A5 FE (LEN > 250) before a frame.",
      b"\xa5\xfe" + UNLOCK, [J_UNLOCK], ["BadLength", "Garbage"]),
    v("broken-then-good", "A frame whose LEN was hit (5 → 8) swallows the next frame's first "
      "bytes; its CRC fails, only the SOF is dropped, and the next frame is found inside.",
      frame(0x01, 0x07, 0x03, "02 f401 3412", length=8) + ACK,
      [J_ACK], ["BadCrc", "Garbage"]),
    v("cut-then-good", "A frame cut after 6 bytes, then at once a good frame.",
      UNLOCK[:6] + STATES, [J_STATES], ["BadCrc", "Garbage"]),
    v("bad-crc-then-good", "A frame with a bad CRC, then a good one.",
      frame(0x01, 0x07, 0x03, "02 f401 3412", crc_xor=0x8000) + ACK,
      [J_ACK], ["BadCrc", "Garbage"]),
    v("unknown-then-good", "An unknown command with a good CRC is consumed whole.",
      frame(0x01, 0x05, 0x0D, "a5a5") + ACK, [J_ACK], ["UnknownCommand"]),
    v("bad-payload-then-good", "A bad payload with a good CRC is consumed whole.",
      frame(0x01, 0x07, 0x03, "00 f401 3412") + ACK, [J_ACK], ["BadPayload"]),
    v("truncated-at-end", "A frame, then 6 bytes of the next one; the gap expires.",
      ACK + UNLOCK[:6], [J_ACK], ["TruncatedFrame"]),
    v("sof-only", "A lone SOF, then the gap.", b"\xa5", [], ["TruncatedFrame"]),
    v("stray-a5-hides-frame", "A stray A5 reads the next SOF (0xA5 = 165) as LEN: the decoder "
      "waits for a 172-byte frame, the gap expires and everything buffered is dropped. The "
      "frame is lost; the host's retransmission recovers it.",
      b"\xa5" + UNLOCK, [], ["TruncatedFrame"]),
    v("stray-a5-then-traffic", "As stray-a5-hides-frame, but more traffic follows before the "
      "gap: the 172-byte candidate fails its CRC and the frame inside it is found.",
      b"\xa5" + UNLOCK + b"\x00" * 160,
      [J_UNLOCK], ["BadCrc", "Garbage"]),
    v("frames-with-a5-payload", "Frames whose payload and CRC bytes contain A5 decode "
      "normally: SOF is only looked for between frames.",
      frame(0x01, 0xA5, 0x03, "a5 a5a5 a5a5") + ACK,
      [j(1, 0xA5, "UNLOCK", False, lock=0xA5, pulse_ms=0xA5A5, op_id=0xA5A5), J_ACK], []),
]

FILES = {
    "valid-requests.json": ("Well-formed requests, one or more per command.", REQUESTS),
    "valid-replies.json": ("Well-formed replies, ACKs and NAKs.", REPLIES),
    "invalid.json": ("Single frames a decoder must refuse, with the errors it raises.", INVALID),
    "streams.json": ("Byte streams mixing noise, broken and good frames: resynchronisation.",
                     STREAMS),
}


def main() -> None:
    for name, (description, vectors) in FILES.items():
        doc = {
            "protocol": "lendbox controller-board protocol 1.0",
            "format": 1,
            "description": description + " Feed 'hex' at once, drain, expire(), drain; "
            "compare frames and error names in order (SPEC.md §10).",
            "vectors": vectors,
        }
        text = json.dumps(doc, indent=1, ensure_ascii=True)
        (OUT / name).write_text(text + "\n", encoding="utf-8")
        print(f"{name}: {len(vectors)} vectors")


if __name__ == "__main__":
    main()
