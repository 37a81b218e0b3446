"""ISO 28560 library RFID tag data: ISO 28560-2 (object-based) and ISO 28560-3 (fixed length).

Pure codec: bytes of tag user memory in, :class:`TagData` out, and back. See README.md.
"""

from __future__ import annotations

from .codec import DSFID_28560_2, DSFID_28560_3, decode_tag, encode_tag
from .compaction import Scheme
from .errors import (
    BadCompaction,
    BadDataElement,
    BadExtensionBlock,
    BadPrecursor,
    BlankTag,
    TagCrcError,
    TagEncodeError,
    TruncatedTagData,
    UnknownLayout,
)
from .model import ELEMENT_NAMES, STANDARD_PART2, STANDARD_PART3, TagData

__all__ = [
    "DSFID_28560_2",
    "DSFID_28560_3",
    "ELEMENT_NAMES",
    "STANDARD_PART2",
    "STANDARD_PART3",
    "BadCompaction",
    "BadDataElement",
    "BadExtensionBlock",
    "BadPrecursor",
    "BlankTag",
    "Scheme",
    "TagCrcError",
    "TagData",
    "TagEncodeError",
    "TruncatedTagData",
    "UnknownLayout",
    "decode_tag",
    "encode_tag",
]
