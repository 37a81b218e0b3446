"""The library an emulated ILS keeps: readers, copies, loans, holds and fines, in memory.

Why a model of its own, apart from the SIP2 bytes: the emulator (``lendbox ils-sim``, issue
[5/6]) must answer like a library system — refuse a blocked reader, a copy charged to
someone else, a renewal past the limit — and the exactly-once tests need to count what the
ILS *applied*, whatever the wire lost. This module is that library; the SIP2 server around
it turns messages into these calls and the results back into messages.

Rules follow what self-check units meet in real ILSs: a checkout of a copy charged to the
same reader is a renewal-free "already yours" success (Koha answers ok); ``no_block``
(an offline transaction the cabinet already made) skips the reader's blocks and limits but
never charges a copy held by someone else; a checkin of a copy not out succeeds with an
alert; every applied change is appended to :attr:`Library.journal`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

__all__ = ["Copy", "Library", "Outcome", "Reader", "demo_library"]

#: SIP2 circulation status codes (item information response, fixed field 1).
AVAILABLE, CHARGED, ON_HOLD_SHELF, IN_TRANSIT, LOST, MISSING = "03", "04", "08", "10", "12", "13"


@dataclass
class Reader:
    patron_id: str
    name: str
    password: str = ""
    blocked: bool = False
    max_loans: int = 10
    fines_fen: int = 0  # fines in 分 (0.01 yuan)
    email: str = ""
    phone: str = ""


@dataclass
class Copy:
    item_id: str
    title: str
    branch: str
    status: str = AVAILABLE
    patron_id: str | None = None
    due: date | None = None
    renewals: int = 0
    hold_for: str | None = None  # a reader waiting for it


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one circulation call: ``ok``, the screen message (AF) and what the
    answer reports (due date, alert, …)."""

    ok: bool
    message: str = ""
    due: date | None = None
    alert: bool = False
    renewals_left: int | None = None


