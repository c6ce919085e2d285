"""Latency of the concept index at explorer scale, against brute force in memory.

Builds an index of N clips (the bundled caption space's 4,875 caption embeddings, replicated with
small perturbations to reach N; the caption vocabulary; lambda 0.15), then times the operations the
explorer and `audioconcepts search` issue, each against a numpy baseline that holds everything in
memory and answers the same question (same answers checked):

  page      one page of 50 clips with their top concepts   vs  slicing the CSR codes
  query     "water and not music" (ranked by weight)         vs  masks over the CSR codes
  like      nearest 20 to a clip's recomposed, edited code   vs  inverse_transform + Z @ q
  profile   mean weights over one label                      vs  CSR column means

    python benchmarks/bench_index.py              # N = 20,000 (~1 min)
    python benchmarks/bench_index.py --clips 5000

Latency is the median of `--repeats` calls. The baseline needs the whole collection in RAM; the
index does not (DuckDB reads what a query needs), so ratios above 1 are the price of that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
try:  # run from a checkout without `pip install -e .`
    import audioconcepts  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

from audioconcepts import ConceptDecomposer, Embeddings  # noqa: E402
from audioconcepts.caption_space import load_caption_space  # noqa: E402
from audioconcepts.index import ConceptIndex, build_index_from_embeddings  # noqa: E402
from audioconcepts.index.profile import profile  # noqa: E402
from audioconcepts.index.query import concept_query  # noqa: E402
from audioconcepts.index.search import search_like  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times)


def collection(n: int, seed: int = 0):
    space = load_caption_space()
    rng = np.random.default_rng(seed)
    base = space.embeddings.vectors
    rows = np.resize(np.arange(len(base)), n)
    Z = base[rows] + 0.02 * rng.standard_normal((n, base.shape[1])).astype(np.float32)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    labels = [f"group{r % 10}" for r in rows]
    return space.vocabulary, Embeddings(Z.astype(np.float32), space.embeddings.fingerprint), labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    vocab, Z, labels = collection(args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "index.duckdb"
        t = time.perf_counter()
        build_index_from_embeddings([f"clip{i:06d}" for i in range(len(Z))], Z, vocab, db, labels=labels)
        build_s = time.perf_counter() - t
        size_mb = db.stat().st_size / 1e6

        decomposer = ConceptDecomposer(vocab, l1_penalty=0.15).fit(Z)
        W = decomposer.transform(Z).tocsc()
        Wr = W.tocsr()
        col = {c: j for j, c in enumerate(vocab.concepts)}
        lab = np.array(labels)

        index = ConceptIndex(db)
        ids = [c.id for c in index.clips(offset=0, limit=len(Z)).items]  # index ids in clip order
        example = ids[123]

        def base_page():
            block = Wr[1000:1050]
            return [np.argsort(-block[i].toarray().ravel())[:5] for i in range(block.shape[0])]

        def base_query():
            water = W[:, col["water"]].toarray().ravel()
            music = W[:, col["music"]].toarray().ravel()
            hit = np.flatnonzero((water > 0) & (music == 0))
            return hit[np.argsort(-water[hit], kind="stable")][:20]

        def base_like():
            code = Wr[123].toarray()
            code[0, col["rain"]] = code.max()
            q = decomposer.inverse_transform(code)[0]
            s = Z.vectors @ q
            s[123] = -np.inf
            return np.argsort(-s)[:20]

        def base_profile():
            return np.asarray(Wr[lab == "group3"].mean(axis=0)).ravel()

        mine = {
            "page": lambda: index.clips(offset=1000, limit=50),
            "query": lambda: concept_query(index, "water and not music", limit=20),
            "like": lambda: search_like(index, example, {"rain": float(Wr[123].max())}, limit=20),
            "profile": lambda: profile(index, label="group3", limit=20),
        }
        baseline = {"page": base_page, "query": base_query, "like": base_like, "profile": base_profile}
        position = {clip_id: i for i, clip_id in enumerate(ids)}
        same_query = [position[i] for i in mine["query"]().ids] == base_query().tolist()
        same_like = {position[c.id] for c, _ in mine["like"]().hits} == set(base_like().tolist())
        if not (same_query and same_like):
            print(f"warning: answers differ from the baseline (query: {same_query}, like: {same_like})")
        rows = []
        for name in mine:
            ours, theirs = median_ms(mine[name], args.repeats), median_ms(baseline[name], args.repeats)
            rows.append((name, ours, theirs))
        index.close()

    print(f"concept index, {args.clips:,} clips, k = {len(vocab):,}, d = {vocab.dim}: built in {build_s:.1f} s, {size_mb:.0f} MB")
    print(f"{'operation':<10}{'index ms':>10}{'in-memory ms':>14}{'ratio':>8}")
    for name, ours, theirs in rows:
        print(f"{name:<10}{ours:>10.1f}{theirs:>14.1f}{ours / theirs:>8.1f}")


if __name__ == "__main__":
    main()
