"""The explorer's web app: JSON endpoints over a concept index, and the page that calls them.

Endpoints (all GET unless said; every list is one page: ``offset`` >= 0, 1 <= ``limit`` <= MAX_LIMIT):

- ``/``: the page; ``/static/{name}``: its script and style (a fixed whitelist of package files).
- ``/api/info``: the index (clips, vocabulary, model, whether text search is available and why not).
- ``/api/clips?offset&limit&label&folder&top``: clips ordered by path, with their top concepts.
- ``/api/clips/{id}?top``: one clip and its largest concept weights.
- ``/api/audio/{id}``: the audio file of an indexed clip, looked up by id in the index. The client
  never names a file: anything but a decimal id of an indexed clip is 404, and an index of
  precomputed embeddings serves no files at all.
- ``/api/search/concepts?q&offset&limit&top``: the concept query language (index/query.py).
- ``/api/search/text?q&rank&offset&limit&top``: free text, embedded with the index's model (loaded
  on first use; 409 with the reason when there is none).
- ``POST /api/like`` ``{"id", "edits": {concept: weight}, "offset", "limit", "top"}``: nearest clips
  to a clip's code after edits (the sliders).
- ``/api/profile?label|folder|query&offset&limit``: mean concept weights of a set of clips.
- ``/api/labels``, ``/api/folders`` (paged), ``/api/concepts?prefix&limit`` (names, for adding a concept).

Bad parameters get 400 with ``{"error": message}``. Responses carry a strict Content-Security-Policy
(scripts only from this server, no inline script), and requests whose Host header is not a loopback
name are refused (DNS rebinding) unless the app was made with ``allow_remote=True``.

One read-only `ConceptIndex` (a DuckDB connection) serves every request, behind a lock: DuckDB
connections are not shared between threads, and Starlette runs these handlers in a thread pool.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from audioconcepts.index.store import ConceptIndex, IndexError_, UnknownClipError, UnknownConceptError

#: largest page of clips, hits, concepts or labels one request may ask for
MAX_LIMIT = 100
#: largest offset (a page this far in is never useful, and bounds the work of OFFSET)
MAX_OFFSET = 10_000_000
#: most concepts shown per clip
MAX_TOP = 50
#: longest query or text accepted (characters)
MAX_QUERY = 1_000
#: most concepts one edit may change, and the largest weight a slider may set
MAX_EDITS = 64
MAX_WEIGHT = 10.0
#: largest JSON body accepted (bytes)
MAX_BODY = 64 * 1024
#: clip ids are DuckDB INTEGERs
MAX_ID = 2**31 - 1

AUDIO_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
    "aif": "audio/aiff",
    "aiff": "audio/aiff",
}
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class BadRequest(Exception):
    """A parameter that is missing, malformed or out of bounds (answered with 400 and the message)."""


class TextSearchUnavailable(Exception):
    """Text search cannot run (no model given, the model failed to load, or it is not the index's)."""


# ----------------------------------------------------------------- state
class Explorer:
    """What the app serves: one read-only index (used under `lock`) and a text encoder loaded on the
    first text search (from the `model` spec), or given ready as `encoder`."""

    def __init__(
        self,
        index_path: str | os.PathLike,
        *,
        model: str | None = None,
        encoder: Any = None,
        text_centering: str = "vocabulary",
        cache: Any = None,
    ) -> None:
        if text_centering not in ("vocabulary", "index"):
            raise ValueError(f"text_centering must be 'vocabulary' or 'index'; got {text_centering!r}")
        self.index = ConceptIndex(index_path)
        self.lock = threading.RLock()
        self.model = model or self.index.meta.get("model")  # the spec the index was built with, if known
        self.text_centering = text_centering
        self.cache = cache
        self._encoder = encoder
        self._encoder_error: str | None = None
        self._encoder_lock = threading.Lock()
        if encoder is not None:
            self._encoder_error = self._mismatch(encoder)
            if self._encoder_error:
                self._encoder = None
        meta = self.index.meta
        self.source = meta.get("source", "audio")
        self.vocabulary_name = meta.get("vocabulary_name")

    def close(self) -> None:
        with self.lock:
            self.index.close()

    def _mismatch(self, encoder: Any) -> str | None:
        if encoder.fingerprint != self.index.fingerprint:
            return (
                f"the model {self.model or encoder.fingerprint!r} is not the index's: the index was built with "
                f"{self.index.fingerprint!r}, the model is {encoder.fingerprint!r}; serve with the index's model"
            )
        return None

    def text_status(self) -> dict[str, Any]:
        """Whether text search can run, whether the model is loaded, and if not available, why."""
        if self._encoder is not None:
            return {"available": True, "loaded": True, "reason": None}
        if self._encoder_error:
            return {"available": False, "loaded": False, "reason": self._encoder_error}
        if self.model is None:
            return {
                "available": False,
                "loaded": False,
                "reason": (
                    "text search embeds the text with the index's model, and none was given: restart with "
                    f"`audioconcepts serve INDEX --model MODEL` (the index was built with {self.index.fingerprint})"
                ),
            }
        return {"available": True, "loaded": False, "reason": None}

    def encoder(self) -> Any:
        """The text encoder, loaded on first use; raises TextSearchUnavailable with the reason."""
        with self._encoder_lock:
            if self._encoder is None and self._encoder_error is None and self.model is not None:
                try:
                    from audioconcepts.encoders import load_encoder

                    encoder = load_encoder(self.model)
                except Exception as e:  # noqa: BLE001 - any failure to load is shown to the user as the reason
                    self._encoder_error = f"cannot load the model {self.model!r}: {e}"
                else:
                    self._encoder_error = self._mismatch(encoder)
                    if self._encoder_error is None:
                        self._encoder = encoder
            if self._encoder is None:
                raise TextSearchUnavailable(self.text_status()["reason"])
            return self._encoder

    def embed_text(self, text: str):
        """The text's embedding with the index's model (one text at a time: encoders are not thread-safe)."""
        from audioconcepts.encoders.cached import embed_texts

        encoder = self.encoder()
        with self._encoder_lock:
            return embed_texts(encoder, [text], self.cache).vectors[0]

    def audio_url(self, clip_id: int) -> str | None:
        return f"/api/audio/{int(clip_id)}" if self.source == "audio" else None

    def clip_dict(self, clip: Any) -> dict[str, Any]:
        return {**clip.to_dict(), "audio_url": self.audio_url(clip.id)}


# ----------------------------------------------------------------- parameters
def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise BadRequest(f"{name} must be an integer from {low} to {high}; got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be from {low} to {high}; got {value}")
    return value


def text_param(request: Request, name: str, *, required: bool = False, max_length: int = MAX_QUERY) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        if required:
            raise BadRequest(f"give {name}=... (it is empty)")
        return None
    if len(raw) > max_length:
        raise BadRequest(f"{name} is {len(raw)} characters long; the limit is {max_length}")
    if "\x00" in raw:
        raise BadRequest(f"{name} contains a NUL character")
    return raw


def page_params(request: Request, default_limit: int = 20) -> tuple[int, int]:
    return int_param(request, "offset", 0, 0, MAX_OFFSET), int_param(request, "limit", default_limit, 1, MAX_LIMIT)


def _finite(value: Any) -> Any:
    """The value with non-finite floats as None (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_response(data: Any, status_code: int = 200) -> Response:
    body = json.dumps(_finite(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body, status_code=status_code, media_type="application/json")


def error(message: str, status_code: int, **extra: Any) -> Response:
    return json_response({"error": message, **extra}, status_code)


def _handled(fn: Callable[..., Response]) -> Callable[[Request], Response]:
    """Map the index's and our errors to JSON answers with the right status."""

    def endpoint(request: Request) -> Response:
        try:
            return fn(request)
        except BadRequest as e:
            return error(str(e), 400)
        except UnknownClipError as e:
            return error(str(e), 404)
        except UnknownConceptError as e:
            return error(str(e), 400, suggestions=e.suggestions)
        except TextSearchUnavailable as e:
            return error(str(e), 409, text_search=False)
        except (IndexError_, ValueError) as e:  # query syntax, empty edited code, ...
            return error(str(e), 400)

    endpoint.__name__ = fn.__name__
    return endpoint


# ----------------------------------------------------------------- middleware
class SecurityMiddleware:
    """Adds the security headers to every response and, unless `allow_remote`, answers 400 to requests
    whose Host is not a loopback name (a web page elsewhere cannot reach the app by DNS rebinding)."""

    def __init__(self, app: Any, allow_remote: bool = False) -> None:
        self.app, self.allow_remote = app, allow_remote

    @staticmethod
    def host_name(host: str) -> str:
        host = host.strip().lower()
        if host.startswith("["):
            return host[1 : host.find("]")] if "]" in host else host
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.allow_remote:
            host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
            if self.host_name(host) not in LOOPBACK_NAMES:
                response = error(f"this explorer answers only on 127.0.0.1 / localhost, not {host[:100]!r}", 400)
                return await self._with_headers(response)(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []), *((k, v) for k, v in SECURITY_HEADERS if k not in names)]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _with_headers(self, response: Response) -> Response:
        for k, v in SECURITY_HEADERS:
            response.headers[k.decode()] = v.decode()
        return response


