"""The decoded view of a library RFID tag, common to ISO 28560-2 and ISO 28560-3.

Drivers, the kiosk and the simulator all speak :class:`TagData`, so the rest of lendbox never
needs to know which of the two layouts a particular library wrote on its books.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["ELEMENT_NAMES", "ELEMENT_OIDS", "STANDARD_PART2", "STANDARD_PART3", "TagData"]

STANDARD_PART2 = "28560-2"
STANDARD_PART3 = "28560-3"

#: Relative OIDs of the ISO 28560-1 data elements (ISO 28560-2 clause 6), by readable name.
#: Unknown OIDs are kept under ``oid_<n>``.
ELEMENT_NAMES: Mapping[int, str] = MappingProxyType({
    1: "primary_item_id",
    2: "content_parameter",
    3: "owner_library",
    4: "set_info",
    5: "type_of_usage",
    6: "shelf_location",
    7: "onix_media_format",
    8: "marc_media_format",
    9: "supplier_id",
    10: "order_number",
    11: "ill_borrowing_institution",
    12: "ill_borrowing_transaction_number",
    13: "gs1_product_id",
    14: "alternative_unique_item_id",
    15: "local_data_a",
    16: "local_data_b",
    17: "title",
    18: "product_id_local",
    19: "media_format_other",
    20: "supply_chain_stage",
    21: "supplier_invoice_number",
    22: "alternative_item_id",
    23: "alternative_owner_library",
    24: "subsidiary_of_owner_library",
    25: "alternative_ill_borrowing_institution",
    26: "local_data_c",
})
ELEMENT_OIDS: Mapping[str, int] = MappingProxyType({v: k for k, v in ELEMENT_NAMES.items()})


def _jsonable(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class TagData:
    """What a library tag says about its item.

    Attributes:
        primary_item_id: the library's item identifier (usually the former barcode).
        owner_library: the full ISIL with its prefix (``DK-710100``, ``DE-705``), or None.
        set_info: ``(part, total)`` for multi-part items, or None when the tag does not say.
        type_of_usage: the stored value as an integer. ISO 28560-2 stores a byte
            (class in the high nibble, sub-class in the low nibble, e.g. 0x10); ISO 28560-3
            stores the class nibble only (e.g. 1 = circulating item).
        standard: ``"28560-2"`` or ``"28560-3"``.
        other: every further data element by readable name (see :data:`ELEMENT_NAMES`;
            unknown OIDs as ``oid_<n>``; ISO 28560-3 adds ``version`` and ``extension_<id>``).
            Application-defined values are ``bytes``.
    """

    primary_item_id: str
    owner_library: str | None = None
    set_info: tuple[int, int] | None = None
    type_of_usage: int | None = None
    standard: str = STANDARD_PART2
    other: Mapping[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.primary_item_id, str):
            raise TypeError("primary_item_id must be a str")
        if self.owner_library is not None and not isinstance(self.owner_library, str):
            raise TypeError("owner_library must be a str or None")
        if self.set_info is not None:
            info = tuple(self.set_info)
            if len(info) != 2 or not all(isinstance(x, int) and not isinstance(x, bool)
                                         for x in info):
                raise TypeError("set_info must be a (part, total) pair of ints")
            object.__setattr__(self, "set_info", (info[0], info[1]))
        if self.type_of_usage is not None and (
                not isinstance(self.type_of_usage, int) or isinstance(self.type_of_usage, bool)):
            raise TypeError("type_of_usage must be an int or None")
        if self.standard not in (STANDARD_PART2, STANDARD_PART3):
            raise ValueError(f"standard must be {STANDARD_PART2!r} or {STANDARD_PART3!r}")
        object.__setattr__(self, "other", MappingProxyType(dict(self.other)))

    def as_json(self) -> dict[str, object]:
        """A JSON-ready dict (bytes become hex strings, tuples lists) for CLI and API output."""
        return {
            "primary_item_id": self.primary_item_id,
            "owner_library": self.owner_library,
            "set_info": list(self.set_info) if self.set_info is not None else None,
            "type_of_usage": self.type_of_usage,
            "standard": self.standard,
            "other": _jsonable(self.other),
        }
