"""A private pcscd (pcsc-lite daemon) with vpcd virtual readers, for tests and the demo.

Why private: the system's pcscd listens on fixed vpcd ports (35963/35964) and on
``/run/pcscd/pcscd.comm``; a test that used them would fight any other pcscd, any other test run
and, on a real cabinet, the card reader in service. This class starts one that shares nothing:

* pcsc-lite 1.9.9's daemon has its socket and pid file paths compiled in
  (``/run/pcscd/pcscd.comm``, ``/run/pcscd/pcscd.pid``) and no option or environment variable
  to move them. So it runs in its own *mount namespace* (``unshare --mount``, private
  propagation) where a temporary directory is bind-mounted over ``/run``: its socket and pid
  file land in that directory and the system's ``/run/pcscd`` is never touched.
* The client library (libpcsclite, which pyscard loads) *does* honour ``PCSCLITE_CSOCK_NAME``;
  :attr:`PrivatePcscd.env` gives it the socket's real path. libpcsclite reads it once per
  process, at the first PC/SC call, so set it before that and keep it (restarting this
  daemon keeps the same path for that reason).
* ``-c FILE`` replaces ``/etc/reader.conf.d`` with one generated reader.conf: a vpcd reader on
  a free TCP port chosen at run time (vpcd takes ``DEVICENAME /dev/null:PORT``, decimal or hex,
  and opens two slots, on PORT and PORT+1).
* An empty tmpfs is mounted over ``/usr/lib/pcsc/drivers`` inside the namespace (the vpcd
  driver is loaded from a copy), so the daemon loads no USB driver and cannot claim a real
  USB reader that the system's pcscd serves.

The namespace needs CAP_SYS_ADMIN (root) or unprivileged user namespaces
(``unshare --user --map-root-user``); :meth:`PrivatePcscd.start` tries both and says why when
neither works. The daemon is stopped by its pid (SIGTERM, then SIGKILL); its mounts vanish with
it, and :meth:`PrivatePcscd.stop` removes the temporary directory.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Self

__all__ = ["VPCD_DRIVER", "PcscdError", "PrivatePcscd", "find_free_port_pair"]

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
PCSCD_DRIVER_DIR = "/usr/lib/pcsc/drivers"
FRIENDLY_NAME = "Lendbox Virtual PCD"
INSTALL_HINT = (
    "install the PC/SC stack: apt-get install pcscd vsmartcard-vpcd libpcsclite-dev swig "
    "(./scripts/test does it), then pip install pyscard"
)

# Runs inside the new mount namespace, then becomes pcscd (exec keeps the pid).
_NAMESPACE_SCRIPT = r"""
set -e
mount --bind "$1/run" /run
if [ -d {drivers} ]; then mount -t tmpfs -o ro,size=4k lendbox-empty {drivers}; fi
exec "$2" --foreground --config "$1/reader.conf" $3
""".replace("{drivers}", PCSCD_DRIVER_DIR)


class PcscdError(RuntimeError):
    """The private pcscd could not be started (missing package, no namespace, not ready)."""


def find_free_port_pair(host: str = "0.0.0.0", attempts: int = 50) -> int:
    """Return a port P such that P and P+1 are both free now.

    vpcd listens on two consecutive ports (one per slot) on all interfaces, so both must be
    free. There is an unavoidable window between this check and pcscd binding; start() retries
    with a new pair if pcscd fails to bind.

    Raises:
        PcscdError: no pair found in ``attempts`` tries.
    """
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind((host, 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
                return port
    raise PcscdError("no two consecutive free TCP ports found for vpcd")


class PrivatePcscd:
    """One pcscd of our own: private socket, private pid file, vpcd on free ports.

    Nothing happens in the constructor; :meth:`start` launches and waits until the daemon
    accepts clients. After :meth:`stop` with ``keep_files=True`` a later :meth:`start` reuses
    the same socket path and ports, which is how tests restart "the PC/SC service" under a
    client that already read ``PCSCLITE_CSOCK_NAME``.
    """

    def __init__(self, *, pcscd: str = "pcscd", debug: bool = False) -> None:
        self._pcscd = pcscd
        self._debug = debug
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self._port: int | None = None
        self._prefix: list[str] | None = None
        self._atexit_registered = False

    # -- what clients need -------------------------------------------------------------------
    @property
    def socket_path(self) -> Path:
        """The daemon's client socket as seen from outside its namespace."""
        return self._require_dir() / "run" / "pcscd" / "pcscd.comm"

    @property
    def vpcd_port(self) -> int:
        """TCP port of slot 00 (reader ``… 00 00``); slot 01 is ``vpcd_port + 1``."""
        if self._port is None:
            raise PcscdError("PrivatePcscd not started")
        return self._port

    @property
    def vpcd_ports(self) -> tuple[int, int]:
        return (self.vpcd_port, self.vpcd_port + 1)

    @property
    def reader_names(self) -> tuple[str, str]:
        """PC/SC names of the two vpcd slots, in port order."""
        return (f"{FRIENDLY_NAME} 00 00", f"{FRIENDLY_NAME} 00 01")

    @property
    def env(self) -> dict[str, str]:
        """Environment for PC/SC clients (libpcsclite) of this daemon."""
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self._require_dir() / "pcscd.log"

    def running(self) -> bool:
        return self.pid is not None

    # -- life cycle --------------------------------------------------------------------------
    def start(self, timeout: float = 5.0) -> None:
        """Launch pcscd and return once its socket accepts connections.

        Raises:
            PcscdError: pcscd or the vpcd driver is not installed, no mount namespace could be
                made, or the daemon did not become ready within ``timeout`` (the message
                carries the end of its log). The instance is stopped after an error.
        """
        if self.running():
            return
        binary = shutil.which(self._pcscd)
        if binary is None:
            raise PcscdError(f"pcscd not found: {INSTALL_HINT}")
        if not VPCD_DRIVER.exists():
            raise PcscdError(f"vpcd driver {VPCD_DRIVER} not found: {INSTALL_HINT}")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="lendbox-pcscd-"))
            (self._dir / "run").mkdir()
            shutil.copy2(VPCD_DRIVER.resolve(), self._dir / "libifdvpcd.so")
        if self._prefix is None:
            self._prefix = self._namespace_prefix()
        fresh_port = self._port is None
        for _ in range(3 if fresh_port else 1):
            if fresh_port:
                self._port = find_free_port_pair()
            self._write_config()
            try:
                self._launch(binary, timeout)
                if not self._atexit_registered:
                    atexit.register(self.stop)  # a crashed test run must not leave a daemon
                    self._atexit_registered = True
                return
            except PcscdError:
                self._kill()
                if not fresh_port or not self._port_taken_in_log():
                    raise
        raise PcscdError("pcscd could not bind its vpcd ports after 3 tries")

    def stop(self, *, keep_files: bool = False, timeout: float = 3.0) -> None:
        """Stop the daemon by its pid (SIGTERM, SIGKILL after ``timeout``).

        Args:
            keep_files: keep the temporary directory and ports so that :meth:`start` brings
                the same daemon back; otherwise the directory is removed.
        """
        self._kill(timeout)
        if not keep_files and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._port = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------
    def _require_dir(self) -> Path:
        if self._dir is None:
            raise PcscdError("PrivatePcscd not started")
        return self._dir

    def _namespace_prefix(self) -> list[str]:
        """Find a way to get a private mount namespace on this machine."""
        unshare = shutil.which("unshare")
        if unshare is None:
            raise PcscdError("unshare (util-linux) not found; cannot isolate pcscd")
        candidates = [[unshare, "--mount", "--propagation", "private"]]
        candidates.append([unshare, "--user", "--map-root-user", "--mount"])
        errors = []
        for prefix in candidates:
            probe = subprocess.run(
                [*prefix, "sh", "-c", "mount -t tmpfs lendbox-probe /mnt"],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            )
            if probe.returncode == 0:
                return prefix
            errors.append(f"{' '.join(prefix[1:])}: {probe.stderr.strip()}")
        raise PcscdError(
            "cannot create a private mount namespace for pcscd (needs root or unprivileged "
            "user namespaces): " + "; ".join(errors)
        )

    def _write_config(self) -> None:
        directory = self._require_dir()
        (directory / "reader.conf").write_text(
            f'FRIENDLYNAME "{FRIENDLY_NAME}"\n'
            f"DEVICENAME   /dev/null:{self._port}\n"
            f"LIBPATH      {directory / 'libifdvpcd.so'}\n"
            f"CHANNELID    {self._port}\n"
        )

    def _launch(self, binary: str, timeout: float) -> None:
        directory = self._require_dir()
        assert self._prefix is not None
        self._log = open(directory / "pcscd.log", "ab")  # noqa: SIM115 - closed in _kill
        level = "--debug" if self._debug else "--info"
        self._proc = subprocess.Popen(
            [*self._prefix, "sh", "-c", _NAMESPACE_SCRIPT, "sh", str(directory), binary, level],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PcscdError(f"pcscd exited with {self._proc.returncode}: {self._log_tail()}")
            if self._socket_ready() and self._vpcd_listening():
                return
            time.sleep(0.02)
        raise PcscdError(f"pcscd not ready after {timeout} s: {self._log_tail()}")

    def _socket_ready(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket_path))
            except OSError:
                return False
        return True

    def _vpcd_listening(self) -> bool:
        """True when pcscd holds both vpcd ports (checked without connecting: that inserts a card)."""
        assert self._port is not None
        try:
            listening = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
        except OSError:
            return True
        found = 0
        for line in listening.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                port = int(fields[1].rsplit(":", 1)[1], 16)
                found += port in (self._port, self._port + 1)
        return found >= 2

    def _port_taken_in_log(self) -> bool:
        return "Address already in use" in self._log_tail() or "bind" in self._log_tail()

    def _log_tail(self, size: int = 1500) -> str:
        try:
            data = (self._require_dir() / "pcscd.log").read_bytes()
        except OSError:
            return ""
        return data[-size:].decode(errors="replace").strip()

    def _kill(self, timeout: float = 3.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            # The socket was created inside the namespace; a killed daemon may leave it behind.
            for leftover in ("pcscd.comm", "pcscd.pid"):
                (self._dir / "run" / "pcscd" / leftover).unlink(missing_ok=True)
