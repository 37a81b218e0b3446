"""RFID readers: the family-neutral interface, the door-inventory logic, and our board's
reader behind its antenna multiplexer.

Why the split: FEIG and RR3036 readers (next issue) answer "which tags are on antenna N" and
"read this tag's memory" in their own bytes; what the cabinet does with that — merge pages,
read ISO 28560 data only for tags not seen before, cache it — is the same for every family,
so it lives in :func:`inventory_door` over the :class:`RfidReader` Protocol.

Tag data is a book's identity, never a reader's: logging UIDs and item ids is fine.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from firmware_protocol.errors import TagDataError
from firmware_protocol.iso28560 import TagData, decode_tag
from firmware_protocol.iso28560.errors import TruncatedTagData
from firmware_protocol.const import MAX_TAGS_PER_PAGE
from firmware_protocol.messages import InventoryReply

from .base import DeviceStatus
from .board import LendboxBoard
from .errors import DeviceRejected, FrameError, TagDataUnreadable, TagNotFound

__all__ = [
    "InventoriedTag",
    "LendboxRfidReader",
    "RfidReader",
    "TagCache",
    "TagSeen",
    "inventory_door",
    "merge_pages",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TagSeen:
    """A tag that answered an inventory. ``uid`` most significant byte first (0xE0...)."""

    uid: bytes
    dsfid: int
    rssi: int  # dBm


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoriedTag:
    """A tag seen with its decoded data; ``data`` is None and ``error`` says why when the
    tag's memory could not be read or decoded. ``undecodable``: the memory was read but is
    not ISO 28560 data (a damaged or foreign tag, not a bad read)."""

    uid: bytes
    dsfid: int
    rssi: int
    data: TagData | None
    error: str = ""
    undecodable: bool = False

    @property
    def item_id(self) -> str | None:
        return self.data.primary_item_id if self.data is not None else None


@runtime_checkable
class RfidReader(Protocol):
    """An HF (ISO 15693) reader with one or more antennas (1-based)."""

    name: str

    def inventory(self, antenna: int) -> tuple[TagSeen, ...]:
        """Every tag answering on ``antenna`` now, each once."""
        ...

    def read_tag(self, antenna: int, uid: bytes) -> TagData:
        """The tag's ISO 28560 data. Raises TagNotFound, TagDataUnreadable, DriverError."""
        ...

    def write_afi(self, antenna: int, uid: bytes, afi: int) -> None: ...

    def set_eas(self, antenna: int, uid: bytes, enabled: bool) -> None: ...

    def status(self) -> DeviceStatus: ...

    def diagnostics(self) -> dict[str, object]: ...


def data_ended(memory: bytes, dsfid: int | None = None) -> bool:
    """Whether the tag's data sets end inside ``memory`` (their terminator was read).

    ISO 28560-2 data also ends at the end of memory, so memory read up to a block boundary
    that falls between two data sets decodes — without the data sets after the boundary (the
    owner library after the item id). With one 0xFF byte more, such a cut reads as a truncated
    data set, while a terminator already read stops the decoder before it.
    """
    try:
        decode_tag(memory + b"\xff", dsfid)
    except TagDataError:
        return False
    return True


def read_tag_data(read: Callable[[int, int], bytes], uid: bytes, dsfid: int | None, *,
                  first_blocks: int, max_blocks: int, block_size: int = 4) -> TagData:
    """Decode a tag's ISO 28560 data reading as few blocks as it needs.

    ``read(first_block, count)`` returns that many blocks' bytes (fewer at the end of the
    memory). The first ``first_blocks`` hold a typical item id and ISIL; the rest of the
    memory is read only when the data run past them (truncated, or no terminator yet).

    Raises:
        TagDataUnreadable: the memory does not decode.
        DriverError: from ``read``.
    """
    memory = read(0, first_blocks)
    try:
        data = decode_tag(memory, dsfid)
        if data_ended(memory, dsfid):
            return data
    except TruncatedTagData:
        pass
    except TagDataError as exc:
        raise TagDataUnreadable(f"tag {uid.hex().upper()}: {exc}") from exc
    have = len(memory) // block_size
    if max_blocks > have:
        memory += read(have, max_blocks - have)
    try:
        return decode_tag(memory, dsfid)
    except TagDataError as exc:
        raise TagDataUnreadable(f"tag {uid.hex().upper()}: {exc}") from exc


