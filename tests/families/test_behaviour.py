"""The same behavioural tests against every device family (issue 2/6, requirement 4).

Each test runs on every cabinet of ``conftest.CABINETS``: one per lock-board family paired
with a reader family (lendbox+lendbox, cn485+rr3036, kerong+feig, modbus+feig) and one
cabinet mixing all six families. Nothing here knows which family it drives: boards are
``ControllerBoard``s, readers ``RfidReader``s, both built from the simulator's hardware
config by ``Hardware.from_dict``.

About ``inferred`` events: polled families (cn485, Kerong, Modbus) keep no event buffer, so
their driver infers what it could not see (``drivers/polling.py``). The scenarios below change
one door between two successful polls, so every transition is *seen*: door open/close events
must never be inferred. The only inferred event allowed is DOOR_FORCED after an unlock whose
confirmation was lost on a faulty line (the driver cannot know that its unlock opened the
door), and that kind is not compared.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.base import Availability
from drivers.board import ControllerBoard, DoorEvent
from drivers.errors import DeviceTimeout, DriverError
from drivers.rfid import RfidReader, inventory_door
from firmware_protocol.const import EventType
from tests.families.conftest import CABINETS, UNLOCK_ATTEMPTS, UNLOCK_TIMEOUT_S, Cabinet, until

ROOT = Path(__file__).resolve().parents[2]
LENDBOX = ROOT / ".venv" / "bin" / "lendbox"
TRANSITIONS = {EventType.DOOR_OPENED: "opened", EventType.DOOR_CLOSED: "closed"}
STEPS = (EventType.UNLOCKED, EventType.DOOR_OPENED, EventType.DOOR_CLOSED)


# ---------------------------------------------------------------- helpers


def retry(call: Callable[[], Any], attempts: int = 60) -> Any:
    """``call()``, asked again while it raises DriverError (a faulty line): the poll or read
    must get through before the scenario goes on."""
    for _ in range(attempts - 1):
        try:
            return call()
        except DriverError:
            continue
    return call()


def poll(board: ControllerBoard) -> list[DoorEvent]:
    """One successful poll: read and acknowledge every pending event."""
    return list(retry(board.poll_events).events)


def seen(cab: Cabinet, board: int, events: list[DoorEvent]) -> list[tuple[int, str]]:
    """The driver's (door, opened|closed) transitions, inferred ones excluded."""
    doors = {cab.hw.door(d).lock: d for d in cab.hw.doors_of(board)}
    return [(doors[e.lock], TRANSITIONS[e.kind]) for e in events
            if e.kind in TRANSITIONS and not e.inferred and e.lock in doors]


def contents(cab: Cabinet, door: int) -> dict[bytes, str]:
    return {i.uid: i.item_id for i in cab.sim.door_items(door)}


def inventory(cab: Cabinet, door: int) -> dict[bytes, str]:
    """The door's books as the cabinet's reader sees them, ISO 28560 data decoded."""
    tags = retry(lambda: inventory_door(cab.hw.reader_of(door), cab.hw.door(door).antenna,
                                        cab.hw.tag_cache), attempts=5)
    items = cab.sim.items
    for t in tags:
        assert t.data is not None and not t.error, (door, t)
        assert t.data.owner_library == items[t.data.primary_item_id].owner_library
    assert len({t.uid for t in tags}) == len(tags)
    return {t.uid: t.item_id for t in tags}  # type: ignore[misc]


def unlock(cab: Cabinet, door: int, op_id: int | None = None) -> bool | None:
    """Unlock ``door`` as the kiosk does: on ``DeviceTimeout`` ask again only with the same
    op_id (a board or driver with unlock identity answers it from memory). Returns the door
    sensor after the pulse, or None when no attempt was confirmed."""
    spec = cab.hw.door(door)
    board = cab.hw.boards[spec.board]
    for _ in range(8):
        try:
            result = board.unlock(spec.lock, op_id=op_id)
        except DeviceTimeout as exc:
            op_id = op_id if op_id is not None else _op_id_of(exc)
            if op_id is None:
                return None
            continue
        return result.door_open
    return None


def _op_id_of(exc: DeviceTimeout) -> int | None:
    import re

    match = re.search(r"op_id[ =](\d+)", str(exc))
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------- the behaviours


def test_every_device_is_a_family_neutral_driver(cab: Cabinet) -> None:
    for board in cab.hw.boards.values():
        assert isinstance(board, ControllerBoard)
    for door in cab.doors:
        assert isinstance(cab.hw.reader_of(door), RfidReader)


