"""``lendbox tag ...``: decode and encode ISO 28560 tag memory from the command line.

For technicians holding a hex dump from a reader's diagnostics, and for tests that need
tag memory. ``register`` is called by ``lendbox/cli.py``.

Exit codes: 0 success, 1 the memory does not decode (``error: ...`` on stderr),
2 bad arguments or bad hex.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from firmware_protocol.errors import TagDataError
from firmware_protocol.iso28560 import (
    STANDARD_PART2,
    STANDARD_PART3,
    TagData,
    TagEncodeError,
    decode_tag,
    encode_tag,
)

__all__ = ["register"]


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _parse_hex(text: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "").replace("-", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    return bytes.fromhex(cleaned)


def _decode(args: argparse.Namespace) -> int:
    try:
        memory = _parse_hex(args.hex)
    except ValueError as exc:
        return _fail(2, f"--hex is not valid hexadecimal: {exc}")
    dsfid: int | None = None
    if args.dsfid is not None:
        try:
            dsfid = int(args.dsfid, 16)
        except ValueError:
            return _fail(2, f"--dsfid {args.dsfid!r} is not a hex byte")
        if not 0 <= dsfid <= 0xFF:
            return _fail(2, f"--dsfid {args.dsfid!r} is not a hex byte")
    try:
        data = decode_tag(memory, dsfid)
    except TagDataError as exc:
        return _fail(1, f"{type(exc).__name__}: {exc}")
    print(json.dumps(data.as_json(), ensure_ascii=False, sort_keys=False))
    return 0


def _parse_set(text: str) -> tuple[int, int]:
    part, _, total = text.partition("/")
    return int(part), int(total)


def _encode(args: argparse.Namespace) -> int:
    try:
        set_info = _parse_set(args.set) if args.set else None
    except ValueError:
        return _fail(2, f"--set {args.set!r} is not PART/TOTAL, e.g. 1/2")
    other: dict[str, Any] = {}
    for item in args.element or []:
        name, sep, value = item.partition("=")
        if not sep:
            return _fail(2, f"--element {item!r} is not NAME=VALUE")
        other[name] = value
    try:
        usage = int(args.usage, 0) if args.usage is not None else None
        data = TagData(primary_item_id=args.item_id, owner_library=args.isil,
                       set_info=set_info, type_of_usage=usage,
                       standard=args.standard, other=other)
        dsfid, memory = encode_tag(data, block_size=args.block_size,
                                   memory_size=args.memory_size)
    except (TagEncodeError, ValueError, TypeError) as exc:
        return _fail(2, str(exc))
    if args.json:
        print(json.dumps({"dsfid": f"{dsfid:02x}", "memory": memory.hex()}))
    else:
        print(memory.hex())
    return 0


def register(subparsers: Any) -> None:
    """Add ``tag decode`` and ``tag encode`` to the ``lendbox`` command line."""
    tag = subparsers.add_parser("tag", help="ISO 28560 library tag data (decode / encode)",
                                description="Decode or encode ISO 28560-2/-3 tag user memory.")
    sub = tag.add_subparsers(dest="tag_command", metavar="SUBCOMMAND")
    sub.required = True

    dec = sub.add_parser("decode", help="decode tag memory given as hex; prints JSON")
    dec.add_argument("--hex", required=True, help="user memory from block 0, hexadecimal")
    dec.add_argument("--dsfid", help="the tag's DSFID in hex (06 = 28560-2, 3E = 28560-3)")
    dec.set_defaults(func=_decode)

    enc = sub.add_parser("encode", help="encode tag memory; prints hex")
    enc.add_argument("--item-id", required=True, help="primary item identifier")
    enc.add_argument("--isil", help="owner library ISIL with prefix, e.g. DK-710100")
    enc.add_argument("--set", help="set information PART/TOTAL, e.g. 1/2")
    enc.add_argument("--usage", help="type of usage as stored (e.g. 0x10 for -2, 1 for -3)")
    enc.add_argument("--standard", choices=(STANDARD_PART2, STANDARD_PART3),
                     default=STANDARD_PART2)
    enc.add_argument("--element", action="append", metavar="NAME=VALUE",
                     help="a further 28560-2 data element, e.g. shelf_location=QA268.L55")
    enc.add_argument("--block-size", type=int, default=4)
    enc.add_argument("--memory-size", type=int)
    enc.add_argument("--json", action="store_true", help="print {dsfid, memory} as JSON")
    enc.set_defaults(func=_encode)
