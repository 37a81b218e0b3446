# ruff: noqa: F811  (pytest fixtures are parameters named like the imported fixtures)
"""CardReader over the real PC/SC stack: pyscard → libpcsclite → a private pcscd → vpcd →
simulator.vcard.VirtualCard. Plus the few checks that need no stack (pyscard missing, UID
hygiene, the virtual card's answers)."""

from __future__ import annotations

import logging
import queue
import sys
from collections.abc import Iterator

import pytest

from drivers.base import Availability
from drivers.card_reader import (
    CardCommandRefused,
    CardEvent,
    CardInserted,
    CardReader,
    CardRemoved,
    uid_digest,
)
from drivers.errors import CardError, DeviceUnavailable
from simulator.vcard import MIFARE_CLASSIC_1K_ATR, CardProfile, VirtualCard, answer_apdu

# Imported so that this module runs before tests/conftest.py wires them in; one stack per process.
from tests.pcsc_fixtures import PcscStack, pcsc_card, pcsc_stack, wait_until  # noqa: F401

UID_A = bytes.fromhex("04A1B2C3")
UID_B = bytes.fromhex("04112233445566")
EVENT_TIMEOUT = 5.0


@pytest.fixture
def reader(pcsc_stack: PcscStack) -> Iterator[CardReader]:
    card_reader = CardReader(pcsc_stack.reader_names[0], poll_interval=0.1, retry_interval=0.1)
    yield card_reader
    card_reader.stop()


@pytest.fixture
def events(reader: CardReader) -> queue.Queue[CardEvent]:
    received: queue.Queue[CardEvent] = queue.Queue()
    reader.start(received.put)
    return received


# -- over the real stack -------------------------------------------------------------------------
@pytest.mark.pcsc
def test_present_card_reads_exact_uid(reader: CardReader, pcsc_card: VirtualCard) -> None:
    pcsc_card.insert(UID_A)
    assert reader.read_uid(timeout=EVENT_TIMEOUT) == UID_A
    assert reader.status().availability is Availability.OK


@pytest.mark.pcsc
def test_no_card_returns_none_in_time(reader: CardReader, pcsc_card: VirtualCard) -> None:
    assert reader.read_uid(timeout=0.2) is None


@pytest.mark.pcsc
def test_insert_remove_insert_another_gives_events(
    events: queue.Queue[CardEvent], pcsc_card: VirtualCard, pcsc_stack: PcscStack
) -> None:
    name = pcsc_stack.reader_names[0]
    pcsc_card.insert(UID_A)
    assert events.get(timeout=EVENT_TIMEOUT) == CardInserted(reader=name, uid=UID_A)
    pcsc_card.remove()
    assert events.get(timeout=EVENT_TIMEOUT) == CardRemoved(reader=name)
    pcsc_card.insert(UID_B)
    assert events.get(timeout=EVENT_TIMEOUT) == CardInserted(reader=name, uid=UID_B)
    assert events.empty()


@pytest.mark.pcsc
def test_swapping_cards_gives_removed_then_new_card(
    events: queue.Queue[CardEvent], pcsc_card: VirtualCard, pcsc_stack: PcscStack
) -> None:
    name = pcsc_stack.reader_names[0]
    pcsc_card.insert(UID_A)
    assert events.get(timeout=EVENT_TIMEOUT) == CardInserted(reader=name, uid=UID_A)
    pcsc_card.insert(UID_B)  # replaces A without an explicit remove()
    assert events.get(timeout=EVENT_TIMEOUT) == CardRemoved(reader=name)
    assert events.get(timeout=EVENT_TIMEOUT) == CardInserted(reader=name, uid=UID_B)


@pytest.mark.pcsc
def test_card_on_other_slot_is_not_reported(
    events: queue.Queue[CardEvent], pcsc_stack: PcscStack
) -> None:
    with pcsc_stack.card(1) as other:
        other.insert(UID_B)
        with pytest.raises(queue.Empty):
            events.get(timeout=1.0)


@pytest.mark.pcsc
def test_pcscd_stopped_is_unavailable_then_recovers(
    reader: CardReader,
    events: queue.Queue[CardEvent],
    pcsc_card: VirtualCard,
    pcsc_stack: PcscStack,
) -> None:
    name = pcsc_stack.reader_names[0]
    pcsc_card.insert(UID_A)
    assert events.get(timeout=EVENT_TIMEOUT) == CardInserted(reader=name, uid=UID_A)

    pcsc_stack.stop_service()
    # The card can no longer be vouched for: removed, not stale.
    assert events.get(timeout=EVENT_TIMEOUT) == CardRemoved(reader=name)
    assert wait_until(lambda: "PC/SC service not running" in reader.status().reason)
    assert reader.status().availability is Availability.UNAVAILABLE
    with pytest.raises(DeviceUnavailable, match="PC/SC service not running"):
        reader.read_uid(timeout=0)

    pcsc_stack.restart()
    # The card still lies on the reader; the watcher reconnects and sees it again.
    assert events.get(timeout=EVENT_TIMEOUT) == CardInserted(reader=name, uid=UID_A)
    assert reader.status().availability is Availability.OK
    assert reader.read_uid(timeout=EVENT_TIMEOUT) == UID_A


