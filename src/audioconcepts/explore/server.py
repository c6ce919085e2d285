"""Running the explorer: `serve` (blocking, for the command line) and `ServerThread` (in the
background, for notebooks and tests), both with uvicorn and bound to the loopback interface unless
remote access is asked for explicitly."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from typing import Any


class UnsafeHostError(ValueError):
    """A host that is not a loopback address, without allow_remote."""


def check_host(host: str, allow_remote: bool = False) -> None:
    """Refuse to bind to anything but a loopback address unless `allow_remote`: the explorer lists and
    plays every indexed file and has no authentication."""
    if allow_remote:
        return
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UnsafeHostError(
            f"refusing to serve on {host!r}: the explorer has no authentication and lets anyone who reaches it list "
            "and play every indexed file. Use 127.0.0.1 (the default), or allow remote access explicitly "
            "(allow_remote=True, --allow-remote) on a network you trust"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host.strip("[]"), 0))
        return int(s.getsockname()[1])


def serve(
    index_db_path: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    model: str | None = None,
    encoder: Any = None,
    allow_remote: bool = False,
    text_centering: str = "vocabulary",
    log_level: str = "warning",
) -> None:
    """Serve the explorer for the index at `index_db_path` until interrupted (Ctrl-C).

    `model`: the index's model spec, loaded on the first text search (or give `encoder`); without it
    text search is off and the page says why. Non-loopback hosts raise UnsafeHostError unless
    `allow_remote`."""
    import uvicorn

    from audioconcepts.explore.app import create_app

    check_host(host, allow_remote)
    app = create_app(index_db_path, model=model, encoder=encoder, text_centering=text_centering, allow_remote=allow_remote)
    try:
        uvicorn.run(app, host=host.strip("[]"), port=int(port), log_level=log_level)
    finally:
        app.state.explorer.close()


class ServerThread:
    """The explorer (or any ASGI app) served by uvicorn in a daemon thread: `with ServerThread(app) as s:`
    then open `s.url`. Binds 127.0.0.1 on a free port unless told otherwise."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None, *, allow_remote: bool = False) -> None:
        import uvicorn

        check_host(host, allow_remote)
        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host.strip("[]"), port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="audioconcepts-explorer", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the explorer did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