# ----------------------------------------------------------------- app
def _static_bytes(name: str) -> bytes:
    return resources.files("audioconcepts.explore").joinpath("static", name).read_bytes()


def create_app(
    index_path: str | os.PathLike,
    *,
    model: str | None = None,
    encoder: Any = None,
    text_centering: str = "vocabulary",
    cache: Any = None,
    allow_remote: bool = False,
) -> Starlette:
    """The explorer app over the index at `index_path` (opened read-only).

    Text search uses `encoder`, or loads the `model` spec (the index's model) on the first text
    search; without either, the page says why text search is off. `text_centering`: see
    index/search.py ("index" when the indexed embeddings are themselves texts). The `Explorer` is
    `app.state.explorer`; `app.state.explorer.close()` releases the index."""
    explorer = Explorer(index_path, model=model, encoder=encoder, text_centering=text_centering, cache=cache)
    index = explorer.index
    pages = {name: _static_bytes(name) for name in STATIC_FILES}
    page_html = _static_bytes("index.html")

    def home(request: Request) -> Response:
        return Response(page_html, media_type="text/html; charset=utf-8")

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in pages:  # a fixed whitelist: the name never reaches the file system
            raise HTTPException(404)
        return Response(pages[name], media_type=STATIC_FILES[name])

    @_handled
    def info(request: Request) -> Response:
        with explorer.lock:
            meta = index.meta
            data = {
                "clips": len(index),
                "concepts": len(index.concepts),
                "vocabulary": explorer.vocabulary_name,
                "model": index.fingerprint,
                "l1_penalty": index.l1_penalty,
                "source": explorer.source,
                "audio": explorer.source == "audio",
                "labels": len(index.labels()),
                "folders": len(index.folders()),
                "centering": meta.get("centering"),
                "max_limit": MAX_LIMIT,
                "max_weight": MAX_WEIGHT,
            }
        return json_response({**data, "text_search": explorer.text_status()})

    @_handled
    def clips(request: Request) -> Response:
        offset, limit = page_params(request)
        top = int_param(request, "top", 5, 0, MAX_TOP)
        label = text_param(request, "label")
        folder = text_param(request, "folder", max_length=4096)
        with explorer.lock:
            page = index.clips(offset=offset, limit=limit, label=label, folder=folder, top=top)
            items = [explorer.clip_dict(c) for c in page.items]
        return json_response({"total": page.total, "offset": offset, "limit": limit, "items": items})

    @_handled
    def clip(request: Request) -> Response:
        clip_id = _clip_id(request)
        top = int_param(request, "top", 12, 1, MAX_TOP)
        with explorer.lock:
            found = index.clip(clip_id, top=top)
        return json_response(explorer.clip_dict(found))

    @_handled
    def audio(request: Request) -> Response:
        clip_id = _clip_id(request)
        if explorer.source != "audio":
            raise HTTPException(404, "this index holds precomputed embeddings: it has no audio files to play")
        with explorer.lock:
            path = index.clip(clip_id, top=0).path
        extension = os.path.splitext(path)[1].lower().lstrip(".")
        if not os.path.isabs(path) or extension not in AUDIO_TYPES or not os.path.isfile(path):
            raise HTTPException(404, f"clip {clip_id}'s file is no longer there (or is not audio); re-index the folder")
        return FileResponse(path, media_type=AUDIO_TYPES[extension], content_disposition_type="inline")

    @_handled
    def search_concepts(request: Request) -> Response:
        from audioconcepts.index.query import concept_query

        query = text_param(request, "q", required=True)
        offset, limit = page_params(request)
        top = int_param(request, "top", 5, 0, MAX_TOP)
        with explorer.lock:
            result = concept_query(index, query, offset=offset, limit=limit, top=top)
            data = result.to_dict()
            data["hits"] = [{**h, "audio_url": explorer.audio_url(h["id"])} for h in data["hits"]]
        return json_response(data)

    @_handled
    def search_text(request: Request) -> Response:
        from audioconcepts.index.search import text_search

        text = text_param(request, "q", required=True)
        rank = request.query_params.get("rank", "dense")
        if rank not in ("dense", "concepts"):
            raise BadRequest(f"rank must be 'dense' or 'concepts'; got {rank[:40]!r}")
        offset, limit = page_params(request)
        top = int_param(request, "top", 5, 0, MAX_TOP)
        vector = explorer.embed_text(text)
        with explorer.lock:
            result = text_search(
                index, text, text_embedding=vector, rank=rank, offset=offset, limit=limit, top=top,
                text_centering=explorer.text_centering,
            )
            data = result.to_dict()
            data["hits"] = [{**h, "audio_url": explorer.audio_url(h["id"])} for h in data["hits"]]
        return json_response(data)

    def like_sync(body: Any) -> Response:
        from audioconcepts.index.search import search_like

        if not isinstance(body, dict):
            raise BadRequest('the body must be a JSON object {"id": ..., "edits": {...}}')
        clip_id = body.get("id")
        if not isinstance(clip_id, int) or isinstance(clip_id, bool) or not 0 <= clip_id <= MAX_ID:
            raise BadRequest(f"id must be a clip id (an integer); got {str(clip_id)[:40]!r}")
        edits = body.get("edits", {}) or {}
        if not isinstance(edits, dict):
            raise BadRequest("edits must be an object {concept: new weight}")
        if len(edits) > MAX_EDITS:
            raise BadRequest(f"at most {MAX_EDITS} edits at a time; got {len(edits)}")
        clean: dict[str, float] = {}
        for name, weight in edits.items():
            if not isinstance(name, str) or not name.strip() or len(name) > 200:
                raise BadRequest("each edited concept must be a non-empty name of at most 200 characters")
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight):
                raise BadRequest(f"the weight of {name[:100]!r} must be a number; got {str(weight)[:40]!r}")
            if not 0 <= weight <= MAX_WEIGHT:
                raise BadRequest(f"the weight of {name[:100]!r} must be from 0 to {MAX_WEIGHT:g}; got {weight}")
            clean[name] = float(weight)
        paging = {}
        for key, default, low, high in (("offset", 0, 0, MAX_OFFSET), ("limit", 10, 1, MAX_LIMIT), ("top", 5, 0, MAX_TOP)):
            value = body.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise BadRequest(f"{key} must be an integer from {low} to {high}; got {str(value)[:40]!r}")
            paging[key] = value
        with explorer.lock:
            result = search_like(index, clip_id, clean, **paging)
            data = result.to_dict()
            data["source"] = {**data["source"], "audio_url": explorer.audio_url(clip_id)}
            data["hits"] = [{**h, "audio_url": explorer.audio_url(h["id"])} for h in data["hits"]]
        return json_response(data)

    handled_like = _handled(like_sync)

    async def like(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return error(f"the body is larger than {MAX_BODY} bytes", 413)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return error("send the edits as JSON (Content-Type: application/json)", 415)
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                return error(f"the body is larger than {MAX_BODY} bytes", 413)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            return error(f"the body is not valid JSON: {e}", 400)
        return await run_in_threadpool(handled_like, body)

    @_handled
    def profile_endpoint(request: Request) -> Response:
        from audioconcepts.index.profile import profile

        offset, limit = page_params(request)
        label = text_param(request, "label")
        folder = text_param(request, "folder", max_length=4096)
        query = text_param(request, "query")
        with explorer.lock:
            result = profile(index, label=label, folder=folder, query=query, offset=offset, limit=limit)
        return json_response(result.to_dict())

    def _named_counts(items: list[tuple[str, int]], request: Request) -> Response:
        offset, limit = page_params(request, default_limit=MAX_LIMIT)
        page = items[offset : offset + limit]
        return json_response({"total": len(items), "offset": offset, "limit": limit, "items": [{"name": n, "clips": c} for n, c in page]})

    @_handled
    def labels(request: Request) -> Response:
        with explorer.lock:
            items = index.labels()
        return _named_counts(items, request)

    @_handled
    def folders(request: Request) -> Response:
        with explorer.lock:
            items = index.folders()
        return _named_counts(items, request)

    @_handled
    def concepts(request: Request) -> Response:
        prefix = (text_param(request, "prefix", max_length=200) or "").casefold()
        limit = int_param(request, "limit", 20, 1, MAX_LIMIT)
        with explorer.lock:
            names = index.concepts
        starts = [n for n in names if n.casefold().startswith(prefix)]
        inside = [n for n in names if prefix in n.casefold() and not n.casefold().startswith(prefix)] if prefix else []
        found = (starts + inside)[:limit]
        return json_response({"total": len(starts) + len(inside), "items": found})

    async def not_found(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if exc.status_code != 404 or exc.detail != "Not Found" else "not found"
        return error(str(message), exc.status_code)

    routes = [
        Route("/", home),
        Route("/static/{name}", static),
        Route("/api/info", info),
        Route("/api/clips", clips),
        Route("/api/clips/{clip_id}", clip),
        Route("/api/audio/{clip_id}", audio),
        Route("/api/search/concepts", search_concepts),
        Route("/api/search/text", search_text),
        Route("/api/like", like, methods=["POST"]),
        Route("/api/profile", profile_endpoint),
        Route("/api/labels", labels),
        Route("/api/folders", folders),
        Route("/api/concepts", concepts),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.explorer = explorer
    app.add_middleware(SecurityMiddleware, allow_remote=allow_remote)
    return app


def _clip_id(request: Request) -> int:
    """The {clip_id} of the path: decimal digits naming an indexed clip, else 404."""
    raw = request.path_params["clip_id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        raise HTTPException(404, f"no clip with id {raw[:40]!r}: clips are named by their numeric id")
    return int(raw)
