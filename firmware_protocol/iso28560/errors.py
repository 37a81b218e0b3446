"""Errors of the ISO 28560 tag-data codec.

Every way tag memory can fail to decode has its own subclass of
:class:`firmware_protocol.errors.TagDataError`, so a driver can tell "no data written yet"
(:class:`BlankTag`) from "the read stopped early" (:class:`TruncatedTagData`) from "the bytes are
damaged" (:class:`TagCrcError`, :class:`BadCompaction`, ...) and show a technician the right hint.
Misuse of the encoder (a value that cannot be stored) is our side's fault and raises
:class:`TagEncodeError`, a :class:`~firmware_protocol.errors.LocalProtocolError`.
"""

from __future__ import annotations

from firmware_protocol.errors import LocalProtocolError, TagDataError

__all__ = [
    "BadCompaction",
    "BadDataElement",
    "BadExtensionBlock",
    "BadPrecursor",
    "BlankTag",
    "TagCrcError",
    "TagEncodeError",
    "TruncatedTagData",
    "UnknownLayout",
]


class BlankTag(TagDataError):
    """The user memory holds no data (every byte 0x00, or every byte 0xFF)."""


class TruncatedTagData(TagDataError):
    """A data set, length or block runs past the end of the memory that was read."""


class TagCrcError(TagDataError):
    """An ISO 28560-3 basic block whose CRC-16 does not match its contents."""


class UnknownLayout(TagDataError):
    """The DSFID names no library data format, or the memory fits neither layout."""


class BadCompaction(TagDataError):
    """Compacted bytes that do not decode under their declared compaction scheme."""


class BadPrecursor(TagDataError):
    """An ISO 28560-2 precursor that breaks the data-set rules.

    (object identifier 0 before the terminator, a repeated object identifier, or the
    primary item identifier not first).
    """


class BadDataElement(TagDataError):
    """A data element whose value is impossible for it (e.g. set information of odd length)."""


class BadExtensionBlock(TagDataError):
    """An ISO 28560-3 extension block with a bad length or XOR checksum."""


class TagEncodeError(LocalProtocolError, ValueError):
    """The caller asked to encode data the chosen layout cannot hold."""
