"""The package boundaries of DESIGN.md hold: each package imports only what it may.

A codec that imports a serial port, or a kiosk that reaches into the simulator, would make
the "bytes are the interface" principle a lie; this test reads every module's imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"firmware_protocol", "drivers", "simulator", "kiosk", "server", "sip2proto", "syncproto",
        "lendbox"}
ALLOWED: dict[str, set[str]] = {
    "firmware_protocol": set(),
    "sip2proto": set(),
    "syncproto": set(),
    "drivers": {"firmware_protocol"},
    "simulator": {"firmware_protocol", "sip2proto"},
    "kiosk": {"drivers", "firmware_protocol", "syncproto"},
    "server": {"syncproto", "sip2proto"},
}
# Sans-IO packages: no I/O, threads or clocks of their own.
SANS_IO = {"firmware_protocol", "sip2proto"}
IO_MODULES = {"socket", "serial", "threading", "asyncio", "time", "sqlite3", "select",
              "subprocess"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_design_allows(package: str) -> None:
    offenders = []
    for path in _modules(package):
        for name in _imports(path) & OURS:
            if name != package and name not in ALLOWED[package]:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


@pytest.mark.parametrize("package", sorted(SANS_IO))
def test_sans_io_packages_do_no_io(package: str) -> None:
    offenders = []
    for path in _modules(package):
        if path.name == "cli.py":  # the command-line face is the I/O edge
            continue
        for name in _imports(path) & IO_MODULES:
            offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []
