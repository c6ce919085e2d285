"""Time and memory of NNGS at scale, against scikit-learn's exact brute-force k-NN.

Computes the nearest-neighbour graph similarity of two 100,000 x 512 float32 spaces (X random
normal, Y = X + noise, so the score is neither 0 nor 1) at k = 10, with

  audioconcepts  `audioconcepts.evaluate.nngs(X, Y, k, metric)` (blocked products + compiled top-k)
  sklearn        NearestNeighbors(n_neighbors=k, algorithm="brute", metric=...).fit(S).kneighbors()
                 for S = X and S = Y, then the same mean Jaccard index (the baseline)

Each (method, metric) runs in a fresh child process that generates the data from a seed, resets
its peak-RSS counter (/proc/self/clear_refs) and then measures wall time, peak RSS above the
resident size after data generation, and the tracemalloc peak (Python/numpy allocations only;
scikit-learn's Cython buffers are not traced, so RSS is the fair column). The scores of both
methods are printed so they can be compared (exact k-NN on both sides: they should agree up to
float32 near-ties). An n x n float32 similarity matrix would need n^2 * 4 bytes (40 GB at n =
100,000); neither method builds it.

    python benchmarks/bench_similarity.py                       # n = 100,000, cosine (~15-30 min on 2 cores)
    python benchmarks/bench_similarity.py --metrics cosine euclidean
    python benchmarks/bench_similarity.py --n 20000 --quick     # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _jaccard_mean(A, B) -> float:
    import numpy as np

    k = A.shape[1]
    both = np.sort(np.concatenate([A, B], axis=1), axis=1)
    inter = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    return float(np.mean(inter / (2 * k - inter)))


def child(method: str, metric: str, n: int, d: int, k: int, seed: int) -> dict:
    import numpy as np

    try:
        import audioconcepts  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROOT / "src"))
    from audioconcepts.evaluate.similarity import knn, nngs

    if method == "audioconcepts":  # compile the top-k kernel outside the timed region
        knn(np.random.default_rng(0).standard_normal((50, 4)), 3)
    else:
        from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    Y = X + rng.standard_normal((n, d), dtype=np.float32)  # noise as strong as the signal
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak-RSS counter
        reset = True
    except OSError:
        reset = False
    base = _rss_kib("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    if method == "audioconcepts":
        score = nngs(X, Y, k, metric)
    else:
        ids = [
            NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(S).kneighbors(return_distance=False)
            for S in (X, Y)
        ]
        score = _jaccard_mean(*ids)
    wall = time.perf_counter() - t0
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _rss_kib("VmHWM")
    return {
        "method": method,
        "metric": metric,
        "score": score,
        "wall_s": wall,
        "peak_rss_mib": (peak - base) / 1024 if reset else float("nan"),
        "traced_mib": traced / 2**20,
        "rss_reset": reset,
    }


def run(method: str, metric: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", method, metric, "--n", str(args.n), "--d", str(args.d)]
    cmd += ["--k", str(args.k), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"method": method, "metric": metric, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metrics", nargs="+", default=["cosine"], choices=["cosine", "euclidean"])
    p.add_argument("--quick", action="store_true", help="n = 20,000 unless --n is given")
    p.add_argument("--child", nargs=2, metavar=("METHOD", "METRIC"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.n, args.d, args.k, args.seed)))
        return
    if args.quick and "--n" not in sys.argv:
        args.n = 20_000

    print(
        f"NNGS of two {args.n:,} x {args.d} float32 spaces, k = {args.k}; "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"an n x n float32 matrix would need {args.n**2 * 4 / 2**30:.1f} GiB (not built by either method)\n")
    header = (
        "| metric | method | wall s | peak RSS MiB | traced MiB | NNGS "
        "| speed-up (baseline s / ours) | RSS (ours / baseline) |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    for metric in args.metrics:
        rows = {m: run(m, metric, args) for m in ("audioconcepts", "sklearn")}
        ref = rows["sklearn"]
        for method, r in rows.items():
            if "error" in r:
                print(f"| {metric} | {method} | n/a: {r['error']} | | | | | |")
                continue
            tr = rr = "-"
            if method != "sklearn" and "error" not in ref:
                tr = f"{ref['wall_s'] / r['wall_s']:.2f}x"
                rr = f"{r['peak_rss_mib'] / max(ref['peak_rss_mib'], 1e-9):.2f}x"
            label = method + (" (baseline)" if method == "sklearn" else "")
            print(
                f"| {metric} | {label} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} | {r['traced_mib']:.0f} | "
                f"{r['score']:.6f} | {tr} | {rr} |"
            )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (timings are wall-clock; noisy on a busy machine)")


if __name__ == "__main__":
    main()
