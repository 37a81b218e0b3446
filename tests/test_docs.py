"""Every `lendbox` command a user can type is explained in the README."""

from __future__ import annotations

import argparse
from pathlib import Path

from lendbox.cli import build_parser

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    found: list[str] = []
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}"
                found.append(full)
                found.extend(_commands(sub, full))
    return found


def test_every_command_is_in_the_readme() -> None:
    commands = _commands(build_parser(), "lendbox")
    assert commands, "the lendbox parser has no commands"
    missing = [c for c in commands if c not in README]
    assert missing == []


def test_readme_opens_with_the_two_commands() -> None:
    head = "\n".join(README.splitlines()[:40])
    assert "./scripts/demo" in head and "./scripts/test" in head
