"""The local web explorer: browse, search, edit and profile a concept index in a browser.

`create_app(index_path, model=...)` builds the Starlette app (JSON endpoints plus a small vanilla-JS
page shipped as package data); `serve(index_path, host, port)` runs it with uvicorn on the loopback
interface. Needs the `explore` extra (starlette, uvicorn); importing this package does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from audioconcepts.explore.app import Explorer, create_app
    from audioconcepts.explore.server import ServerThread, serve

__all__ = ["Explorer", "ServerThread", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("Explorer", "create_app"):
        from audioconcepts.explore import app

        return getattr(app, name)
    if name in ("ServerThread", "serve"):
        from audioconcepts.explore import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
