"""Serve an ASGI app with uvicorn on a thread, on a socket the caller already bound.

Why one helper: the stand-in server and the tests' real server both need "listen on this
port, return once it accepts connections, fail loudly if it does not", and binding the socket
first is what lets them pick a free port and reopen the same one after a pause or restart.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

__all__ = ["serve_in_thread"]


def serve_in_thread(app: Any, sock: socket.socket, *, name: str, lifespan: str = "off",
                    timeout: float = 10.0) -> tuple[uvicorn.Server, threading.Thread]:
    """Start uvicorn on ``sock`` in a daemon thread; return once it has started.

    Raises:
        RuntimeError: it did not start within ``timeout`` (the socket is closed).
    """
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan,
                            timeout_graceful_shutdown=1, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name,
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(2.0)
            sock.close()
            raise RuntimeError(f"{name}: the HTTP server did not start")
        time.sleep(0.01)
    return server, thread
