"""The central server's settings: where its database is, where it listens, how long things last.

Why a frozen dataclass read from the environment (and not a config file): the server runs
under systemd or in a container, where environment variables are the usual way to configure a
service, and the only secret it needs (the PostgreSQL password) belongs in the database URL,
which such tools already know how to keep out of files in the repository. Every value is
checked when it is read, so a typo stops the server at start with the variable named, not
at the first request.

Variables: ``LENDBOX_DATABASE_URL``, ``LENDBOX_HOST``, ``LENDBOX_PORT``,
``LENDBOX_SIGNATURE_WINDOW_S``, ``LENDBOX_TOKEN_TTL_S``; the library's ILS (SIP2, see
``server/ils_service.py``): ``LENDBOX_ILS_HOST``, ``LENDBOX_ILS_PORT``, ``LENDBOX_ILS_USER``,
``LENDBOX_ILS_PASSWORD``, ``LENDBOX_ILS_PROFILE``, ``LENDBOX_ILS_INSTITUTION``,
``LENDBOX_ILS_LOCATION``, ``LENDBOX_ILS_INTERVAL_S`` — forwarding is on iff the host is set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import sip2proto

__all__ = ["DEFAULT_DATABASE_URL", "ENV_PREFIX", "Settings"]

#: The same default as ``server.db.DEFAULT_URL`` (kept here so reading settings opens nothing).
DEFAULT_DATABASE_URL = "sqlite:///var/lendbox-server.db"
ENV_PREFIX = "LENDBOX_"


@dataclass(frozen=True)
class Settings:
    """What one server process needs to know; immutable so no request can change it.

    ``signature_window_s``: how far a cabinet's request timestamp may be from the server's
    clock (either way) — wider accepts more clock drift, but also keeps a captured request
    replayable for longer if the nonce store were lost. ``token_ttl_s``: how long a staff
    login lasts (one working shift by default).
    """

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    signature_window_s: float = 300.0
    token_ttl_s: float = 8 * 3600.0
    #: the ILS's SIP2 listener; None = no ILS configured (the outbox only accumulates).
    ils_host: str | None = None
    ils_port: int = 6001
    ils_user: str = ""
    ils_password: str = ""
    #: a name in ``sip2proto.PROFILES`` (encoding, terminator, checksum habits of the ILS).
    ils_profile: str = "generic"
    ils_institution: str = ""
    ils_location: str = ""
    #: seconds between two forwarding passes over the outbox.
    ils_interval_s: float = 2.0

    @property
    def ils_configured(self) -> bool:
        """Whether circulation is forwarded to an ILS (``ils_host`` is set)."""
        return bool(self.ils_host)

    def __post_init__(self) -> None:
        if not isinstance(self.database_url, str) or not self.database_url.strip():
            raise ValueError("database_url must not be empty")
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError("host must not be empty")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be an integer 0..65535, not {self.port!r}")
        if self.ils_host is not None and (not isinstance(self.ils_host, str)
                                          or not self.ils_host.strip()):
            raise ValueError("ils_host must not be empty when set")
        if (isinstance(self.ils_port, bool) or not isinstance(self.ils_port, int)
                or not 1 <= self.ils_port <= 65535):
            raise ValueError(f"ils_port must be an integer 1..65535, not {self.ils_port!r}")
        if self.ils_profile not in sip2proto.PROFILES:
            raise ValueError(f"ils_profile {self.ils_profile!r} is not one of "
                             f"{sorted(sip2proto.PROFILES)}")
        for name in ("signature_window_s", "token_ttl_s", "ils_interval_s"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``LENDBOX_*`` variables (``environ`` defaults to ``os.environ``).

        Raises ValueError naming the variable whose value is not usable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        readers: tuple[tuple[str, str, type], ...] = (
            ("database_url", "DATABASE_URL", str),
            ("host", "HOST", str),
            ("port", "PORT", int),
            ("signature_window_s", "SIGNATURE_WINDOW_S", float),
            ("token_ttl_s", "TOKEN_TTL_S", float),
            ("ils_host", "ILS_HOST", str),
            ("ils_port", "ILS_PORT", int),
            ("ils_user", "ILS_USER", str),
            ("ils_password", "ILS_PASSWORD", str),
            ("ils_profile", "ILS_PROFILE", str),
            ("ils_institution", "ILS_INSTITUTION", str),
            ("ils_location", "ILS_LOCATION", str),
            ("ils_interval_s", "ILS_INTERVAL_S", float),
        )
        for field_name, suffix, kind in readers:
            name = ENV_PREFIX + suffix
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[field_name] = kind(raw.strip())
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"{ENV_PREFIX}* settings: {exc}") from None
