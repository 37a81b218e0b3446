"""FEIG ISO host protocol codec: CRC, published and derived frames, round trips, fuzzing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocol import feig
from firmware_protocol.codec import NEED_DATA
from firmware_protocol.crc import crc16_mcrf4xx
from firmware_protocol.errors import FrameError, UnknownCommand

VECTORS = Path(feig.__file__).resolve().parent / "vectors" / "feig"


def _load(name: str) -> list[dict]:
    data = json.loads((VECTORS / name).read_text())
    assert data["source"]
    return data["vectors"]


def _request(spec: dict) -> object:
    kind = spec["type"]
    if kind == "Inventory":
        return feig.Inventory(address=spec.get("address", 255), more=spec.get("more", False),
                              ant_sel=spec.get("ant_sel"))
    if kind == "ReadMultipleBlocks":
        return feig.ReadMultipleBlocks(address=spec.get("address", 255),
                                       uid=bytes.fromhex(spec["uid"]),
                                       first_block=spec["first_block"], count=spec["count"])
    raise AssertionError(kind)


def _reply(spec: dict) -> object:
    kind = spec["type"]
    if kind == "InventoryReply":
        return feig.InventoryReply(address=spec["address"], status=spec["status"], tags=tuple(
            feig.InventoryTag(uid=bytes.fromhex(t["uid"]), dsfid=t["dsfid"], tr_type=t["tr_type"])
            for t in spec["tags"]))
    if kind == "ReadBlocksReply":
        return feig.ReadBlocksReply(address=spec["address"], status=spec["status"],
                                    block_size=spec["block_size"],
                                    blocks=tuple(bytes.fromhex(b) for b in spec["blocks"]),
                                    security=tuple(spec["security"]))
    if kind == "StatusReply":
        return feig.StatusReply(address=spec["address"], status=spec["status"])
    raise AssertionError(kind)


def test_crc_is_crc16_mcrf4xx() -> None:
    assert crc16_mcrf4xx(b"123456789") == 0x6F91
    assert crc16_mcrf4xx(b"") == 0xFFFF


def _events(decoder: object, data: bytes) -> list[object]:
    decoder.feed(data)  # type: ignore[attr-defined]
    out = []
    while (ev := decoder.next_event()) is not NEED_DATA:  # type: ignore[attr-defined]
        out.append(ev)
    return out


@pytest.mark.parametrize("vector", _load("public.json") + _load("derived.json"),
                         ids=lambda v: v["name"])
def test_vectors(vector: dict) -> None:
    raw = bytes.fromhex(vector["hex"])
    expect = vector["expect"]
    if vector["direction"] == "request":
        if "error" in expect:
            with pytest.raises(UnknownCommand):
                _events(feig.RequestDecoder(), raw)
            return
        msg = _request(expect)
        assert _events(feig.RequestDecoder(), raw) == [msg]
        if raw[0] == feig.STX:
            assert feig.encode_request(msg, advanced=True) == raw
        else:
            assert feig.encode_request(msg) == raw
        return
    [response] = _events(feig.ResponseDecoder(), raw)
    if "type" not in expect:
        assert (response.address, response.control, response.status, response.data.hex()) == (
            expect["address"], expect["control"], expect["status"], expect["data"])
        return
    reply = _reply(expect)
    assert feig.decode_response(response, _request(vector["request"])) == reply
    assert feig.encode_reply(reply) == raw


# ------------------------------------------------------------------ round trips

addresses = st.integers(0, 254)
uids = st.binary(min_size=8, max_size=8)
requests = st.one_of(
    st.builds(feig.Inventory, address=st.integers(0, 255), more=st.booleans(),
              ant_sel=st.none() | st.integers(0, 255)),
    st.builds(feig.ReadMultipleBlocks, address=st.integers(0, 255), uid=uids,
              first_block=st.integers(0, 255), count=st.integers(1, 255)),
    st.builds(feig.WriteAfi, address=st.integers(0, 255), uid=uids, afi=st.integers(0, 255)),
    st.builds(feig.SetEas, address=st.integers(0, 255), uid=uids, enabled=st.booleans()),
)
antenna_reads = st.builds(feig.AntennaRead, number=st.integers(0, 255),
                          status=st.integers(0, 255), rssi=st.integers(0, 255))


@st.composite
def inventory_replies(draw: st.DrawFn) -> tuple[feig.InventoryReply, object]:
    with_ant = draw(st.booleans())
    tags = draw(st.lists(st.builds(
        feig.InventoryTag, uid=uids, dsfid=st.integers(0, 255), tr_type=st.integers(0, 255),
        antennas=st.lists(antenna_reads, max_size=3).map(tuple) if with_ant else st.just(())),
        max_size=40))
    reply = feig.InventoryReply(address=draw(addresses),
                                status=draw(st.sampled_from([0x00, 0x94, 0x83, 0x84, 0x93])),
                                tags=tuple(tags), with_antennas=with_ant)
    return reply, feig.Inventory(ant_sel=1 if with_ant else None)


@st.composite
def block_replies(draw: st.DrawFn) -> tuple[feig.ReadBlocksReply, object]:
    size = draw(st.integers(1, 8))
    n = draw(st.integers(1, 20))
    reply = feig.ReadBlocksReply(
        address=draw(addresses), status=draw(st.sampled_from([0x00, 0x83, 0x84])),
        block_size=size, blocks=tuple(draw(st.binary(min_size=size, max_size=size))
                                      for _ in range(n)),
        security=tuple(draw(st.integers(0, 255)) for _ in range(n)))
    return reply, feig.ReadMultipleBlocks(uid=bytes(8), first_block=0, count=n)


status_replies = st.builds(
    lambda a, c, s, e: (feig.StatusReply(address=a, control=c, status=s,
                                         iso_error=e if s == 0x95 else None),
                        feig.WriteAfi(uid=bytes(8), afi=7)),
    addresses, st.sampled_from([0xB0, 0xB1]), st.sampled_from([0, 1, 2, 3, 0x80, 0x95]),
    st.integers(0, 255))


@given(requests, st.booleans())
def test_request_round_trip(msg: object, advanced: bool) -> None:
    assert _events(feig.RequestDecoder(), feig.encode_request(msg, advanced=advanced)) == [msg]


@given(st.one_of(inventory_replies(), block_replies(), status_replies))
def test_reply_round_trip(pair: tuple[object, object]) -> None:
    reply, request = pair
    raw = feig.encode_reply(reply)
    assert (raw[0] == feig.STX) == (len(raw) > 255)
    [response] = _events(feig.ResponseDecoder(), raw)
    assert feig.decode_response(response, request) == reply


# ------------------------------------------------------------------ robustness


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_fuzzed_decoders_raise_only_frame_errors(data: bytes) -> None:
    for decoder in (feig.RequestDecoder(), feig.ResponseDecoder()):
        decoder.feed(data)
        for _ in range(len(data) + 2):
            try:
                ev = decoder.next_event()
            except FrameError:
                continue
            if ev is NEED_DATA:
                break
            if isinstance(ev, feig.Response):
                for req in (feig.Inventory(), feig.Inventory(ant_sel=1),
                            feig.ReadMultipleBlocks(uid=bytes(8), first_block=0, count=1)):
                    try:
                        feig.decode_response(ev, req)
                    except FrameError:
                        pass
        try:
            decoder.expire()
        except FrameError:
            pass
        assert decoder.buffered == 0 or decoder.next_event() is NEED_DATA


@given(st.lists(requests, min_size=1, max_size=5), st.data())
def test_arbitrary_chunking_and_resync(msgs: list[object], data: st.DataObject) -> None:
    stream = b"\x00\x01" + b"".join(feig.encode_request(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = feig.RequestDecoder()
    out = []
    last = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[last:cut])
        last = cut
        while True:
            try:
                ev = decoder.next_event()
            except FrameError:
                continue
            if ev is NEED_DATA:
                break
            out.append(ev)
    assert out == msgs


def test_expire_drops_partial_frame() -> None:
    decoder = feig.ResponseDecoder()
    decoder.feed(bytes.fromhex("06 00 63 00"))
    assert decoder.next_event() is NEED_DATA
    with pytest.raises(FrameError):
        decoder.expire()
    assert decoder.buffered == 0
    assert _events(decoder, bytes.fromhex("06 00 63 00 86 07"))[0].control == 0x63