class TagCache:
    """UID → decoded TagData, bounded (least recently used dropped first).

    Why: a door's ~30 tags cost ~0.3 s of air time to list but ~0.75 s with their data;
    the books in a door rarely change, so their data is read once.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[bytes, TagData] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, uid: bytes) -> TagData | None:
        with self._lock:
            data = self._data.get(uid)
            if data is None:
                self.misses += 1
                return None
            self._data.move_to_end(uid)
            self.hits += 1
            return data

    def put(self, uid: bytes, data: TagData) -> None:
        with self._lock:
            self._data[uid] = data
            self._data.move_to_end(uid)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, uid: object) -> bool:
        return uid in self._data


def merge_pages(pages: Iterable[Iterable[TagSeen]]) -> tuple[TagSeen, ...]:
    """One entry per UID across pages (a tag may be reported twice when a round is read
    in pieces), keeping the strongest RSSI, in first-seen order."""
    best: dict[bytes, TagSeen] = {}
    for page in pages:
        for tag in page:
            old = best.get(tag.uid)
            if old is None or tag.rssi > old.rssi:
                best[tag.uid] = tag
    return tuple(best.values())


def inventory_door(reader: RfidReader, antenna: int, cache: TagCache | None = None, *,
                   read_data: bool = True) -> tuple[InventoriedTag, ...]:
    """Inventory ``antenna`` and attach each tag's data, reading it only when not cached.

    A tag whose data cannot be read is still reported (with ``error``): the book is there.

    Raises:
        DriverError: the inventory itself failed (the door's contents are unknown).
    """
    out: list[InventoriedTag] = []
    for tag in reader.inventory(antenna):
        data = cache.get(tag.uid) if cache is not None else None
        error = ""
        undecodable = False
        if data is None and read_data:
            try:
                data = reader.read_tag(antenna, tag.uid)
            except (TagNotFound, TagDataUnreadable, DeviceRejected) as exc:
                error = str(exc)
                undecodable = isinstance(exc, TagDataUnreadable)
            else:
                if cache is not None:
                    cache.put(tag.uid, data)
        out.append(InventoriedTag(uid=tag.uid, dsfid=tag.dsfid, rssi=tag.rssi, data=data,
                                  error=error, undecodable=undecodable))
    return tuple(out)


NOISY_PAGE_SIZE = 4


class LendboxRfidReader:
    """The reader on a lendbox board, through its antenna multiplexer (antenna = door slot).

    Args:
        board: the board whose antennas these are.
        first_read_blocks: blocks read first; more are read only if the data runs past them
            (a typical ISO 28560-2 item id and ISIL fit in 8 blocks of 4 bytes).
        max_blocks: the most blocks ever read (an ICODE SLIX has 28).
    """

    def __init__(self, board: LendboxBoard, *, first_read_blocks: int = 8,
                 max_blocks: int = 28) -> None:
        self.board = board
        self.name = f"rfid of {board.name}"
        self.first_read_blocks = first_read_blocks
        self.max_blocks = max_blocks
        self.page_size = MAX_TAGS_PER_PAGE

    def inventory(self, antenna: int) -> tuple[TagSeen, ...]:
        """Page 0 (a new round), then pages 1..pages-1 of that round, merged by UID.

        If the board lost the round between pages (NAK NO_INVENTORY, e.g. a reset), the
        round is run once more from page 0. When an inventory needed re-sends, the next one
        asks for small pages: on a line corrupting 1 % of bytes a full page (257 bytes)
        arrives intact 8 % of the time, a 4-tag page 59 %, and a failed page 0 also costs
        a new air round. A clean inventory goes back to full pages.
        """
        retries_before = self.board.transport.counters.retries
        try:
            return self._inventory(antenna, self.page_size)
        finally:
            noisy = self.board.transport.counters.retries > retries_before
            self.page_size = NOISY_PAGE_SIZE if noisy else MAX_TAGS_PER_PAGE

    def _inventory(self, antenna: int, size: int) -> tuple[TagSeen, ...]:
        for _ in range(2):
            first = self.board.inventory_page(antenna, 0, size)
            pages = [_tags(first)]
            try:
                for page in range(1, first.pages):
                    reply = self.board.inventory_page(antenna, page, size)
                    if reply.page != page or reply.antenna != antenna:
                        raise FrameError(f"{self.name}: asked page {page} of antenna "
                                         f"{antenna}, got page {reply.page} of {reply.antenna}")
                    pages.append(_tags(reply))
            except DeviceRejected:
                continue
            return merge_pages(pages)
        raise FrameError(f"{self.name}: antenna {antenna}: inventory pages kept vanishing")

    def read_tag(self, antenna: int, uid: bytes, dsfid: int | None = None) -> TagData:
        """Read and decode the tag's ISO 28560 data, reading further blocks only when the
        data set runs past the first ones (``read_tag_data``)."""
        return read_tag_data(
            lambda first, count: self.board.read_blocks(antenna, uid, first, count).data,
            uid, dsfid, first_blocks=self.first_read_blocks, max_blocks=self.max_blocks)

    def write_afi(self, antenna: int, uid: bytes, afi: int) -> None:
        """Set the tag's AFI (0x07 on shelf, 0xC2 checked out, per ISO 28560)."""
        self.board.write_afi(antenna, uid, afi)

    def set_eas(self, antenna: int, uid: bytes, enabled: bool) -> None:
        self.board.set_eas(antenna, uid, enabled)

    def status(self) -> DeviceStatus:
        return self.board.status()

    def diagnostics(self) -> dict[str, object]:
        return {"reader": self.name, **self.board.status().as_dict()}


def _tags(reply: InventoryReply) -> tuple[TagSeen, ...]:
    return tuple(TagSeen(uid=t.uid, dsfid=t.dsfid, rssi=t.rssi) for t in reply.tags)