def test_unlock_open_close_each_event_exactly_once(cab: Cabinet) -> None:
    for address, sprung, pulled in cab.door_pairs():
        board = cab.hw.boards[address]
        events = poll(board)  # a polled board's first snapshot only sets the baseline
        for door in (sprung, pulled):
            lock = cab.hw.door(door).lock
            assert board.unlock(lock).door_open is cab.sprung(door)
            if not cab.sprung(door):
                cab.sim.open_door(door)  # a person pulls the released door open
            until(lambda: events.extend(poll(board)) or (door, "opened") in
                  seen(cab, address, events), what=f"door {door} opened")
            cab.sim.close_door(door)
            until(lambda: events.extend(poll(board)) or (door, "closed") in
                  seen(cab, address, events), what=f"door {door} closed")
            mine = [e for e in events if e.lock == lock and e.kind in STEPS]
            assert [e.kind for e in mine] == list(STEPS), (cab.name, door, events)
            assert not any(e.inferred for e in mine)
            assert cab.pulse_count(door) == 1
        events.extend(poll(board))  # nothing else turns up later
        assert seen(cab, address, events) == cab.transitions_of(cab.hw.doors_of(address))


class Stream:
    """A consumer of ``board.events()`` in its own thread, as the kiosk runs it."""

    def __init__(self, board: ControllerBoard, poll_interval_s: float = 0.05) -> None:
        self.events: list[DoorEvent] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(board, poll_interval_s),
                                        daemon=True)
        self._thread.start()

    def _run(self, board: ControllerBoard, interval: float) -> None:
        for event in board.events(poll_interval_s=interval, stop=self.stop):
            with self._lock:
                self.events.append(event)

    def snapshot(self) -> list[DoorEvent]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()


def test_people_between_polls_all_appear_in_order_once(cab: Cabinet) -> None:
    """People (and the kiosk's unlocks) change one door per poll interval while a consumer
    thread runs ``board.events()`` at 20 Hz: every transition appears once, in order."""
    for address, a, b in cab.door_pairs():
        board = cab.hw.boards[address]
        poll(board)  # baseline for polled boards, empties our board's ring
        stream = Stream(board)
        try:
            until(lambda: board.status().availability is not Availability.UNAVAILABLE)
            expected: list[tuple[int, str]] = []

            def step(action: Callable[[], object], change: tuple[int, str]) -> None:
                action()
                expected.append(change)
                until(lambda: len(seen(cab, address, stream.snapshot())) >= len(expected),
                      what=f"{change} on board {address}")

            for _ in range(2):
                step(lambda: unlock(cab, a), (a, "opened"))
                step(lambda: (unlock(cab, b), cab.sim.open_door(b)), (b, "opened"))
                step(lambda: cab.sim.close_door(a), (a, "closed"))
                step(lambda: cab.sim.force_door(a), (a, "opened"))  # pried open by a person
                step(lambda: cab.sim.close_door(b), (b, "closed"))
                step(lambda: cab.sim.close_door(a), (a, "closed"))
        finally:
            stream.close()
        events = stream.snapshot()
        assert seen(cab, address, events) == expected
        assert cab.transitions_of(cab.hw.doors_of(address)) == expected
        opened_closed = [e for e in events if e.kind in TRANSITIONS]
        assert not any(e.inferred for e in opened_closed)
        assert len({(e.seq, e.kind) for e in events}) == len(events)  # no event twice


def test_unconfirmed_unlock_is_never_pulsed_twice(cab: Cabinet) -> None:
    """The unlock's reply comes later than the driver waits: DeviceTimeout ("may have
    opened"); our protocol's transport re-sends the identical frame meanwhile. The kiosk then
    asks again with the same op_id. The emulated lock is pulsed exactly once."""
    for address, door, _ in cab.door_pairs():
        board = cab.hw.boards[address]
        lock = cab.hw.door(door).lock
        bus = cab.hw.bus_of(address)
        poll(board)
        family = cab.lock_family(door)
        late_ms = (UNLOCK_TIMEOUT_S[family] * UNLOCK_ATTEMPTS[family] + 0.4) * 1000
        cab.sim.set_link_faults(bus, delay_ms=late_ms)
        op = 40000 + address
        with pytest.raises(DeviceTimeout, match="may have opened"):
            board.unlock(lock, op_id=op)
        cab.sim.set_link_faults(bus)
        until(lambda: cab.pulse_count(door) >= 1, what="the board acted on the unlock")
        try:  # the kiosk's retry: the same operation
            again = board.unlock(lock, op_id=op)
        except DeviceTimeout:
            pass  # "still unconfirmed": no identity on the wire, never re-sent
        else:
            assert again.op_id == op and again.door_open
        until(lambda: retry(board.states)[lock - 1].open, what=f"door {door} open")
        assert cab.pulse_count(door) == 1, cab.lock_family(door)
        cab.sim.close_door(door)
        until(lambda: not retry(board.states)[lock - 1].open)
        assert cab.pulse_count(door) == 1


