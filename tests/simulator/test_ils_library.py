"""The emulated ILS's library (simulator/ils_library.py): the refusals a real ILS gives, and
a journal of exactly what it applied — what the exactly-once tests count."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.ils_library import AVAILABLE, CHARGED, ON_HOLD_SHELF, Library, demo_library

NOW = datetime(2030, 3, 1, 10, 0, tzinfo=UTC)
BOOK, HELD = "3901000000001", "3901000000007"


def test_checkout_checkin_and_the_journal() -> None:
    lib = demo_library()
    out = lib.checkout("R0012345", BOOK, when=NOW)
    assert out.ok and out.due == date(2030, 3, 31)
    assert lib.copy(BOOK).status == CHARGED and lib.loans_of("R0012345")[0].item_id == BOOK
    again = lib.checkout("R0012345", BOOK, when=NOW)
    assert again.ok and again.message == "Item already charged to this patron"
    back = lib.checkin(BOOK, when=NOW + timedelta(days=3))
    assert back.ok and lib.copy(BOOK).status == AVAILABLE
    assert [op for op, *_ in lib.journal] == ["checkout", "checkin"]  # the repeat applied nothing


def test_what_a_real_ils_refuses() -> None:
    lib = demo_library()
    assert lib.checkout("nobody", BOOK, when=NOW).message == "Patron not found"
    assert lib.checkout("R0012345", "nothing", when=NOW).message == "Item not found"
    assert lib.checkout("R0099999", BOOK, when=NOW).message == "Patron blocked"
    assert lib.checkout("R0012345", HELD, when=NOW).message == "Item on hold for another patron"
    assert lib.checkout("R0023456", BOOK, when=NOW).ok
    assert lib.checkout("R0012345", BOOK, when=NOW).message == "Item charged to another patron"
    assert lib.journal == [("checkout", BOOK, "R0023456", NOW)]


def test_no_block_keeps_an_offline_loan_and_its_due_date_but_not_another_readers_copy() -> None:
    lib = demo_library()
    offline = datetime(2030, 2, 20, 15, 0, tzinfo=UTC)
    out = lib.checkout("R0099999", BOOK, when=offline, no_block=True, due=date(2030, 3, 22))
    assert out.ok and lib.copy(BOOK).due == date(2030, 3, 22)  # blocked since, lent before
    assert not lib.checkout("R0012345", BOOK, when=NOW, no_block=True).ok


def test_a_returned_held_copy_goes_to_the_hold_shelf_and_to_its_reader() -> None:
    lib = demo_library()
    lib.copy(HELD).hold_for = None
    assert lib.checkout("R0012345", HELD, when=NOW).ok
    assert lib.place_hold("R0034567", HELD).ok
    back = lib.checkin(HELD, when=NOW)
    assert back.alert and lib.copy(HELD).status == ON_HOLD_SHELF
    assert not lib.checkout("R0023456", HELD, when=NOW).ok
    assert lib.checkout("R0034567", HELD, when=NOW).ok and lib.copy(HELD).hold_for is None


def test_renewals_have_a_limit_and_a_hold_stops_them() -> None:
    lib = Library(readers=demo_library().readers, copies=demo_library().copies, max_renewals=1)
    lib.checkout("R0012345", BOOK, when=NOW)
    first = lib.renew("R0012345", BOOK, when=NOW + timedelta(days=20))
    assert first.ok and first.due == date(2030, 4, 20) and first.renewals_left == 0
    assert lib.renew("R0012345", BOOK, when=NOW).message == "Renewal limit reached"
    assert lib.renew("R0023456", BOOK, when=NOW).message == "Item not charged to this patron"


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["checkout", "checkin", "renew", "hold"]),
                          st.sampled_from(["R0012345", "R0023456", "R0099999"]),
                          st.sampled_from([BOOK, HELD, "3901000000002"]),
                          st.booleans()), max_size=40))
def test_the_library_stays_consistent(ops: list[tuple[str, str, str, bool]]) -> None:
    """Whatever happens: a copy is charged iff it has a borrower and a due date, never to two
    readers, and the journal holds exactly the calls that said ok and changed something."""
    lib = demo_library()
    for op, reader, item, flag in ops:
        before = len(lib.journal)
        if op == "checkout":
            result = lib.checkout(reader, item, when=NOW, no_block=flag)
        elif op == "checkin":
            result = lib.checkin(item, when=NOW)
        elif op == "renew":
            result = lib.renew(reader, item, when=NOW)
        else:
            result = lib.place_hold(reader, item)
        assert len(lib.journal) - before in (0, 1)
        if len(lib.journal) > before:
            assert result.ok
    for copy in lib.copies.values():
        assert (copy.status == CHARGED) == (copy.patron_id is not None) == (copy.due is not None)