@pytest.mark.pcsc
def test_status_without_watcher_follows_service(
    pcsc_stack: PcscStack, pcsc_card: VirtualCard
) -> None:
    reader = CardReader(pcsc_stack.reader_names[0])
    assert reader.status().availability is Availability.OK
    pcsc_stack.stop_service()
    status = reader.status()
    assert status.availability is Availability.UNAVAILABLE
    assert status.reason.startswith("PC/SC service not running")
    pcsc_stack.restart()
    assert reader.status().availability is Availability.OK


@pytest.mark.pcsc
def test_refused_apdu_is_typed_error(reader: CardReader, pcsc_card: VirtualCard) -> None:
    pcsc_card.insert(UID_A)
    assert reader.read_uid(timeout=EVENT_TIMEOUT) == UID_A
    with pytest.raises(CardCommandRefused) as refused:
        reader.transmit(bytes.fromhex("00 A4 04 00 00"))  # SELECT: the card knows only GET DATA
    assert refused.value.sw == 0x6D00
    assert isinstance(refused.value, CardError)


@pytest.mark.pcsc
def test_card_refusing_get_data_degrades_status(reader: CardReader, pcsc_card: VirtualCard) -> None:
    pcsc_card.insert(UID_A, refuse_get_data=True)
    with pytest.raises(CardCommandRefused) as refused:
        reader.read_uid(timeout=EVENT_TIMEOUT)
    assert refused.value.sw == 0x6A81
    status = reader.status()
    assert status.availability is Availability.DEGRADED
    assert "UID could not be read" in status.reason
    pcsc_card.insert(UID_B)  # a good read clears it
    assert reader.read_uid(timeout=EVENT_TIMEOUT) == UID_B
    assert reader.status().availability is Availability.OK


@pytest.mark.pcsc
def test_transmit_without_card_is_card_error(reader: CardReader, pcsc_card: VirtualCard) -> None:
    with pytest.raises(CardError):
        reader.transmit(bytes.fromhex("FF CA 00 00 00"))


@pytest.mark.pcsc
def test_unknown_reader_is_unavailable(pcsc_stack: PcscStack) -> None:
    reader = CardReader("ACS ACR122U")
    status = reader.status()
    assert status.availability is Availability.UNAVAILABLE
    assert "no card reader matching 'ACS ACR122U'" in status.reason
    with pytest.raises(DeviceUnavailable):
        reader.read_uid()


@pytest.mark.pcsc
def test_uid_never_logged_raw(
    reader: CardReader, pcsc_card: VirtualCard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pcsc_card.insert(UID_A)
    assert reader.read_uid(timeout=EVENT_TIMEOUT) == UID_A
    text = caplog.text.lower()
    assert uid_digest(UID_A) in text
    for form in (UID_A.hex(), UID_A.hex(" "), UID_A.hex(":"), str(list(UID_A))):
        assert form.lower() not in text


# -- no stack needed -----------------------------------------------------------------------------
def test_without_pyscard_reports_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smartcard", None)
    monkeypatch.setitem(sys.modules, "smartcard.scard", None)
    reader = CardReader("anything")
    assert reader.status().as_dict() == {
        "availability": "unavailable",
        "reason": "pyscard not installed",
    }
    with pytest.raises(DeviceUnavailable, match="pyscard not installed"):
        reader.read_uid()


def test_event_repr_hides_uid() -> None:
    event = CardInserted(reader="r", uid=UID_A)
    assert UID_A.hex() not in repr(event).lower()
    assert "a1" not in repr(event).lower()
    assert event.uid_digest == uid_digest(UID_A)
    with pytest.raises(ValueError):
        CardInserted(reader="r", uid=b"")


def test_virtual_card_answers_like_a_pcsc_contactless_reader() -> None:
    card = CardProfile(uid=UID_A)
    assert answer_apdu(card, bytes.fromhex("FF CA 00 00 00")) == UID_A + b"\x90\x00"
    assert answer_apdu(card, bytes.fromhex("FF CA 00 00 04")) == UID_A + b"\x90\x00"
    assert answer_apdu(card, bytes.fromhex("FF CA 00 00 07")) == b"\x6c\x04"
    assert answer_apdu(card, bytes.fromhex("00 A4 04 00 00")) == b"\x6d\x00"
    refusing = CardProfile(uid=UID_A, refuse_get_data=True)
    assert answer_apdu(refusing, bytes.fromhex("FF CA 00 00 00")) == b"\x6a\x81"
    tck = 0
    for byte in MIFARE_CLASSIC_1K_ATR[1:]:
        tck ^= byte
    assert tck == 0 and MIFARE_CLASSIC_1K_ATR.hex().upper().startswith("3B8F8001804F0CA000000306")
    with pytest.raises(ValueError):
        VirtualCard(1).insert(b"\x01\x02")
