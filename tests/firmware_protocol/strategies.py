"""Hypothesis strategies for every message of the lendbox board protocol, for reuse by the
codec, emulator and driver tests. Each draws only messages the constructors accept, across
their whole ranges (limits included), so a failure points at the codec, not the strategy."""

from __future__ import annotations

from hypothesis import strategies as st

from firmware_protocol.const import (
    BROADCAST,
    MAX_ADDRESS,
    MAX_EVENTS_PER_REPLY,
    MAX_TAGS_PER_PAGE,
    MIN_ADDRESS,
    SERIAL_SIZE,
    UID_SIZE,
    Capability,
    Command,
    DoorFlags,
    ErrorCode,
    EventType,
    PartKind,
    PartStatus,
    UnlockOutcome,
)
from firmware_protocol.messages import (
    Ack,
    AntennaDiag,
    AntennaDiagReply,
    BoardEvent,
    CountersReply,
    EventsReply,
    Frame,
    GetCounters,
    GetStates,
    Identify,
    IdentifyReply,
    Inventory,
    InventoryReply,
    Message,
    Nak,
    PartResult,
    ReadBlocks,
    ReadBlocksReply,
    ReadEvents,
    Reply,
    SelfTest,
    SelfTestReply,
    SetAddress,
    SetEas,
    StatesReply,
    TagReport,
    Unlock,
    UnlockReply,
    WriteAfi,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
i8 = st.integers(-128, 127)
index = st.integers(1, 0xFF)  # locks and antennas count from 1
uids = st.binary(min_size=UID_SIZE, max_size=UID_SIZE)
board_addresses = st.integers(MIN_ADDRESS, MAX_ADDRESS)
request_addresses = board_addresses | st.just(BROADCAST)
serial_chars = st.characters(min_codepoint=1, max_codepoint=0x7F)
serials = st.text(serial_chars, min_size=1, max_size=SERIAL_SIZE)
door_flags = st.integers(0, 0x1F).map(DoorFlags)
capabilities = u16.map(Capability)

identify = st.builds(Identify)
get_states = st.builds(GetStates)
unlock = st.builds(Unlock, lock=index, pulse_ms=st.integers(1, 0xFFFF), op_id=u16)
read_events = st.builds(ReadEvents, cursor=u32,
                        max_events=st.integers(1, MAX_EVENTS_PER_REPLY))
inventory = st.builds(Inventory, antenna=index, page=u8, page_size=st.integers(1, 24))
read_blocks = st.builds(ReadBlocks, antenna=index, uid=uids, first_block=u8,
                        count=st.integers(1, 32))
write_afi = st.builds(WriteAfi, antenna=index, uid=uids, afi=u8)
set_eas = st.builds(SetEas, antenna=index, uid=uids, enabled=st.booleans())
antenna_diag = st.builds(AntennaDiag, antenna=index)
get_counters = st.builds(GetCounters)
self_test = st.builds(SelfTest)
set_address = st.builds(SetAddress, serial=serials, new_address=board_addresses)

identify_reply = st.builds(
    IdentifyReply,
    protocol_version=st.tuples(u8, u8),
    firmware_version=st.tuples(u8, u8, u8),
    serial=st.text(serial_chars, max_size=SERIAL_SIZE),
    locks=u8,
    sensors=u8,
    antennas=u8,
    capabilities=capabilities,
)
states_reply = st.builds(StatesReply, doors=st.lists(door_flags, max_size=248).map(tuple))
unlock_reply = st.builds(UnlockReply, lock=index, op_id=u16,
                         outcome=st.sampled_from(UnlockOutcome), door_open=st.booleans())
board_events = st.builds(BoardEvent, seq=u32, kind=st.sampled_from(EventType), lock=u8,
                         uptime_ms=u32)
events_reply = st.builds(EventsReply, oldest_seq=u32, next_seq=u32,
                         events=st.lists(board_events, max_size=MAX_EVENTS_PER_REPLY).map(tuple))
tag_reports = st.builds(TagReport, uid=uids, dsfid=u8, rssi=i8)
inventory_reply = st.builds(InventoryReply, antenna=index, page=u8, pages=u8, total_tags=u16,
                            tags=st.lists(tag_reports, max_size=MAX_TAGS_PER_PAGE).map(tuple))


@st.composite
def read_blocks_reply(draw: st.DrawFn) -> ReadBlocksReply:
    block_size = draw(st.integers(1, 32))
    count = draw(st.integers(0, 236 // block_size))
    return ReadBlocksReply(uid=draw(uids), first_block=draw(u8), block_size=block_size,
                           data=draw(st.binary(min_size=count * block_size,
                                               max_size=count * block_size)))


ack = st.builds(Ack, command=st.sampled_from(
    [Command.WRITE_AFI, Command.SET_EAS, Command.SET_ADDRESS]))
antenna_diag_reply = st.builds(AntennaDiagReply, antenna=index,
                               reflected_permille=st.integers(0, 1000), noise_floor_dbm=i8)
counters_reply = st.builds(CountersReply, uptime_s=u32, frames_ok=u32, crc_errors=u32,
                           retransmissions=u32, power_cycles=u32,
                           unlocks=st.lists(u32, max_size=57).map(tuple))
part_results = st.builds(PartResult, part=st.sampled_from(PartKind), index=u8,
                         status=st.sampled_from(PartStatus))
self_test_reply = st.builds(SelfTestReply,
                            results=st.lists(part_results, max_size=83).map(tuple))
nak = st.builds(Nak, command=u8, error=st.sampled_from(ErrorCode))

REQUESTS: dict[str, st.SearchStrategy[Message]] = {
    "Identify": identify, "GetStates": get_states, "Unlock": unlock,
    "ReadEvents": read_events, "Inventory": inventory, "ReadBlocks": read_blocks,
    "WriteAfi": write_afi, "SetEas": set_eas, "AntennaDiag": antenna_diag,
    "GetCounters": get_counters, "SelfTest": self_test, "SetAddress": set_address,
}
REPLIES: dict[str, st.SearchStrategy[Message]] = {
    "IdentifyReply": identify_reply, "StatesReply": states_reply,
    "UnlockReply": unlock_reply, "EventsReply": events_reply,
    "InventoryReply": inventory_reply, "ReadBlocksReply": read_blocks_reply(),
    "Ack": ack, "AntennaDiagReply": antenna_diag_reply, "CountersReply": counters_reply,
    "SelfTestReply": self_test_reply, "Nak": nak,
}
MESSAGES: dict[str, st.SearchStrategy[Message]] = {**REQUESTS, **REPLIES}

requests = st.one_of(*REQUESTS.values())
replies = st.one_of(*REPLIES.values())
messages = st.one_of(*MESSAGES.values())


@st.composite
def frames_of(draw: st.DrawFn, message: st.SearchStrategy[Message] = messages) -> Frame:
    """A frame around ``message``: replies from a board address, requests to any address."""
    m = draw(message)
    address = draw(board_addresses if isinstance(m, Reply) else request_addresses)
    return Frame(address=address, seq=draw(u8), message=m)


frames = frames_of()
