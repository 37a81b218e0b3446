"""pytest fixtures for the real PC/SC stack: a private pcscd with vpcd readers, and a card.

Import into ``tests/conftest.py`` (``from tests.pcsc_fixtures import pcsc_stack, pcsc_card``).

One daemon per test process, on purpose: libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once, at the
process's first PC/SC call, so a second daemon on another socket could never be reached. The
stack is therefore a process-wide singleton; the fixture only makes and tears it down once,
however many modules import it. Tests that stop pcscd must start it again (``restart()``).

When pcscd or vpcd is missing the fixture *fails* (it does not skip): the PC/SC tests are part
of the suite and ``./scripts/test`` installs what they need.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulator.pcscd import INSTALL_HINT, PcscdError, PrivatePcscd
from simulator.vcard import VirtualCard

__all__ = ["PcscStack", "pcsc_card", "pcsc_stack", "reader_empty", "wait_until"]


@dataclass
class PcscStack:
    """The running private PC/SC stack, as tests and the simulator need it."""

    daemon: PrivatePcscd
    reader_names: tuple[str, str]
    vpcd_ports: tuple[int, int]
    socket_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def card(self, slot: int = 0) -> VirtualCard:
        """A (not yet inserted) virtual card for reader slot 0 or 1."""
        return VirtualCard(self.vpcd_ports[slot])

    def stop_service(self) -> None:
        """Stop pcscd, keeping its socket path and ports for :meth:`restart`."""
        self.daemon.stop(keep_files=True)

    def restart(self) -> None:
        self.daemon.start()


_stack: PcscStack | None = None


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (monotonic); returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(step)
    return True


def reader_empty(name: str) -> bool:
    """True when pcscd reports no card on reader ``name`` (its own view, not the card's)."""
    from smartcard import scard

    rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rc != scard.SCARD_S_SUCCESS:
        return False
    try:
        rc, states = scard.SCardGetStatusChange(ctx, 0, [(name, scard.SCARD_STATE_UNAWARE)])
        return rc == scard.SCARD_S_SUCCESS and bool(states[0][1] & scard.SCARD_STATE_EMPTY)
    finally:
        scard.SCardReleaseContext(ctx)


def _readers_seen() -> list[str]:
    from smartcard.System import readers

    return [str(r) for r in readers()]


@pytest.fixture(scope="session")
def pcsc_stack() -> Iterator[PcscStack]:
    """A private pcscd (free ports, own socket) with two vpcd reader slots, for the session."""
    global _stack
    if _stack is not None:
        yield _stack
        return
    try:
        import smartcard  # noqa: F401
    except ImportError:
        pytest.fail(f"pyscard is not installed: {INSTALL_HINT}", pytrace=False)
    daemon = PrivatePcscd()
    try:
        daemon.start()
    except PcscdError as exc:
        pytest.fail(f"cannot start a private pcscd: {exc}", pytrace=False)
    saved = os.environ.get("PCSCLITE_CSOCK_NAME")
    os.environ.update(daemon.env)
    stack = PcscStack(
        daemon=daemon,
        reader_names=daemon.reader_names,
        vpcd_ports=daemon.vpcd_ports,
        socket_path=daemon.socket_path,
        env=daemon.env,
    )
    try:
        seen = _readers_seen()
    except Exception as exc:  # noqa: BLE001 - pyscard raises its own types; reported below
        seen = [f"<error: {exc}>"]
    if list(stack.reader_names) != sorted(seen):
        daemon.stop()
        pytest.fail(
            f"the private pcscd's readers are not visible (saw {seen}); something in this "
            "process made a PC/SC call before PCSCLITE_CSOCK_NAME was set, and libpcsclite "
            "keeps the first socket path it read",
            pytrace=False,
        )
    _stack = stack
    try:
        yield stack
    finally:
        _stack = None
        daemon.stop()
        if saved is None:
            os.environ.pop("PCSCLITE_CSOCK_NAME", None)
        else:
            os.environ["PCSCLITE_CSOCK_NAME"] = saved


@pytest.fixture
def pcsc_card(pcsc_stack: PcscStack) -> Iterator[VirtualCard]:
    """A virtual card on slot 0, taken off the reader (and pcscd running again) after the test."""
    card = pcsc_stack.card(0)
    try:
        yield card
    finally:
        card.remove()
        if not pcsc_stack.daemon.running():
            pcsc_stack.restart()
        # pcscd notices a removal on its next poll; the next test must start from "empty".
        assert wait_until(lambda: reader_empty(pcsc_stack.reader_names[0])), "card still seen"
