"""The board firmware rules of SPEC.md, sans-IO: frames in, frames out, fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocol.codec import FrameDecoder
from firmware_protocol.const import (
    BROADCAST,
    DoorFlags,
    ErrorCode,
    EventType,
    PartKind,
    PartStatus,
    UnlockOutcome,
)
from firmware_protocol.crc import crc16
from firmware_protocol.errors import FrameError
from firmware_protocol.iso28560 import decode_tag
from firmware_protocol.messages import (
    AntennaDiag,
    CountersReply,
    Frame,
    GetCounters,
    GetStates,
    Identify,
    Inventory,
    Nak,
    ReadBlocks,
    ReadEvents,
    Request,
    SelfTest,
    SetAddress,
    SetEas,
    Unlock,
    WriteAfi,
)
from simulator import BoardEmulator, CabinetModel, load_config
from simulator.config import CabinetConfig

from .conftest import CABINETS, FakeClock


class Rig:
    """A model + one board wired like the Simulator does, on a fake clock."""

    def __init__(self, config: CabinetConfig) -> None:
        self.clock = FakeClock()
        self.model = CabinetModel(config, self.clock, sink=self._sink)
        self.board = BoardEmulator(config.boards[0], self.model)
        self.seq = 0

    def _sink(self, board: int, kind: EventType, lock: int, at: float) -> None:
        self.board.record_event(kind, lock, at)

    def frame(self, msg: Request, address: int = 1) -> Frame:
        self.seq = (self.seq + 1) % 256
        return Frame(address=address, seq=self.seq, message=msg)

    def ask(self, msg: Request, address: int = 1):  # -> message or None
        result = self.board.handle(self.frame(msg, address))
        return None if result.reply is None else result.reply.message

    def events(self, cursor: int = 0):
        reply = self.ask(ReadEvents(cursor=cursor))
        return reply


@pytest.fixture
def rig(small_config: CabinetConfig) -> Rig:
    return Rig(small_config)


def _raw_frame(address: int, seq: int, cmd: int, payload: bytes) -> bytes:
    body = bytes((len(payload), address, seq, cmd)) + payload
    crc = crc16(body)
    return b"\xa5" + body + bytes((crc & 0xFF, crc >> 8))


def _decode_error(data: bytes) -> FrameError:
    decoder = FrameDecoder()
    decoder.feed(data)
    try:
        event = decoder.next_event()
    except FrameError as exc:
        return exc
    raise AssertionError(f"expected an error, got {event!r}")


def test_identify_and_address_matching(rig: Rig) -> None:
    reply = rig.ask(Identify())
    assert reply.serial == "LB04T0000001" and reply.locks == 4 and reply.antennas == 4
    assert rig.ask(Identify(), address=2) is None  # another board's request
    assert rig.ask(Identify(), address=BROADCAST) is None  # broadcast: never answered


def test_unknown_command_and_bad_payload_are_nakked(rig: Rig) -> None:
    unknown = rig.board.handle(_decode_error(_raw_frame(1, 7, 0x55, b"")))
    assert unknown.reply.seq == 7
    assert unknown.reply.message == Nak(command=0x55, error=ErrorCode.UNKNOWN_COMMAND)
    bad = rig.board.handle(_decode_error(_raw_frame(1, 8, 0x03, b"\x01")))  # UNLOCK too short
    assert bad.reply.message == Nak(command=0x03, error=ErrorCode.BAD_PAYLOAD)
    other = rig.board.handle(_decode_error(_raw_frame(9, 8, 0x55, b"")))
    assert other.reply is None  # not for us: silent


def test_bad_crc_is_counted_not_answered(rig: Rig) -> None:
    data = bytearray(_raw_frame(1, 1, 0x01, b""))
    data[-1] ^= 0xFF
    assert rig.board.handle(_decode_error(bytes(data))).reply is None
    counters = rig.ask(GetCounters())
    assert counters.crc_errors == 1


def test_identical_frame_is_answered_from_cache_without_executing(rig: Rig) -> None:
    frame = rig.frame(Unlock(lock=2, pulse_ms=200, op_id=1))
    first = rig.board.handle(frame)
    assert first.delay_s >= 0.2  # the board answers after the pulse
    rig.model.close_door(2)
    again = rig.board.handle(frame)
    assert again.retransmission and again.reply == first.reply
    assert not rig.model.doors[2].open  # not pulsed again
    counters = rig.ask(GetCounters())
    assert counters.retransmissions == 1 and counters.unlocks[1] == 1


def test_unlock_op_id_cache_never_pulses_twice(rig: Rig) -> None:
    first = rig.ask(Unlock(lock=2, pulse_ms=100, op_id=77))
    assert first.outcome is UnlockOutcome.PULSED and first.door_open
    rig.model.close_door(2)
    second = rig.ask(Unlock(lock=2, pulse_ms=100, op_id=77))  # new seq, same op_id
    assert second == first and not rig.model.doors[2].open
    for op in range(100, 116):  # push op 77 out of the 16-entry cache
        rig.ask(Unlock(lock=4, pulse_ms=1, op_id=op))
    rig.ask(Unlock(lock=2, pulse_ms=100, op_id=77))
    assert rig.model.doors[2].open
    assert rig.ask(GetCounters()).unlocks[1] == 2


def test_unlock_bad_lock_is_nakked(rig: Rig) -> None:
    assert rig.ask(Unlock(lock=9, pulse_ms=10, op_id=1)) == Nak(command=0x03,
                                                                error=ErrorCode.BAD_INDEX)


def test_event_ring_cursor_acknowledges(rig: Rig) -> None:
    rig.ask(Unlock(lock=2, pulse_ms=10, op_id=1))
    rig.model.close_door(2)
    reply = rig.events(0)
    kinds = [e.kind for e in reply.events]
    assert kinds == [EventType.UNLOCKED, EventType.DOOR_OPENED, EventType.DOOR_CLOSED]
    assert [e.seq for e in reply.events] == [0, 1, 2] and reply.next_seq == 3
    again = rig.events(0)  # not acknowledged yet: the same events again
    assert again.events == reply.events
    acked = rig.events(2)
    assert acked.oldest_seq == 2 and [e.seq for e in acked.events] == [2]
    assert rig.events(3).events == ()


def test_event_ring_overflow_shows_as_oldest_beyond_cursor(rig: Rig) -> None:
    for _ in range(150):
        rig.model.force_door(4)
        rig.model.close_door(4)  # forced + opened + closed = 3 events each
    reply = rig.events(0)
    assert reply.next_seq == 450 and reply.oldest_seq == 450 - 256
    assert reply.oldest_seq > 0  # the host sees 194 events were lost
    assert reply.events[0].seq == reply.oldest_seq and len(reply.events) == 24


def test_inventory_paging_and_no_inventory(rig: Rig) -> None:
    assert rig.ask(Inventory(antenna=1, page=1)) == Nak(command=0x05,
                                                        error=ErrorCode.NO_INVENTORY)
    result = rig.board.handle(rig.frame(Inventory(antenna=1, page=0)))
    first = result.reply.message
    assert first.total_tags == 30 and first.pages == 2 and len(first.tags) == 24
    assert 0.15 < result.air_s < 0.5 and result.delay_s >= result.air_s
    second = rig.ask(Inventory(antenna=1, page=1))
    assert len(second.tags) == 6
    uids = {t.uid for t in first.tags + second.tags}
    assert uids == {i.uid for i in rig.model.items_in_field(1, 1)}
    assert rig.ask(Inventory(antenna=1, page=2)).error is ErrorCode.NO_INVENTORY
    assert rig.ask(Inventory(antenna=9)).error is ErrorCode.BAD_INDEX
    empty = rig.ask(Inventory(antenna=4))
    assert empty.total_tags == 0 and empty.pages == 1 and empty.tags == ()


def test_small_pages_cover_the_same_round_in_the_same_order(rig: Rig) -> None:
    full = rig.board.handle(rig.frame(Inventory(antenna=1, page=0))).reply.message
    full_order = list(full.tags) + list(rig.ask(Inventory(antenna=1, page=1)).tags)
    small = [rig.ask(Inventory(antenna=1, page=k, page_size=4)) for k in range(1, 8)]
    assert all(p.pages == 8 and p.total_tags == 30 for p in small)
    # page 0 in small pages re-runs the round; pages 1.. re-read the stored one
    assert [t for p in small for t in p.tags] == full_order[4:]
    assert rig.ask(Inventory(antenna=1, page=8, page_size=4)).error is ErrorCode.NO_INVENTORY


def test_read_blocks_serves_iso28560_memory(rig: Rig) -> None:
    item = rig.model.items_in_field(1, 2)[0]
    reply = rig.ask(ReadBlocks(antenna=2, uid=item.uid, first_block=0, count=28))
    assert reply.block_size == 4 and reply.data == item.memory
    data = decode_tag(reply.data, item.dsfid)
    assert data.primary_item_id == item.item_id and data.owner_library == item.owner_library
    assert rig.ask(ReadBlocks(antenna=1, uid=item.uid, first_block=0, count=1)).error \
        is ErrorCode.TAG_NOT_FOUND  # it is not in door 1's field


def test_write_afi_and_eas_change_the_tag(rig: Rig) -> None:
    item = rig.model.items_in_field(1, 2)[0]
    assert rig.ask(WriteAfi(antenna=2, uid=item.uid, afi=0xC2)).command == 0x07
    assert rig.ask(SetEas(antenna=2, uid=item.uid, enabled=False)).command == 0x08
    assert item.afi == 0xC2 and item.eas is False


def test_power_cut_keeps_events_and_loses_ram(rig: Rig) -> None:
    rig.ask(Unlock(lock=2, pulse_ms=10, op_id=5))
    rig.ask(Inventory(antenna=1))
    rig.board.power_cut()
    assert rig.ask(Identify()) is None  # no power, no answer
    rig.model.close_door(2)  # unseen while cut
    rig.clock.advance(5)
    rig.board.power_restore()
    counters = rig.ask(GetCounters())
    assert counters.power_cycles == 1 and counters.unlocks[1] == 1 and counters.frames_ok == 1
    assert rig.ask(Inventory(antenna=1, page=1)).error is ErrorCode.NO_INVENTORY
    kinds = [e.kind for e in rig.events(0).events]
    assert kinds == [EventType.UNLOCKED, EventType.DOOR_OPENED, EventType.POWER_LOST,
                     EventType.POWER_RESTORED, EventType.DOOR_CLOSED]
    rig.model.close_door(2)
    again = rig.ask(Unlock(lock=2, pulse_ms=10, op_id=5))  # op cache was RAM: pulses again
    assert again.outcome is UnlockOutcome.PULSED and rig.model.doors[2].open


def test_held_open_and_forced_flags(rig: Rig) -> None:
    rig.model.force_door(3)
    assert rig.ask(GetStates()).doors[2] == DoorFlags.DOOR_OPEN | DoorFlags.LOCK_RELEASED \
        | DoorFlags.FORCED
    rig.clock.advance(0.5)  # the small cabinet's hold-open limit is 0.3 s
    flags = rig.ask(GetStates()).doors[2]
    assert DoorFlags.HELD_OPEN in flags
    events = rig.events(0).events
    assert [e.kind for e in events] == [EventType.DOOR_FORCED, EventType.DOOR_OPENED,
                                        EventType.DOOR_HELD_OPEN]
    assert events[2].uptime_ms - events[1].uptime_ms == 300


def test_jammed_lock_and_broken_wiring(rig: Rig) -> None:
    rig.model.doors[1].lock_jammed = True
    reply = rig.ask(Unlock(lock=1, pulse_ms=10, op_id=1))
    assert reply.outcome is UnlockOutcome.JAMMED and not reply.door_open
    assert DoorFlags.JAMMED in rig.ask(GetStates()).doors[0]
    rig.model.doors[2].wiring_broken = True
    rig.model.doors[3].sensor_broken = True
    results = {(r.part, r.index): r.status for r in rig.ask(SelfTest()).results}
    assert results[(PartKind.LOCK, 2)] is PartStatus.OPEN_CIRCUIT
    assert results[(PartKind.DOOR_SENSOR, 3)] is PartStatus.OPEN_CIRCUIT
    assert results[(PartKind.LOCK, 1)] is PartStatus.OK


def test_broken_sensor_hides_door_from_board(rig: Rig) -> None:
    rig.model.doors[2].sensor_broken = True
    reply = rig.ask(Unlock(lock=2, pulse_ms=10, op_id=3))
    assert reply.outcome is UnlockOutcome.PULSED and reply.door_open is False
    assert rig.model.doors[2].open  # physically it popped open
    assert [e.kind for e in rig.events(0).events] == [EventType.UNLOCKED]


def test_antenna_faults(rig: Rig) -> None:
    ant = rig.model.antennas[(1, 1)]
    ant.reflected_permille, ant.noise_floor_dbm = 600, -45
    diag = rig.ask(AntennaDiag(antenna=1))
    assert diag.reflected_permille == 600 and diag.noise_floor_dbm == -45
    assert rig.ask(Inventory(antenna=1)).total_tags < 30  # weak tags lost in the noise
    results = {(r.part, r.index): r.status for r in rig.ask(SelfTest()).results}
    assert results[(PartKind.ANTENNA, 1)] is PartStatus.DETUNED


def test_unreadable_and_detuned_tags(rig: Rig) -> None:
    items = rig.model.items_in_field(1, 1)
    items[0].unreadable = True
    items[1].miss_rate = 0.5
    seen = []
    for _ in range(20):
        reply = rig.ask(Inventory(antenna=1))
        seen.append(reply.total_tags)
    assert max(seen) == 29 and min(seen) == 28  # #0 never, #1 only sometimes


def test_set_address_by_serial(rig: Rig) -> None:
    assert rig.ask(SetAddress(serial="NOT-MINE", new_address=5)).error is ErrorCode.BAD_PAYLOAD
    result = rig.board.handle(rig.frame(SetAddress(serial="LB04T0000001", new_address=5)))
    assert result.reply.address == 5  # ACK sent from the new address
    assert rig.ask(Identify(), address=1) is None and rig.ask(Identify(), address=5) is not None
    rig.ask(SetAddress(serial="LB04T0000001", new_address=7), address=BROADCAST)
    assert rig.board.address == 7


_requests = st.one_of(
    st.builds(Identify), st.builds(GetStates), st.builds(GetCounters), st.builds(SelfTest),
    st.builds(Unlock, lock=st.integers(1, 6), pulse_ms=st.integers(1, 500),
              op_id=st.integers(0, 40)),
    st.builds(ReadEvents, cursor=st.integers(0, 40), max_events=st.integers(1, 24)),
    st.builds(Inventory, antenna=st.integers(1, 6), page=st.integers(0, 3)),
    st.builds(AntennaDiag, antenna=st.integers(1, 6)),
    st.builds(ReadBlocks, antenna=st.integers(1, 5), uid=st.binary(min_size=8, max_size=8),
              first_block=st.integers(0, 40), count=st.integers(1, 32)),
    st.builds(WriteAfi, antenna=st.integers(1, 5), uid=st.binary(min_size=8, max_size=8),
              afi=st.integers(0, 255)),
)
_actions = st.lists(st.one_of(
    st.tuples(st.just("req"), _requests, st.sampled_from([1, 1, 1, 2, BROADCAST]),
              st.integers(0, 255)),
    st.tuples(st.just("phys"), st.sampled_from(["open", "close", "force", "cut", "restore",
                                                 "tick"]), st.integers(1, 4), st.just(0)),
), max_size=40)


_SMALL = load_config(CABINETS / "small.toml")


@settings(max_examples=150)
@given(actions=_actions)
def test_random_sequences_never_crash_and_answer_once(actions: list) -> None:
    rig = Rig(_SMALL)
    for kind, what, where, seq in actions:
        if kind == "phys":
            door = rig.model.doors[where]
            if what == "open" and not door.latched:
                rig.model.open_door(where)
            elif what == "close":
                rig.model.close_door(where)
            elif what == "force":
                rig.model.force_door(where)
            elif what == "cut":
                rig.board.power_cut()
            elif what == "restore":
                rig.board.power_restore()
            else:
                rig.clock.advance(0.2)
            continue
        frame = Frame(address=where, seq=seq, message=what)
        result = rig.board.handle(frame)
        if where != rig.board.address or not rig.board.powered:
            assert result.reply is None
            continue
        assert result.reply is not None and result.reply.seq == seq
        assert result.reply.address == rig.board.address
        reply = result.reply.message
        assert isinstance(reply, Nak) or reply.COMMAND == what.COMMAND
        assert result.delay_s >= 0
    # the ring never lies: seqs strictly increase, oldest ≤ next
    ring = list(rig.board.ring)
    assert all(a.seq + 1 == b.seq for a, b in zip(ring, ring[1:], strict=False))
    assert rig.board.oldest_seq <= rig.board.next_seq


def test_counters_frames_ok(rig: Rig) -> None:
    rig.ask(Identify())
    rig.ask(Identify(), address=3)
    reply = rig.ask(GetCounters())
    assert isinstance(reply, CountersReply) and reply.frames_ok == 2
