"""Fixtures shared by the whole suite."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# CI machines have 2 loaded cores: time-based health checks would flake, never find bugs.
settings.register_profile(
    "lendbox", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("lendbox")

# The private PC/SC stack (pcscd + vpcd on free ports) for card-reader tests.
from tests.pcsc_fixtures import pcsc_card, pcsc_stack  # noqa: E402,F401