def test_inventory_is_the_doors_contents_and_follows_people(cab: Cabinet) -> None:
    for door in cab.doors:
        assert inventory(cab, door) == contents(cab, door), door
    for _, sprung, pulled in cab.door_pairs():
        assert unlock(cab, sprung) is True
        book = cab.sim.door_items(sprung)[0]
        cab.sim.take_item(book.item_id)  # a reader borrows it
        assert book.uid not in inventory(cab, sprung)
        assert inventory(cab, sprung) == contents(cab, sprung)
        cab.sim.put_item(book.item_id, sprung)  # and brings it back
        assert inventory(cab, sprung)[book.uid] == book.item_id
        assert unlock(cab, pulled) is False
        cab.sim.open_door(pulled)
        cab.sim.put_item(book.item_id, pulled)  # moved to the neighbouring door
        assert inventory(cab, pulled) == contents(cab, pulled)
        assert book.uid in inventory(cab, pulled)
        assert book.uid not in inventory(cab, sprung)
        cab.sim.close_door(sprung)
        cab.sim.close_door(pulled)


def test_faulty_lines_exact_states_inventories_events_pulses(cab: Cabinet) -> None:
    """1 % of bytes corrupted and 5 % of frames dropped on every bus, both directions."""
    for i, bus in enumerate(sorted(cab.sim.bus_urls)):
        cab.sim.set_link_faults(bus, garble_rate=0.01, drop_rate=0.05, seed=100 + i)
    confirmed = unconfirmed = 0
    for address, sprung, pulled in cab.door_pairs():
        board = cab.hw.boards[address]
        events = poll(board)
        for door in (sprung, pulled, sprung):  # few cycles: a lossy line is slow
            before = cab.pulse_count(door)
            opened = unlock(cab, door)
            if opened is None:
                unconfirmed += 1
            else:
                confirmed += 1
                assert cab.pulse_count(door) == before + 1
            assert cab.pulse_count(door) - before in (0, 1)
            events += poll(board)
            if not cab.door_open(door):
                if cab.pulse_count(door) == before:  # the unlock never reached the board
                    continue
                cab.sim.open_door(door)
                events += poll(board)
            cab.sim.close_door(door)
            events += poll(board)
        assert seen(cab, address, events) == cab.transitions_of(cab.hw.doors_of(address))
        assert not any(e.inferred for e in events if e.kind in TRANSITIONS)
        states = retry(board.states)
        for d in cab.hw.doors_of(address):
            assert states[cab.hw.door(d).lock - 1].open == cab.door_open(d)
            unlocked = [e for e in events if e.kind is EventType.UNLOCKED
                        and e.lock == cab.hw.door(d).lock]
            assert len(unlocked) <= cab.pulse_count(d)  # never an unlock reported twice
    assert confirmed > 0
    for door in cab.doors:
        assert inventory(cab, door) == contents(cab, door), door
    stats = [cab.sim.link_stats(b) for b in cab.sim.bus_urls]
    assert sum(s["bytes_garbled"] for s in stats) > 0
    assert sum(s["requests_dropped"] + s["replies_dropped"] for s in stats) > 0


def _bus_devices(cab: Cabinet, bus: str) -> list[tuple[Any, Callable[[], object]]]:
    """(device, a read it answers) for every board and reader on ``bus``."""
    out: list[tuple[Any, Callable[[], object]]] = []
    for spec in cab.hw.spec.boards:
        if spec.bus == bus:
            board = cab.hw.boards[spec.address]
            out.append((board, board.states))
    for spec in cab.hw.spec.readers:
        if spec.bus == bus:
            reader = cab.hw.readers[spec.name]
            antenna = cab.hw.door(cab.hw.doors_read_by(spec.name)[0]).antenna
            out.append((reader, lambda r=reader, a=antenna: r.inventory(a)))
    return out


def test_unplugged_bus_is_unavailable_then_recovers_by_itself(cab: Cabinet) -> None:
    for bus in sorted(cab.sim.bus_urls):
        devices = _bus_devices(cab, bus)
        assert devices, bus
        for _, read in devices:
            read()
        cab.sim.unplug(bus)
        for device, read in devices:
            with pytest.raises(DriverError):
                read()
            assert device.status().availability is Availability.UNAVAILABLE, device
        cab.sim.replug(bus)
        for device, read in devices:
            until(lambda: _answers(read), what=f"{device} answers after replug")
            assert device.status().availability is not Availability.UNAVAILABLE


def _answers(read: Callable[[], object]) -> bool:
    try:
        read()
    except DriverError:
        return False
    return True


@pytest.mark.parametrize("cab", CABINETS, indirect=True)
def test_diag_selftest_passes_on_a_healthy_cabinet(cab: Cabinet, tmp_path: Path) -> None:
    hw_file = cab.sim.write_hardware_config(tmp_path / "hw.toml")
    run = subprocess.run([str(LENDBOX), "diag", "--hardware", str(hw_file), "selftest"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
