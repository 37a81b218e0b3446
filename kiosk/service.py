"""`lendbox kiosk run`: the cabinet application as one process (engine + HTTP API).

Why a module of its own: the crash-trial harness and the benchmarks start exactly this
process and kill it with SIGKILL, so start-up must print one line that says it is ready
(and on which port), and a SIGTERM or Ctrl-C must close the devices and the ledger.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .config import load_config

__all__ = ["serve"]


def serve(config_path: Path, *, host: str | None = None, port: int | None = None,
          log_level: str = "warning") -> int:
    """Run the cabinet until SIGTERM/SIGINT. Prints ``kiosk ready http://HOST:PORT`` once
    the ledger is recovered, the devices answer and the API listens."""
    import uvicorn

    from .api import create_app
    from .runtime import KioskRuntime

    t0 = time.monotonic()
    config = load_config(config_path)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = KioskRuntime(config).start()
    app = create_app(runtime)
    uv = uvicorn.Server(uvicorn.Config(app, host=host or config.api.host,
                                       port=config.api.port if port is None else port,
                                       log_level=log_level, access_log=False))
    stopped = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        runtime.closing()
        uv.should_exit = True
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=uv.run, name="kiosk-http", daemon=True)
    thread.start()
    while not uv.started and thread.is_alive():
        time.sleep(0.01)
    if not uv.started:
        runtime.stop()
        print("kiosk: the HTTP API could not start (port in use?)", file=sys.stderr)
        return 1
    sock = uv.servers[0].sockets[0].getsockname()
    print(f"kiosk ready http://{sock[0]}:{sock[1]} in {time.monotonic() - t0:.2f}s",
          flush=True)
    try:
        while thread.is_alive() and not stopped.wait(0.2):
            pass
    finally:
        uv.should_exit = True
        thread.join(timeout=5)
        runtime.stop()
    return 0
