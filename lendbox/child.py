"""A ``lendbox … run`` command as a child process that says when it is ready.

Why one class: the kiosk (``kiosk ready URL``) and the server (``server ready URL``) both
choose their own port (``--port 0``) and print where they listen once they do; the demo,
the tests and the benchmarks start them the same way, wait for that line, and must stop
them by their pid whatever happens (each runs in its own session, so a Ctrl-C of the caller
does not reach it twice).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ReadyChild"]


class ReadyChild:
    """``python -m lendbox.cli ARGS`` (or another ``module``) as a child; ready when stdout
    says ``READY URL``."""

    def __init__(self, args: Sequence[str], ready: str, *, log: Path | None = None,
                 env: Mapping[str, str] | None = None, module: str = "lendbox.cli") -> None:
        self.module = module  # ``python -m MODULE ARGS``
        self.args = list(args)
        self.ready = ready  # e.g. "server ready "
        self.log = log
        self.env = dict(env or {})
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.startup_s = 0.0
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def what(self) -> str:
        return "lendbox " + " ".join(self.args[:2])

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> Any:
        """Start and wait for the ready line (RuntimeError if the child exits first,
        TimeoutError — after stopping it — if it takes longer than ``timeout``)."""
        t0 = time.monotonic()
        stderr: Any = open(self.log, "a") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args], stdout=subprocess.PIPE,
                stderr=stderr, text=True, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        finally:
            if self.log:
                stderr.close()
        ready = threading.Event()
        proc = self.proc

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.append(line.rstrip())
                if line.startswith(self.ready):
                    self.url = line[len(self.ready):].split()[0]  # the word after it
                    ready.set()

        self._reader = threading.Thread(target=read, name=f"child-out:{proc.pid}", daemon=True)
        self._reader.start()
        while not ready.wait(0.05):
            if proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited with {proc.returncode} before it was "
                                   f"ready: {' | '.join(self.lines[-5:])}")
            if time.monotonic() - t0 > timeout:
                self.stop()
                raise TimeoutError(f"{self.what} was not ready in {timeout:.0f} s")
        self.startup_s = time.monotonic() - t0
        return self

    def kill(self) -> None:
        """SIGKILL (what a power cut does to the process)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM to the pid, SIGKILL after ``grace_s``; the exit code (None if never
        started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._reader is not None:
            self._reader.join(5)  # it ends at the output's end, now that the process is gone
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
