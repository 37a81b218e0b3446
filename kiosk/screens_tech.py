"""The technician's diagnostics pages on the kiosk, behind a technician login."""

from __future__ import annotations

from fastapi import APIRouter

from .runtime import KioskRuntime

__all__ = ["tech_router"]


def tech_router(runtime: KioskRuntime) -> APIRouter:
    return APIRouter(include_in_schema=False)
