"""Numbers of the lendbox controller-board protocol (see SPEC.md): codes, limits, timing."""

from __future__ import annotations

import enum

__all__ = [
    "SOF",
    "BROADCAST",
    "MIN_ADDRESS",
    "MAX_ADDRESS",
    "MAX_PAYLOAD",
    "HEADER_SIZE",
    "CRC_SIZE",
    "MAX_FRAME",
    "REPLY_BIT",
    "PROTOCOL_VERSION",
    "UID_SIZE",
    "SERIAL_SIZE",
    "MAX_TAGS_PER_PAGE",
    "MAX_EVENTS_PER_REPLY",
    "EVENT_RING_SIZE",
    "UNLOCK_CACHE_SIZE",
    "Timing",
    "Command",
    "ErrorCode",
    "EventType",
    "DoorFlags",
    "UnlockOutcome",
    "PartKind",
    "PartStatus",
    "Capability",
]

SOF = 0xA5
BROADCAST = 0xFF
MIN_ADDRESS = 0x01
MAX_ADDRESS = 0xF7
MAX_PAYLOAD = 250
HEADER_SIZE = 5  # SOF LEN ADDR SEQ CMD
CRC_SIZE = 2
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
REPLY_BIT = 0x80
PROTOCOL_VERSION = (1, 0)
UID_SIZE = 8
SERIAL_SIZE = 12
MAX_TAGS_PER_PAGE = 24
MAX_EVENTS_PER_REPLY = 24
EVENT_RING_SIZE = 256
UNLOCK_CACHE_SIZE = 16


class Timing:
    """Timing rules of SPEC.md §4, in milliseconds."""

    RESPONSE_TIMEOUT_MS = 50  # plain commands: request end → reply start
    UNLOCK_MARGIN_MS = 150  # unlock: pulse time + this
    INVENTORY_TIMEOUT_MS = 1500  # a new inventory round (page 0)
    TAG_COMMAND_TIMEOUT_MS = 250  # read blocks, write AFI, set EAS
    SELF_TEST_TIMEOUT_MS = 3000
    INTER_BYTE_GAP_MS = 5  # a longer silence inside a frame truncates it
    TURNAROUND_MS = 1  # minimum silence between a reply and the next request
    RETRIES = 2  # re-sends of the identical frame after a timeout or a bad reply


class Command(enum.IntEnum):
    IDENTIFY = 0x01
    GET_STATES = 0x02
    UNLOCK = 0x03
    READ_EVENTS = 0x04
    INVENTORY = 0x05
    READ_BLOCKS = 0x06
    WRITE_AFI = 0x07
    SET_EAS = 0x08
    ANTENNA_DIAG = 0x09
    GET_COUNTERS = 0x0A
    SELF_TEST = 0x0B
    SET_ADDRESS = 0x0C
    NAK = 0xFF  # reply-only: the request was refused


class ErrorCode(enum.IntEnum):
    UNKNOWN_COMMAND = 0x01
    BAD_PAYLOAD = 0x02
    BAD_INDEX = 0x03  # lock or antenna number out of range
    BUSY = 0x04
    TAG_NOT_FOUND = 0x05
    TAG_WRITE_FAILED = 0x06
    NO_INVENTORY = 0x07  # page > 0 asked with no stored inventory, or page out of range
    ANTENNA_FAULT = 0x08
    HARDWARE_FAULT = 0x09
    UNSUPPORTED = 0x0A


class EventType(enum.IntEnum):
    DOOR_OPENED = 0x01
    DOOR_CLOSED = 0x02
    LOCK_JAMMED = 0x03
    DOOR_FORCED = 0x04  # opened without an unlock pulse
    DOOR_HELD_OPEN = 0x05  # open longer than the board's hold-open limit
    TAMPER = 0x06
    POWER_LOST = 0x07
    POWER_RESTORED = 0x08
    UNLOCKED = 0x09  # a pulse was given


class DoorFlags(enum.IntFlag):
    NONE = 0
    DOOR_OPEN = 0x01
    LOCK_RELEASED = 0x02  # bolt retracted (during/just after a pulse)
    JAMMED = 0x04
    FORCED = 0x08
    HELD_OPEN = 0x10


class UnlockOutcome(enum.IntEnum):
    PULSED = 0x00
    JAMMED = 0x01  # pulse given, bolt feedback never moved


class PartKind(enum.IntEnum):
    BOARD = 0x00
    LOCK = 0x01
    DOOR_SENSOR = 0x02
    ANTENNA = 0x03
    MEMORY = 0x04
    POWER = 0x05


class PartStatus(enum.IntEnum):
    OK = 0x00
    OPEN_CIRCUIT = 0x01
    SHORT_CIRCUIT = 0x02
    DETUNED = 0x03
    NOISY = 0x04
    NO_RESPONSE = 0x05
    FAULT = 0x06


class Capability(enum.IntFlag):
    NONE = 0
    EVENT_RING = 0x0001
    RFID = 0x0002
    ANTENNA_DIAG = 0x0004
    EAS = 0x0008
    SELF_TEST = 0x0010
    ITEM_SENSORS = 0x0020
