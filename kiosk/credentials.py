"""Who is at the screen: a card UID, a library-card barcode or the dynamic QR of an
electronic reader card, resolved to a patron the lending rules understand.

Why here and not in the machine: resolving needs the server (when reachable), the ledger's
caches and signature checks; the machine only learns the outcome (``Resolved`` or
``ResolveRefused`` with a reason the screen can explain). Card numbers never leave this
module in clear: they are hashed (``card_hash``) before any lookup, and logs show
``log_id`` of reader ids only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from syncproto import ReaderQuery, ReaderReply, SignedGrant
from syncproto.grants import GrantError, card_hash, log_id, verify_grant
from syncproto.qrtoken import TokenError, verify_token

from .machine import ResolveRefused, Resolved
from .rules import Patron

__all__ = ["CREDENTIAL_KINDS", "CredentialResolver", "OnlineResolver"]

_log = logging.getLogger(__name__)

CREDENTIAL_KINDS = ("card", "barcode", "qr")


class OnlineResolver(Protocol):
    """The sync agent's side of resolution (None: the server is not reachable now)."""

    def resolve_reader(self, query: ReaderQuery) -> ReaderReply | None: ...


@dataclass(slots=True)
class CredentialResolver:
    """Turns a credential into ``Resolved`` / ``ResolveRefused``.

    Args:
        ledger: the cabinet's ledger (caches of readers, grants, deny list, holds, nonces).
        cabinet_id: sent with online queries.
        trusted_keys: key id → server public key from the config; the ledger's keys (pushed
            by the server at sync) are added to them.
        online: the sync agent, or None for a stand-alone cabinet.
        max_loans: the policy's per-reader limit when a grant says nothing stricter.
        offline_allowance: the policy's default offline allowance (capped by the grant's).
        skew_s / qr_max_ttl_s: clock-skew tolerance and the longest QR validity accepted.
    """

    ledger: Any
    cabinet_id: str
    trusted_keys: Mapping[str, str]
    online: OnlineResolver | None
    max_loans: int
    offline_allowance: int
    skew_s: float = 120.0
    qr_max_ttl_s: int = 60

    def keys(self) -> dict[str, str]:
        return {**self.trusted_keys, **(self.ledger.trusted_keys() or {})}

    def resolve(self, kind: str, value: str, now: datetime | None = None
                ) -> Resolved | ResolveRefused:
        """Resolve one credential; never raises for bad input (a refusal names why)."""
        now = now or datetime.now(UTC)
        if kind not in CREDENTIAL_KINDS:
            return ResolveRefused("bad_credential")
        value = value.strip()
        if not value:
            return ResolveRefused("bad_credential")
        token_grant: SignedGrant | None = None
        if kind == "qr":
            try:
                claims = verify_token(value, self.keys(), now, skew_s=self.skew_s,
                                      max_ttl_s=self.qr_max_ttl_s)
            except TokenError as exc:
                _log.info("QR token refused: %s", exc.reason)
                return ResolveRefused("token_" + exc.reason)
            expires = claims.expires_at.timestamp() + self.skew_s
            if not self.ledger.use_nonce(claims.nonce.hex(), expires):
                _log.warning("QR token of reader %s replayed", log_id(claims.reader_id))
                return ResolveRefused("token_replayed")
            reader_id: str | None = claims.reader_id
            token_grant = claims.grant
            query = ReaderQuery(cabinet_id=self.cabinet_id, reader_id=reader_id)
            hashed = None
        else:
            hashed = card_hash(value)
            reader_id = None
            query = ReaderQuery(cabinet_id=self.cabinet_id, card_hash=hashed)

        reply = self.online.resolve_reader(query) if self.online is not None else None
        if reply is not None:
            return self._online(reply, hashed, token_grant, now)
        return self._offline(reader_id, hashed, token_grant, now)

    # ------------------------------------------------------------ online
    def _online(self, reply: ReaderReply, hashed: str | None, token_grant: SignedGrant | None,
                now: datetime) -> Resolved | ResolveRefused:
        if reply.status != "ok" or reply.reader_id is None:
            return ResolveRefused(reply.status if reply.status != "ok" else "unknown")
        if hashed is not None:
            self.ledger.put_reader(hashed, reply.reader_id, reply.role, reply.loans)
        grant = reply.grant or token_grant
        if grant is not None:
            self._store_grant(grant, now)
        max_loans = min(self.max_loans, grant.max_loans) if grant else self.max_loans
        patron = Patron(reader_id=reply.reader_id, role=reply.role, loans=reply.loans,
                        max_loans=max_loans, offline=False,
                        grant_id=grant.grant_id if grant else None,
                        offline_allowance=grant.offline_allowance if grant else 0,
                        holds=frozenset(self._holds(reply.reader_id)))
        return Resolved(patron, self._hold_doors(patron.holds))

    # ------------------------------------------------------------ offline
    def _offline(self, reader_id: str | None, hashed: str | None,
                 token_grant: SignedGrant | None, now: datetime) -> Resolved | ResolveRefused:
        role = "reader"
        loans = 0
        if hashed is not None:
            cached = self.ledger.reader_by_card(hashed)
            if cached is None:
                return ResolveRefused("unknown_offline")
            reader_id, role, loans = cached.reader_id, cached.role, cached.loans
        assert reader_id is not None
        if self.ledger.denied(reader_id):
            _log.info("reader %s is on the deny list", log_id(reader_id))
            return ResolveRefused("denied")
        if role == "staff":
            return Resolved(Patron(reader_id=reader_id, role="staff", offline=True))
        grant = token_grant or self.ledger.grant(reader_id)
        if grant is None or grant.reader_id != reader_id:
            return ResolveRefused("no_grant")
        try:
            verify_grant(grant, self.keys(), now, skew_s=self.skew_s)
        except GrantError as exc:
            return ResolveRefused("grant_" + exc.reason)
        if token_grant is not None and self.ledger.grant(reader_id) != grant:
            self.ledger.put_grants([grant])  # only when new: each write is an fsync
        used = self.ledger.offline_loans(reader_id, grant.grant_id)
        allowance = min(grant.offline_allowance, self.offline_allowance)
        patron = Patron(reader_id=reader_id, role="reader", loans=loans + used,
                        max_loans=min(self.max_loans, grant.max_loans), offline=True,
                        grant_id=grant.grant_id, offline_allowance=allowance, offline_used=used,
                        holds=frozenset(self._holds(reader_id)))
        return Resolved(patron, self._hold_doors(patron.holds))

    # ------------------------------------------------------------ helpers
    def _store_grant(self, grant: SignedGrant, now: datetime) -> None:
        try:
            verify_grant(grant, self.keys(), now, skew_s=self.skew_s)
        except GrantError as exc:  # keep lending online, but never cache a bad grant
            _log.warning("server grant %s not cached: %s", grant.grant_id, exc.reason)
            return
        self.ledger.put_grants([grant])

    def _holds(self, reader_id: str) -> list[str]:
        return [h.item_id for h in self.ledger.holds_for(reader_id)]

    def _hold_doors(self, holds: frozenset[str]) -> tuple[int, ...]:
        if not holds:
            return ()
        doors = set()
        for door, contents in self.ledger.all_contents().items():
            if any(c.item_id in holds for c in contents.values()):
                doors.add(door)
        return tuple(sorted(doors))
