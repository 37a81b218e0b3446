"""A stand-in central server: the smallest thing a cabinet can sync with.

**This is a test double.** It exists so that the cabinet's sync agent (``kiosk/sync.py``), its
tests and the demo can talk to *a* server before the real one exists; it is to be replaced by
``server/`` in issue [4/6]. It keeps everything in memory, knows one library, and implements
the sync protocol of ``syncproto`` honestly (the same pydantic models, real Ed25519 request
signatures, idempotent event intake with gap detection) but none of the circulation logic of
a real library system.

Why a real HTTP server on a real port (FastAPI + uvicorn in a background thread) rather than
an in-process fake transport: the failures a cabinet must survive are network failures —
connection refused, a server that vanishes mid-session — and ``pause()``/``resume()`` produce
exactly those by closing and reopening the listening socket.

Endpoints: ``POST /v1/sync`` (signed), ``POST /v1/readers/resolve`` (signed),
``GET /v1/health``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from syncproto import grants as grants_mod
from syncproto import qrtoken, signing
from syncproto.messages import (
    PROTOCOL_VERSION,
    CabinetEvent,
    DenyDelta,
    HoldInfo,
    ItemInfo,
    ReaderQuery,
    ReaderReply,
    SignedGrant,
    SyncBatch,
    SyncReply,
)

from .serve import serve_in_thread

__all__ = ["StandinServer"]

_log = logging.getLogger(__name__)

#: How long a grant the stand-in signs is valid: long enough for any test or demo run.
GRANT_TTL_S = 7 * 24 * 3600.0
#: Hold expiry when the caller does not say.
HOLD_TTL_S = 3 * 24 * 3600.0


@dataclass
class _Reader:
    reader_id: str
    card_hash: str | None
    display_name: str
    role: Literal["reader", "staff"]
    blocked: bool
    tier: str
    max_loans: int
    offline_allowance: int
    loans: int = 0


@dataclass
class _Cabinet:
    """What the server knows of one cabinet: its key and the events it has sent."""

    public_key: str
    applied: list[CabinetEvent] = field(default_factory=list)  # in seq order, 1..applied_through
    held: dict[int, CabinetEvent] = field(default_factory=dict)  # received after a gap
    uuids: set[uuid.UUID] = field(default_factory=set)
    conflicts: list[CabinetEvent] = field(default_factory=list)  # same seq, another uuid
    nonces: dict[str, float] = field(default_factory=dict)  # nonce → server time first seen
    resolved: set[str] = field(default_factory=set)  # readers to send grants for
    batches: int = 0

    @property
    def applied_through(self) -> int:
        return len(self.applied)


class StandinServer:
    """An in-memory library behind a real HTTP port. Thread-safe: tests mutate the library
    from the test thread while uvicorn serves requests from its own."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", *,
                 clock: Callable[[], float] = time.time, window_s: float = 300.0) -> None:
        self.host = host
        self._port = port
        self._clock = clock
        self._window_s = window_s
        self._lock = threading.RLock()
        self._readers: dict[str, _Reader] = {}
        self._cards: dict[str, str] = {}  # card hash → reader id
        self._items: dict[str, tuple[int, ItemInfo]] = {}  # item id → (version, info)
        self._items_version = 0
        self._holds: list[tuple[str | None, HoldInfo]] = []  # (cabinet or None = any, hold)
        self._deny: list[DenyDelta] = []
        self._borrower: dict[str, str] = {}  # item id → reader id
        self._cabinets: dict[str, _Cabinet] = {}
        self._drop: set[tuple[str | None, int]] = set()
        self._config: dict[str, Any] | None = None
        self._keys: dict[str, tuple[str, str]] = {}  # key id → (private, public)
        self._key_id = ""
        self.rotate_key()
        self.app = self._build_app()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}"

    def start(self) -> StandinServer:
        """Listen and serve in a background thread; returns once connections are accepted."""
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # SO_REUSEADDR: resume() binds the same port again while old connections linger in
        # TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        server, thread = serve_in_thread(self.app, sock, name=f"standin-server:{self._port}")
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the port; the in-memory library stays (see resume())."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(5.0)
        if thread.is_alive():  # a client holding a request open: do not wait for it
            server.force_exit = True
            thread.join(2.0)

    def pause(self) -> None:
        """The network drops: the listening socket closes, clients get connection refused."""
        self.stop()

    def resume(self) -> None:
        """The network is back, on the same port, with the same library."""
        self.start()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- the library

    def add_reader(self, card: str | None, reader_id: str, display_name: str, role: str = "reader",
                   blocked: bool = False, tier: str = "standard", max_loans: int = 5,
                   offline_allowance: int = 2) -> str | None:
        """Add a reader; ``card`` is a card UID or barcode in clear (hashed here, as the real
        server would store it). Returns the card hash, or None without a card."""
        if role not in ("reader", "staff"):
            raise ValueError(f"role must be reader or staff, not {role!r}")
        digest = grants_mod.card_hash(card) if card is not None else None
        with self._lock:
            self._readers[reader_id] = _Reader(reader_id, digest, display_name,
                                               cast(Literal["reader", "staff"], role), False, tier,
                                               max_loans, offline_allowance)
            if digest is not None:
                self._cards[digest] = reader_id
        if blocked:
            self.block(reader_id)
        return digest

    def add_item(self, item: ItemInfo) -> int:
        """Add or replace an item; returns the new items version."""
        with self._lock:
            self._items_version += 1
            self._items[item.item_id] = (self._items_version, item)
            return self._items_version

    def add_hold(self, item_id: str, reader_id: str, *, cabinet_id: str | None = None,
                 expires_at: datetime | None = None) -> HoldInfo:
        """A hold to fill; ``cabinet_id`` None sends it to every cabinet."""
        if expires_at is None:
            expires_at = self._now() + timedelta(seconds=HOLD_TTL_S)
        hold = HoldInfo(item_id=item_id, reader_id=reader_id, expires_at=expires_at)
        with self._lock:
            self._holds.append((cabinet_id, hold))
        return hold

    def block(self, reader_id: str) -> int:
        """Deny a reader from now on: a new deny-list delta; returns its version."""
        return self._deny_change(reader_id, blocked=True)

    def unblock(self, reader_id: str) -> int:
        """Clear a reader again: a deny-list delta that removes them."""
        return self._deny_change(reader_id, blocked=False)

    def _deny_change(self, reader_id: str, *, blocked: bool) -> int:
        with self._lock:
            reader = self._readers.get(reader_id)
            if reader is not None:
                reader.blocked = blocked
            version = self._deny[-1].to_version if self._deny else 0
            delta = DenyDelta(from_version=version, to_version=version + 1,
                              added=[reader_id] if blocked else [],
                              removed=[] if blocked else [reader_id])
            self._deny.append(delta)
            return delta.to_version

    def push_config(self, config: Mapping[str, Any] | None) -> None:
        """Policy overrides sent with every sync reply from now on (None: none)."""
        with self._lock:
            self._config = dict(config) if config is not None else None

    def register_cabinet(self, cabinet_id: str, public_key: str) -> None:
        """Trust a cabinet's Ed25519 public key (base64url). Re-registering replaces the key
        and keeps the cabinet's events."""
        with self._lock:
            cab = self._cabinets.get(cabinet_id)
            if cab is None:
                self._cabinets[cabinet_id] = _Cabinet(public_key=public_key)
            else:
                cab.public_key = public_key

    def issue_qr(self, reader_id: str, ttl_s: int = 60, now: datetime | None = None) -> str:
        """The dynamic QR of a reader's electronic card, embedding a fresh grant."""
        with self._lock:
            reader = self._readers[reader_id]
            grant = self._grant(reader)
            private = self._keys[self._key_id][0]
            key_id = self._key_id
        issued = now if now is not None else self._now()
        return qrtoken.issue_token(reader_id=reader_id, grant_id=grant.grant_id, issued_at=issued,
                                   ttl_s=ttl_s, key_id=key_id, private_key=private, grant=grant)

    def grant_for(self, reader_id: str) -> SignedGrant:
        """A fresh grant for a reader (what a resolve would answer)."""
        with self._lock:
            return self._grant(self._readers[reader_id])

    @property
    def public_keys(self) -> dict[str, str]:
        """Every signing key still trusted (key id → public key), for cabinet configs."""
        with self._lock:
            return _keys_of(self._keys)

    @property
    def key_id(self) -> str:
        return self._key_id

    def rotate_key(self) -> str:
        """Sign with a new key from now on; the old public keys stay trusted so that grants
        already handed out keep verifying. Returns the new key id."""
        private, public = grants_mod.generate_keypair()
        with self._lock:
            key_id = f"k{len(self._keys) + 1}"
            self._keys[key_id] = (private, public)
            self._key_id = key_id
        return key_id

    # ---------------------------------------------------------------- test hooks

    def events(self, cabinet_id: str) -> list[CabinetEvent]:
        """The events applied for a cabinet, in seq order (each exactly once)."""
        with self._lock:
            cab = self._cabinets.get(cabinet_id)
            return list(cab.applied) if cab else []

    def held(self, cabinet_id: str) -> list[int]:
        """Sequences received after a gap and not yet applied."""
        with self._lock:
            cab = self._cabinets.get(cabinet_id)
            return sorted(cab.held) if cab else []

    def conflicts(self, cabinet_id: str) -> list[CabinetEvent]:
        """Events that reused an applied sequence with another uuid (refused)."""
        with self._lock:
            cab = self._cabinets.get(cabinet_id)
            return list(cab.conflicts) if cab else []

    def batches(self, cabinet_id: str) -> int:
        """How many sync batches were accepted from a cabinet."""
        with self._lock:
            cab = self._cabinets.get(cabinet_id)
            return cab.batches if cab else 0

    def drop_once(self, seq: int, cabinet_id: str | None = None) -> None:
        """Lose the next copy of event ``seq`` that arrives (as if dropped in transit), so
        the server sees a gap."""
        with self._lock:
            self._drop.add((cabinet_id, seq))

    def forget_after(self, cabinet_id: str, seq: int) -> None:
        """Lose a cabinet's events after ``seq``, as a server restored from an older backup
        would: the cabinet must send them again."""
        with self._lock:
            cab = self._cabinets[cabinet_id]
            for event in cab.applied[seq:]:
                cab.uuids.discard(event.uuid)
            del cab.applied[seq:]
            cab.held.clear()

    def reader_loans(self, reader_id: str) -> int:
        with self._lock:
            return self._readers[reader_id].loans

    # ---------------------------------------------------------------- protocol core

    def receive(self, cabinet_id: str, events: list[CabinetEvent]) -> tuple[int, int | None]:
        """Take in events from a cabinet, idempotently; returns (applied_through, gap_from).

        Identity is the uuid *and* the (cabinet, seq) pair: a re-sent event is recognised by
        either, so an overlapping or repeated batch changes nothing. Events after a missing
        sequence are held back — applying them would let a return overtake its loan — and
        applied as soon as the gap is filled.
        """
        with self._lock:
            cab = self._cabinets[cabinet_id]
            for event in events:
                if event.uuid in cab.uuids:
                    continue
                for key in ((cabinet_id, event.seq), (None, event.seq)):
                    if key in self._drop:
                        self._drop.discard(key)
                        break
                else:
                    self._take(cab, event)
            gap_from = cab.applied_through + 1 if cab.held else None
            return cab.applied_through, gap_from

    def _take(self, cab: _Cabinet, event: CabinetEvent) -> None:
        known = cab.applied[event.seq - 1] if event.seq <= cab.applied_through else cab.held.get(event.seq)
        if known is not None:
            if known.uuid != event.uuid:  # a cabinet reused a sequence: keep the first, flag it
                cab.conflicts.append(event)
                _log.warning("cabinet %s sent seq %d twice with different uuids",
                             event.cabinet_id, event.seq)
            return
        cab.held[event.seq] = event
        while cab.applied_through + 1 in cab.held:
            nxt = cab.held.pop(cab.applied_through + 1)
            cab.applied.append(nxt)
            cab.uuids.add(nxt.uuid)
            self._circulate(cab, nxt)

    def _circulate(self, cab: _Cabinet, event: CabinetEvent) -> None:
        """The little circulation a stand-in keeps: loan counts (for ReaderReply.loans)."""
        item_id = event.payload.get("item_id")
        if event.kind == "loan" and isinstance(item_id, str):
            reader_id = event.payload.get("reader_id")
            reader = self._readers.get(reader_id) if isinstance(reader_id, str) else None
            if reader is not None:
                reader.loans += 1
                self._borrower[item_id] = reader.reader_id
                cab.resolved.add(reader.reader_id)  # its grant changed: send a fresh one
        elif event.kind == "return" and isinstance(item_id, str):
            reader_id = self._borrower.pop(item_id, None)
            reader = self._readers.get(reader_id) if reader_id else None
            if reader is not None and reader.loans > 0:
                reader.loans -= 1

    def reply_for(self, cabinet_id: str, batch: SyncBatch) -> SyncReply:
        """Take in a batch and build the deltas the cabinet lacks."""
        applied_through, gap_from = self.receive(cabinet_id, list(batch.events))
        with self._lock:
            cab = self._cabinets[cabinet_id]
            cab.batches += 1
            grant_readers = sorted(cab.resolved)
            cab.resolved.clear()
            grants = [self._grant(self._readers[r]) for r in grant_readers
                      if r in self._readers and not self._readers[r].blocked]
            deny = [d for d in self._deny if d.to_version > batch.deny_version]
            items = [info for version, info in sorted(self._items.values(), key=lambda p: p[0])
                     if version > batch.items_version]
            # Holds are always sent whole: the batch carries no holds version, and a reply
            # lost in transit must not leave a cabinet without its holds.
            holds = [h for cab_id, h in self._holds if cab_id in (None, cabinet_id)]
            return SyncReply(
                applied_through=applied_through, gap_from=gap_from, server_time=self._now(),
                grants=grants, deny=deny, items=items, items_version=self._items_version,
                holds=holds, trusted_keys=_keys_of(self._keys), config=self._config,
            )

    def resolve(self, cabinet_id: str, query: ReaderQuery) -> ReaderReply:
        with self._lock:
            reader_id = query.reader_id
            if query.card_hash is not None:
                reader_id = self._cards.get(query.card_hash)
            reader = self._readers.get(reader_id) if reader_id else None
            if reader is None:
                return ReaderReply(status="unknown", message="unknown card or reader")
            if reader.blocked:
                return ReaderReply(status="blocked", reader_id=reader.reader_id,
                                   display_name=reader.display_name, role=reader.role,
                                   loans=reader.loans, message="reader is blocked")
            cab = self._cabinets.get(cabinet_id)
            if cab is not None:
                cab.resolved.add(reader.reader_id)
            return ReaderReply(status="ok", reader_id=reader.reader_id,
                               display_name=reader.display_name, role=reader.role,
                               loans=reader.loans, grant=self._grant(reader))

    def _grant(self, reader: _Reader) -> SignedGrant:
        now = self._now()
        private = self._keys[self._key_id][0]
        return grants_mod.sign_grant(
            grant_id=uuid.uuid4().hex, reader_id=reader.reader_id, tier=reader.tier,
            max_loans=reader.max_loans, offline_allowance=reader.offline_allowance,
            issued_at=now, expires_at=now + timedelta(seconds=GRANT_TTL_S), key_id=self._key_id,
            private_key=private,
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # ---------------------------------------------------------------- HTTP

    def _authenticate(self, request: Request, body: bytes) -> str | JSONResponse:
        """The cabinet id of a correctly signed request, or the 401 to answer."""
        try:
            cabinet_id = signing.request_cabinet(request.headers)
        except signing.SignatureError as exc:
            return self._error(401, exc.reason, f"request signature refused: {exc}")
        with self._lock:
            cab = self._cabinets.get(cabinet_id)
        if cab is None:
            return self._error(401, "unknown_cabinet",
                               f"cabinet {cabinet_id!r} is not registered with this server")
        now = self._now()
        now_s = now.timestamp()

        def seen_nonce(nonce: str) -> bool:
            # Remember nonces for twice the window: an older request fails the timestamp check.
            with self._lock:
                for old, at in list(cab.nonces.items()):
                    if at < now_s - 2 * self._window_s:
                        del cab.nonces[old]
                if nonce in cab.nonces:
                    return True
                cab.nonces[nonce] = now_s
                return False

        try:
            # Starlette's Headers, not a dict: a header sent twice must reach the verifier.
            signed_by = signing.verify_request(
                request.headers, request.method, request.url.path, body,
                public_key=cab.public_key, now=now, window_s=self._window_s, seen_nonce=seen_nonce)
        except signing.SignatureError as exc:
            return self._error(401, exc.reason, f"request signature refused: {exc}")
        if signed_by != cabinet_id:  # pragma: no cover - verify_request checks the same header
            return self._error(401, "cabinet_mismatch", "signature is not the named cabinet's")
        return cabinet_id

    def _parse(self, body: bytes, model: type[Any]) -> Any:
        """The validated message, or the 400/422 to answer."""
        try:
            raw = json.loads(body)
        except ValueError as exc:
            return self._error(422, "invalid_json", f"body is not JSON: {exc}")
        if isinstance(raw, dict) and raw.get("version", PROTOCOL_VERSION) != PROTOCOL_VERSION:
            return self._error(400, "unsupported_version",
                               f"protocol version {raw.get('version')!r} is not supported; "
                               f"this server speaks {PROTOCOL_VERSION}")
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            return self._error(422, "invalid_message", str(exc))

    def _error(self, status: int, error: str, detail: str) -> JSONResponse:
        # server_time even on errors: a cabinet whose clock is off by more than the signature
        # window learns the offset from the 401 that its timestamp earned it.
        return JSONResponse(status_code=status, content={
            "error": error, "detail": detail, "server_time": self._now().isoformat()})

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="lendbox stand-in server", version=str(PROTOCOL_VERSION))

        @app.get("/v1/health")
        async def health() -> dict[str, Any]:
            return {"status": "ok", "version": PROTOCOL_VERSION,
                    "server_time": self._now().isoformat(), "standin": True}

        @app.post("/v1/sync")
        async def sync(request: Request) -> Response:
            body = await request.body()
            cabinet_id = self._authenticate(request, body)
            if isinstance(cabinet_id, Response):
                return cabinet_id
            batch = self._parse(body, SyncBatch)
            if isinstance(batch, Response):
                return batch
            if batch.cabinet_id != cabinet_id or any(e.cabinet_id != cabinet_id for e in batch.events):
                return self._error(403, "cabinet_mismatch",
                                   "a cabinet may only send its own events")
            reply = self.reply_for(cabinet_id, batch)
            return Response(reply.model_dump_json(), media_type="application/json")

        @app.post("/v1/readers/resolve")
        async def resolve(request: Request) -> Response:
            body = await request.body()
            cabinet_id = self._authenticate(request, body)
            if isinstance(cabinet_id, Response):
                return cabinet_id
            query = self._parse(body, ReaderQuery)
            if isinstance(query, Response):
                return query
            if query.cabinet_id != cabinet_id:
                return self._error(403, "cabinet_mismatch", "query names another cabinet")
            if (query.card_hash is None) == (query.reader_id is None):
                return self._error(422, "invalid_message",
                                   "exactly one of card_hash and reader_id is required")
            reply = self.resolve(cabinet_id, query)
            return Response(reply.model_dump_json(), media_type="application/json")

        return app


def _keys_of(pairs: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    return {kid: pub for kid, (_, pub) in pairs.items()}
