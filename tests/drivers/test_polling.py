"""PolledEvents: door snapshots become the same event stream our boards keep."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drivers.board import DoorState
from drivers.polling import PolledEvents
from firmware_protocol.const import EventType


class Board:
    """A scripted board: the states the next poll will read, and a settable clock."""

    def __init__(self, locks: int) -> None:
        self.open = [False] * locks
        self.t = 0.0

    def states(self) -> list[DoorState]:
        return [DoorState(lock=i + 1, open=o) for i, o in enumerate(self.open)]


def make(locks: int = 3) -> tuple[Board, PolledEvents]:
    board = Board(locks)
    return board, PolledEvents(board.states, clock=lambda: board.t)


def kinds(batch) -> list[tuple[str, int, bool]]:  # type: ignore[no-untyped-def]
    return [(e.kind.name, e.lock, e.inferred) for e in batch.events]


def test_first_poll_is_the_baseline_then_changes_become_events() -> None:
    board, ev = make()
    board.open[1] = True
    assert ev.poll_events().events == ()  # a door already open at start is no event
    board.open[1] = False
    board.open[2] = True
    assert kinds(ev.poll_events()) == [("DOOR_CLOSED", 2, False), ("DOOR_OPENED", 3, False),
                                       ("DOOR_FORCED", 3, True)]


def test_unlock_then_open_is_not_forced() -> None:
    board, ev = make()
    ev.poll()
    ev.note_unlock(1)
    board.t = 0.2
    board.open[0] = True
    assert kinds(ev.poll_events()) == [("UNLOCKED", 1, False), ("DOOR_OPENED", 1, False)]


def test_closed_twice_with_an_unlock_between_is_a_missed_transition() -> None:
    board, ev = make()
    ev.poll()
    ev.note_unlock(2)
    board.t = 0.3
    assert kinds(ev.poll_events()) == [("UNLOCKED", 2, False)]  # too soon to tell
    board.t = 1.5
    assert kinds(ev.poll_events()) == [("DOOR_OPENED", 2, True), ("DOOR_CLOSED", 2, True)]
    board.t = 3.0
    assert ev.poll_events().events == ()  # reported once


def test_unacknowledged_events_are_read_again_and_overflow_is_counted() -> None:
    board = Board(1)
    ev = PolledEvents(board.states, clock=lambda: board.t, max_queue=4)
    ev.poll()

    def toggle() -> None:  # each toggle is one DOOR_OPENED or DOOR_CLOSED
        board.open[0] = not board.open[0]
        ev.poll()

    ev.note_unlock(1)  # so the openings are not "forced"
    for _ in range(2):
        toggle()
    first = ev.read_events()
    again = ev.read_events()
    assert first.events == again.events and len(first.events) == 3  # UNLOCKED, OPENED, CLOSED
    ev.ack_events(first.next_cursor)
    ev.note_unlock(1)
    for _ in range(5):
        toggle()
    batch = ev.read_events()  # 6 new events, room for 4
    assert batch.lost == 2 and len(batch.events) == 4
    assert [e.seq for e in batch.events] == list(range(5, 9))


@given(st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=1, max_size=30))
def test_events_replay_to_the_last_snapshot(snapshots: list[list[bool]]) -> None:
    """Applying the events to the first snapshot gives the last one, and every change
    between two consecutive polls is exactly one event."""
    board, ev = make(4)
    board.open = list(snapshots[0])
    ev.poll()
    state = list(snapshots[0])
    changes = 0
    for prev, snap in zip(snapshots, snapshots[1:], strict=False):
        board.open = list(snap)
        changes += sum(a != b for a, b in zip(prev, snap, strict=True))
        ev.poll()
    events = ev.poll_events().events
    moves = [e for e in events if e.kind in (EventType.DOOR_OPENED, EventType.DOOR_CLOSED)]
    assert len(moves) == changes
    for e in moves:
        state[e.lock - 1] = e.kind is EventType.DOOR_OPENED
    assert state == snapshots[-1]
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + len(events))) \
        if events else True


def test_an_unlock_before_any_poll_still_reports_the_opening() -> None:
    board, ev = make()
    ev.note_unlock(2)  # the kiosk's first act: no snapshot yet
    board.open[1] = True
    assert kinds(ev.poll_events()) == [("UNLOCKED", 2, False), ("DOOR_OPENED", 2, True)]
    board.open[1] = False
    assert kinds(ev.poll_events()) == [("DOOR_CLOSED", 2, False)]