@dataclass
class Library:
    """An in-memory ILS. ``loan_days`` and ``max_renewals`` are its policy."""

    readers: dict[str, Reader] = field(default_factory=dict)
    copies: dict[str, Copy] = field(default_factory=dict)
    loan_days: int = 30
    max_renewals: int = 2
    #: every applied change: (operation, item id, patron id or None, when)
    journal: list[tuple[str, str, str | None, datetime]] = field(default_factory=list)

    # ------------------------------------------------------------------ lookups
    def reader(self, patron_id: str) -> Reader | None:
        return self.readers.get(patron_id)

    def copy(self, item_id: str) -> Copy | None:
        return self.copies.get(item_id)

    def loans_of(self, patron_id: str) -> list[Copy]:
        return sorted((c for c in self.copies.values() if c.patron_id == patron_id),
                      key=lambda c: c.item_id)

    def holds_of(self, patron_id: str) -> list[Copy]:
        return sorted((c for c in self.copies.values() if c.hold_for == patron_id),
                      key=lambda c: c.item_id)

    def overdue_of(self, patron_id: str, today: date) -> list[Copy]:
        return [c for c in self.loans_of(patron_id) if c.due is not None and c.due < today]

    # ------------------------------------------------------------------ circulation
    def checkout(self, patron_id: str, item_id: str, *, when: datetime, no_block: bool = False,
                 due: date | None = None) -> Outcome:
        """Charge ``item_id`` to ``patron_id``. ``due``: the due date the cabinet gave the
        reader (kept for an offline transaction); else ``loan_days`` from ``when``."""
        reader, copy = self.readers.get(patron_id), self.copies.get(item_id)
        if reader is None:
            return Outcome(False, "Patron not found")
        if copy is None:
            return Outcome(False, "Item not found")
        if copy.patron_id == patron_id:
            return Outcome(True, "Item already charged to this patron", due=copy.due)
        if copy.patron_id is not None:
            return Outcome(False, "Item charged to another patron")
        if not no_block:
            if reader.blocked:
                return Outcome(False, "Patron blocked")
            if len(self.loans_of(patron_id)) >= reader.max_loans:
                return Outcome(False, "Too many items charged")
            if copy.hold_for not in (None, patron_id):
                return Outcome(False, "Item on hold for another patron")
        copy.status, copy.patron_id, copy.renewals = CHARGED, patron_id, 0
        copy.due = due or (when.date() + timedelta(days=self.loan_days))
        if copy.hold_for == patron_id:
            copy.hold_for = None
        self.journal.append(("checkout", item_id, patron_id, when))
        return Outcome(True, "Checked out", due=copy.due)

    def checkin(self, item_id: str, *, when: datetime) -> Outcome:
        """Discharge ``item_id`` (returned at ``when``). A copy not out is ok with an alert;
        a copy someone holds goes to the hold shelf, with an alert."""
        copy = self.copies.get(item_id)
        if copy is None:
            return Outcome(False, "Item not found")
        if copy.patron_id is None:
            return Outcome(True, "Item was not checked out", alert=True)
        copy.patron_id, copy.due, copy.renewals = None, None, 0
        copy.status = ON_HOLD_SHELF if copy.hold_for else AVAILABLE
        self.journal.append(("checkin", item_id, None, when))
        return Outcome(True, "Checked in", alert=copy.hold_for is not None)

    def renew(self, patron_id: str, item_id: str, *, when: datetime,
              due: date | None = None) -> Outcome:
        """Renew a loan of this reader: ``due`` or ``loan_days`` from ``when``; refused for
        another reader's copy, a held copy, or past ``max_renewals``."""
        copy = self.copies.get(item_id)
        if copy is None:
            return Outcome(False, "Item not found")
        if copy.patron_id != patron_id:
            return Outcome(False, "Item not charged to this patron")
        if copy.hold_for is not None:
            return Outcome(False, "Item on hold for another patron")
        if copy.renewals >= self.max_renewals:
            return Outcome(False, "Renewal limit reached", renewals_left=0)
        copy.renewals += 1
        copy.due = due or (when.date() + timedelta(days=self.loan_days))
        self.journal.append(("renew", item_id, patron_id, when))
        return Outcome(True, "Renewed", due=copy.due,
                       renewals_left=self.max_renewals - copy.renewals)

    def renew_all(self, patron_id: str, *, when: datetime) -> tuple[list[str], list[str]]:
        """(renewed item ids, unrenewed item ids)."""
        done: list[str] = []
        not_done: list[str] = []
        for copy in self.loans_of(patron_id):
            (done if self.renew(patron_id, copy.item_id, when=when).ok else not_done).append(
                copy.item_id)
        return done, not_done

    def place_hold(self, patron_id: str, item_id: str) -> Outcome:
        copy = self.copies.get(item_id)
        if patron_id not in self.readers:
            return Outcome(False, "Patron not found")
        if copy is None:
            return Outcome(False, "Item not found")
        if copy.hold_for not in (None, patron_id):
            return Outcome(False, "Item already on hold")
        copy.hold_for = patron_id
        return Outcome(True, "Hold placed")

    def cancel_hold(self, patron_id: str, item_id: str) -> Outcome:
        copy = self.copies.get(item_id)
        if copy is None or copy.hold_for != patron_id:
            return Outcome(False, "No such hold")
        copy.hold_for = None
        if copy.status == ON_HOLD_SHELF:
            copy.status = AVAILABLE
        return Outcome(True, "Hold cancelled")

    def block(self, patron_id: str) -> bool:
        reader = self.readers.get(patron_id)
        if reader is None:
            return False
        reader.blocked = True
        return True

    def pay(self, patron_id: str, amount_fen: int) -> Outcome:
        reader = self.readers.get(patron_id)
        if reader is None:
            return Outcome(False, "Patron not found")
        if amount_fen <= 0:
            return Outcome(False, "Amount must be positive")
        reader.fines_fen = max(0, reader.fines_fen - amount_fen)
        return Outcome(True, "Payment accepted")


def demo_library() -> Library:
    """The emulator's default library: Chinese and Latin names, two branches, a blocked
    reader, a reader with a fine, a copy on hold."""
    lib = Library()
    for reader in (Reader("R0012345", "张三", "1234"), Reader("R0023456", "李四", "2345"),
                   Reader("R0034567", "欧阳娜娜", "3456"), Reader("R0045678", "Anna Lee", "4567"),
                   Reader("R0099999", "王五", "9999", blocked=True),
                   Reader("R0088888", "赵六", "8888", fines_fen=350)):
        lib.readers[reader.patron_id] = reader
    titles = ["红楼梦", "三体", "活着", "围城", "边城", "平凡的世界", "The Little Prince", "百年孤独"]
    for n in range(40):
        branch = "sz-city" if n < 20 else "sz-county"
        item_id = f"39010000{n:05d}"
        lib.copies[item_id] = Copy(item_id, titles[n % len(titles)], branch)
    lib.copies["3901000000007"].hold_for = "R0034567"
    return lib
