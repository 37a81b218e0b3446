"""Entry point of the `lendbox` console script.

Each package owns its subcommands in its own ``cli.py`` exposing ``register(subparsers)``;
this module only gathers them, so that importing ``lendbox`` stays cheap and a package that
is not needed for a command is never imported.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (module, description) — every module has `register(subparsers) -> None`.
_COMMAND_MODULES: tuple[str, ...] = (
    "firmware_protocol.cli",  # lendbox tag ...
    "simulator.cli",  # lendbox sim ...
    "simulator.ils_cli",  # lendbox ils-sim
    "drivers.cli",  # lendbox diag ...
    "lendbox.demo",  # lendbox demo
    "kiosk.cli",  # lendbox kiosk ...
    "server.cli",  # lendbox server ...
    "server.sip2_cli",  # lendbox sip2 probe
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lendbox",
        description="Self-service library lending cabinet: simulator, drivers, diagnostics.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that part is not written yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
