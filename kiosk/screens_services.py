"""The reader's services on the touchscreen: my loans and renew, holds pickup, 荐购, spoken prompts."""

from __future__ import annotations

from fastapi import APIRouter

from .runtime import KioskRuntime

__all__ = ["services_router"]


def services_router(runtime: KioskRuntime) -> APIRouter:
    return APIRouter(include_in_schema=False)
