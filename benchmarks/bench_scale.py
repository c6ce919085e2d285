"""Out-of-core decompose job at scale: rows/s and peak memory of the local engine on 1,000,000
embeddings, Ray with 2 workers, against in-memory ConceptDecomposer.transform timed in the same run.

Problem: d = 512 (LAION CLAP size), k = 2,000 concepts, lambda = 0.15, synthetic but CLAP-like
(the recipe of bench_solvers.synthetic_problem: clustered low-rank concepts with a shared text
offset; targets are non-negative mixtures of 5-40 concepts plus noise, moved off by a modality
offset). The input is written as Parquet in the `audioconcepts embed` format, in row groups, chunk
by chunk, so generating it never holds the whole input either.

Rows (each job in a fresh child process, so its peak RSS (ru_maxrss) is its own):

  baseline     in-memory fit(modality_mean) + transform of the first `--baseline-rows` rows, the
               array already in memory (no I/O): what a user would do with a small input;
  local small  the local engine on the first `--small-rows` rows (its own input file);
  local        the local engine on all `--rows` rows: streamed modality-mean pass, decomposition,
               Parquet parts, manifest;
  ray x2       the Ray engine (local cluster, 2 actors with 1 CPU each) on the `--small-rows` file,
               including cluster start-up and actor start-up.

Peak RSS of "local" vs "local small" shows the memory bound: 10x the rows, about the same peak.

    python benchmarks/bench_scale.py                         # full run: 1M rows (~10-20 min on 2 cores)
    python benchmarks/bench_scale.py --rows 100000 --small-rows 20000 --baseline-rows 5000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
try:  # run from a checkout without `pip install -e .`
    import audioconcepts  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])

FINGERPRINT = "synthetic:bench-scale;d=512"


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=-1, keepdims=True)


class Synthetic:
    """Concepts once; targets chunk by chunk (seeded per chunk, so any chunk can be regenerated)."""

    def __init__(self, k: int, d: int, seed: int = 0, rank: int = 64, n_clusters: int = 250) -> None:
        rng = np.random.default_rng(seed)
        basis = np.linalg.qr(rng.standard_normal((d, rank)))[0].T
        scales = 1.0 / np.sqrt(1.0 + np.arange(rank) / 8.0)
        centres = rng.standard_normal((n_clusters, rank)) * scales
        latent = centres[rng.integers(n_clusters, size=k)] + 0.6 * rng.standard_normal((k, rank)) * scales
        text_dir = _unit(rng.standard_normal(d))
        self.semantic = _unit(_unit(latent @ basis) + 0.7 * _unit(rng.standard_normal((k, d))))
        self.concepts = _unit(0.55 * text_dir + np.sqrt(1 - 0.55**2) * self.semantic).astype(np.float32)
        self.audio_dir = _unit(0.45 * text_dir + np.sqrt(1 - 0.45**2) * _unit(rng.standard_normal(d)))
        self.k, self.d, self.seed = k, d, seed

    def rows(self, n: int, chunk: int) -> np.ndarray:
        import scipy.sparse as sp

        rng = np.random.default_rng([self.seed, chunk])
        m = rng.integers(5, 41, size=n)
        cols = np.concatenate([rng.choice(self.k, size=mi, replace=False) for mi in m])
        W = sp.csr_matrix((rng.uniform(0.2, 1.0, size=m.sum()), cols, np.concatenate([[0], np.cumsum(m)])), shape=(n, self.k))
        T = _unit(_unit(np.asarray(W @ self.semantic)) + _unit(rng.standard_normal((n, self.d))))
        return _unit(np.sqrt(1 - 0.25) * T + 0.5 * self.audio_dir).astype(np.float32)


def write_input(path: Path, synthetic: Synthetic, n: int, chunk: int = 50_000, row_group: int = 65_536) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("fingerprint", pa.string()), ("vector", pa.list_(pa.float32(), synthetic.d))])
    with pq.ParquetWriter(path, schema) as writer:
        for c, lo in enumerate(range(0, n, chunk)):
            hi = min(n, lo + chunk)
            X = synthetic.rows(hi - lo, c)
            table = pa.table(
                {
                    "id": pa.array([f"clip-{i:07d}" for i in range(lo, hi)]),
                    "fingerprint": pa.array([FINGERPRINT] * (hi - lo)),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), synthetic.d),
                },
                schema=schema,
            )
            writer.write_table(table, row_group_size=row_group)


# ------------------------------------------------------------------------------ child runs


def child(args: argparse.Namespace) -> None:
    """One measured run in this (fresh) process; prints one JSON line."""
    from audioconcepts import ConceptDecomposer
    from audioconcepts.jobs import RayOptions, decompose_job
    from audioconcepts.vocab import Vocabulary

    vocabulary = Vocabulary.load(args.vocab, fingerprint=FINGERPRINT)
    t0 = time.perf_counter()
    if args.child == "baseline":
        from audioconcepts.jobs import EmbeddingSource, streamed_modality_mean

        source = EmbeddingSource(args.input)
        mean, _ = streamed_modality_mean(source)
        X = next(source.read(0, args.n, args.n)).vectors
        t0 = time.perf_counter()
        model = ConceptDecomposer(vocabulary, args.lam).fit(modality_mean=mean)
        codes = model.transform(X)
        seconds, rows, nnz = time.perf_counter() - t0, X.shape[0], codes.nnz / X.shape[0]
    else:
        options = {}
        if args.child == "ray":
            import ray

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            options = {"engine": "ray", "ray": RayOptions(concurrency=2, num_cpus=1)}
        result = decompose_job(args.input, args.vocab, args.out, l1_penalty=args.lam, chunk_rows=args.chunk_rows,
                               progress=False, **options)
        seconds, rows = time.perf_counter() - t0, result.rows_written
        manifest = json.loads((Path(args.out) / "_manifest.json").read_text())
        nnz = sum(p["weights"] for p in manifest["parts"]) / result.rows
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; for Ray: the driver only
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mib": peak, "nnz": nnz}))


def run_child(kind: str, **kw) -> dict:
    cmd = [sys.executable, __file__, "--child", kind] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--small-rows", type=int, default=100_000, help="rows for 'local small' and 'ray x2'")
    p.add_argument("--baseline-rows", type=int, default=20_000)
    p.add_argument("--chunk-rows", type=int, default=49_152)
    p.add_argument("--k", type=int, default=2000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--lam", type=float, default=0.15)
    p.add_argument("--workdir", type=Path, default=None, help="where inputs and outputs go (default: a temp dir)")
    p.add_argument("--no-ray", action="store_true")
    # internal: one measured run in a child process
    p.add_argument("--child", choices=["baseline", "local", "ray"], help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--vocab", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return

    from audioconcepts.vocab import Vocabulary

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    synthetic = Synthetic(args.k, args.d)
    vocab = work / "vocab.npz"
    Vocabulary([f"concept-{i}" for i in range(args.k)], synthetic.concepts, FINGERPRINT).save(vocab)
    big, small = work / f"emb_{args.rows}.parquet", work / f"emb_{args.small_rows}.parquet"
    t = time.perf_counter()
    for path, n in ((big, args.rows), (small, args.small_rows)):
        if not path.exists():
            write_input(path, synthetic, n)
    print(f"inputs ready in {time.perf_counter() - t:.0f} s: {big.stat().st_size / 2**20:,.0f} MiB ({args.rows:,} rows), "
          f"{small.stat().st_size / 2**20:,.0f} MiB ({args.small_rows:,} rows); d = {args.d}, k = {args.k}, "
          f"lambda = {args.lam}, chunk_rows = {args.chunk_rows:,}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
          flush=True)
    common = {"vocab": vocab, "lam": args.lam, "chunk_rows": args.chunk_rows}
    results = {}
    results["baseline (in-memory transform)"] = run_child("baseline", input=small, n=args.baseline_rows, **common)
    print("baseline done", flush=True)
    results["local engine, small input"] = run_child("local", input=small, out=work / "out_small", **common)
    print("local small done", flush=True)
    results["local engine, full input"] = run_child("local", input=big, out=work / "out_big", **common)
    print("local full done", flush=True)
    if not args.no_ray:
        results["ray, 2 workers x 1 CPU, small input"] = run_child("ray", input=small, out=work / "out_ray", **common)
    base = results["baseline (in-memory transform)"]
    base_rate = base["rows"] / base["seconds"]
    print()
    print("| run | rows | wall s | rows/s | vs baseline | peak RSS MiB | nnz/row |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        print(f"| {name} | {r['rows']:,} | {r['seconds']:,.1f} | {rate:,.0f} | {rate / base_rate:.2f}x | {r['peak_mib']:,.0f} | {r['nnz']:.1f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; work dir {work}")


if __name__ == "__main__":
    main()
