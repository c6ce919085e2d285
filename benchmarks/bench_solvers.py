"""Throughput and accuracy of the non-negative lasso solvers, against the paper's solver.

For lambda in {0.25, 0.15, 0.05} and two problems

  caption   the bundled MiniLM caption space: k = 2000 concepts, d = 384, 4875 captions as targets;
  synthetic d = 1024 (Microsoft CLAP size), k = 2000, built to resemble CLAP geometry (see
            `synthetic_problem`), 8000 targets,

it times each solver (embeddings per second), certifies its output (worst duality gap and worst
KKT violation, computed outside the timed region on the very output that was timed), reports the
mean number of non-zeros per row, the speed-up over scikit-learn (the paper's solver, timed in the
same run on a subset) and whether the target is met. One "ceiling" row per problem and dtype gives
the rate of the single correlation product Z @ C.T, which bounds any solver.

    python benchmarks/bench_solvers.py            # full run (~3-5 min on 2 cores)
    python benchmarks/bench_solvers.py --quick    # smoke run (< 1 min)
    python benchmarks/bench_solvers.py --rows 2000

The table is also written as CSV to benchmarks/results/ (git-ignored), with a timestamp.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
try:  # run from a checkout without `pip install -e .`
    import audioconcepts  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

from audioconcepts.decompose import certify  # noqa: E402
from audioconcepts.decompose.preprocess import center, l2_normalize  # noqa: E402
from audioconcepts.decompose.solvers import make_solver  # noqa: E402

LAMBDAS = (0.25, 0.15, 0.05)  # descending: the torch solver requires a decreasing list
#: embeddings/s a solver must reach on this 2-core machine, with certificates <= CERT_TARGET
TARGETS = {0.25: 10_000.0, 0.05: 2_000.0}
CERT_TARGET = 1e-6
DATA = ROOT / "src" / "audioconcepts" / "data" / "caption_space.npz"
RESULTS = HERE / "results"


# --------------------------------------------------------------------------------------------
# problems


@dataclass
class Problem:
    name: str
    C: np.ndarray  # (k, d) preprocessed concepts, float64
    Z: np.ndarray  # (n, d) preprocessed targets, float64
    summary: str = ""


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=-1, keepdims=True)


def _geometry(E: np.ndarray, X: np.ndarray, C: np.ndarray) -> str:
    """A one-line description of the raw and preprocessed geometry, to compare the problems."""
    me, mx = l2_normalize(E).mean(0), l2_normalize(X).mean(0)
    s2 = np.linalg.svd(C, compute_uv=False) ** 2
    s2 /= s2.sum()
    cos = me @ mx / (np.linalg.norm(me) * np.linalg.norm(mx))
    return (
        f"|mean concept| {np.linalg.norm(me):.2f}, |mean target| {np.linalg.norm(mx):.2f}, "
        f"cos(means) {cos:.2f}; centred concepts: effective rank {1 / np.sum(s2**2):.0f}, "
        f"top-64 variance {s2[:64].sum():.0%}"
    )


def caption_problem(rows: int | None) -> Problem:
    data = np.load(DATA)
    E = data["concept_embeddings"].astype(np.float64)
    X = data["caption_embeddings"].astype(np.float64)
    C = center(E, l2_normalize(E).mean(0))
    Z = center(X, l2_normalize(X).mean(0))  # the mean over all captions, whatever `rows` is
    if rows is not None:
        Z = Z[:rows]
    k, d = C.shape
    return Problem("caption", C, np.ascontiguousarray(Z), f"k={k}, d={d}, n={len(Z)}; " + _geometry(E, X, C))


def synthetic_problem(
    n: int,
    *,
    k: int = 2000,
    d: int = 1024,
    rank: int = 64,
    n_clusters: int = 250,
    text_offset: float = 0.55,
    concept_noise: float = 0.7,
    target_noise: float = 1.0,
    modality_offset: float = 0.5,
    offset_alignment: float = 0.45,
    mix: tuple[int, int] = (5, 40),
    seed: int = 0,
) -> Problem:
    """A CLAP-sized problem with CLAP-like geometry rather than isotropic noise.

    Concepts (text embeddings): normalise(shared text offset + semantic part), where the semantic
    part is normalise(low-rank structure + noise): `n_clusters` cluster centres in a rank-`rank`
    subspace with a decaying spectrum (synonyms and near-duplicates form clusters), plus isotropic
    noise. Targets (audio embeddings): normalise(sparse non-negative mixture of 5-40 concepts'
    semantic parts + noise), then moved off by a modality offset (partly aligned with the text
    offset, as in CLAP's modality gap) and normalised. Both are then preprocessed as in SpLiCE.
    The constants are tuned so that sparsity along lambda matches the caption space.
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((d, rank)))[0].T  # (rank, d), orthonormal rows
    scales = 1.0 / np.sqrt(1.0 + np.arange(rank) / 8.0)  # decaying spectrum
    centres = rng.standard_normal((n_clusters, rank)) * scales
    latent = centres[rng.integers(n_clusters, size=k)] + 0.6 * rng.standard_normal((k, rank)) * scales
    structure = _unit(latent @ basis)
    text_dir = _unit(rng.standard_normal(d))
    semantic = _unit(structure + concept_noise * _unit(rng.standard_normal((k, d))))
    E = _unit(text_offset * text_dir + np.sqrt(1 - text_offset**2) * semantic)

    m = rng.integers(mix[0], mix[1] + 1, size=n)
    cols = np.concatenate([rng.choice(k, size=mi, replace=False) for mi in m])
    W = sp.csr_matrix((rng.uniform(0.2, 1.0, size=m.sum()), cols, np.concatenate([[0], np.cumsum(m)])), shape=(n, k))
    T = _unit(_unit(np.asarray(W @ semantic)) + target_noise * _unit(rng.standard_normal((n, d))))
    audio_dir = _unit(offset_alignment * text_dir + np.sqrt(1 - offset_alignment**2) * _unit(rng.standard_normal(d)))
    X = _unit(np.sqrt(1 - modality_offset**2) * T + modality_offset * audio_dir)

    C = center(E, l2_normalize(E).mean(0))
    Z = center(X, l2_normalize(X).mean(0))
    return Problem("synthetic", C, np.ascontiguousarray(Z), f"k={k}, d={d}, n={n}, seed={seed}; " + _geometry(E, X, C))


# --------------------------------------------------------------------------------------------
# measurements


@dataclass
class Row:
    problem: str
    lam: float | None
    solver: str
    rows: int = 0
    of_rows: int = 0
    timing: str = ""
    rate: float = float("nan")
    ratio: float = float("nan")
    nnz: float = float("nan")
    gap: float = float("nan")
    kkt: float = float("nan")
    diff: float = float("nan")  # max |w - w_active_set| on the same rows
    n_status: int = 0  # rows with a non-zero solver status
    target: float | None = None
    met: str = "-"
    note: str = ""
    codes: sp.csr_matrix | None = field(default=None, repr=False)


def _err(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".splitlines()[0]
    return msg if len(msg) <= 90 else msg[:87] + "..."


def time_solve(solver, Z: np.ndarray, lam: float, repeats: int):
    """Best wall time of `repeats` cold single-lambda solves, and the result of that solve."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = solver.solve(Z, [lam])[0]
        elapsed = time.perf_counter() - t0
        if elapsed < best:
            best, result = elapsed, res
    return best, result


def time_budgeted(solver, Z: np.ndarray, lam: float, budget: float, first: int = 16):
    """For a slow solver: time it on the first `first` rows of Z, then 4x as many, ... while the
    next step should still fit in `budget` seconds (a batched solver's rate grows with the batch,
    so the largest affordable run is the fair one). Returns (time, result, rows) of the last run."""
    n = len(Z)
    m = min(n, first)
    spent = 0.0
    while True:
        t, res = time_solve(solver, Z[:m], lam, 1)
        spent += t
        if m == n or spent + 4 * t > budget:
            return t, res, m
        m = min(n, 4 * m)


def fill_certificates(row: Row, P: Problem, res, lam: float) -> None:
    n = row.rows
    gap, kkt = certify(P.Z[:n], P.C, res.codes, lam)
    row.codes = res.codes
    row.nnz = float(res.codes.getnnz(axis=1).mean())
    row.gap = float(gap.max())
    row.kkt = float(kkt.max())
    row.n_status = int(np.count_nonzero(np.asarray(res.status)))


def ceiling_rows(P: Problem, repeats: int) -> list[Row]:
    out = []
    for dtype in (np.float64, np.float32):
        Z, C = P.Z.astype(dtype), P.C.astype(dtype)
        Z @ C.T  # warm-up (BLAS threads)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            Z @ C.T
            best = min(best, time.perf_counter() - t0)
        name = f"ceiling f{8 * np.dtype(dtype).itemsize}"
        out.append(Row(P.name, None, name, len(Z), len(Z), f"best of {repeats}", rate=len(Z) / best,
                       note="Z @ C.T alone"))
    return out


def bench_problem(P: Problem, args) -> list[Row]:
    n = len(P.Z)
    rows: list[Row] = ceiling_rows(P, 5)
    by_key: dict[tuple[str, float], Row] = {}

    def add(row: Row) -> Row:
        rows.append(row)
        if row.lam is not None:
            by_key[(row.solver, row.lam)] = row
        return row

    def fail_all(name: str, e: BaseException, m: int) -> None:
        for lam in LAMBDAS:
            add(Row(P.name, lam, name, m, n, note=f"n/a: {_err(e)}"))

    for name in args.solvers:
        log(f"  {P.name}: {name}")
        try:
            solver = make_solver(name, P.C)
        except Exception as e:  # noqa: BLE001 - a solver under construction must not stop the run
            if args.verbose:
                traceback.print_exc()
            fail_all(name, e, 0)
            continue

        if name == "sklearn":
            m = min(n, args.sklearn_rows)
            try:
                solver.solve(P.Z[:1], [LAMBDAS[0]])  # imports
            except Exception as e:  # noqa: BLE001
                fail_all(name, e, m)
                continue
            for lam in LAMBDAS:
                row = add(Row(P.name, lam, name, m, n, "1 run"))  # too slow for more
                try:
                    t, res = time_solve(solver, P.Z[:m], lam, 1)
                    row.rate = m / t
                    fill_certificates(row, P, res, lam)
                    row.note = "paper tol 1e-4"
                except Exception as e:  # noqa: BLE001
                    row.note = f"n/a: {_err(e)}"
            continue

        # fast solvers: a warm-up call (numba JIT compile / torch set-up) on a few rows first
        try:
            t0 = time.perf_counter()
            if name == "torch":  # set-up costs only; its first call needs no compilation
                solver.solve(P.Z[:4], [LAMBDAS[0]])
            else:
                solver.solve(P.Z[:16], list(LAMBDAS))
            log(f"    warm-up {time.perf_counter() - t0:.1f}s")
        except Exception as e:  # noqa: BLE001
            if args.verbose:
                traceback.print_exc()
            fail_all(name, e, n)
            continue

        for lam in LAMBDAS:
            row = add(Row(P.name, lam, name, n, n))
            try:
                if name == "torch":
                    t, res, m = time_budgeted(solver, P.Z, lam, args.torch_budget, 8 if args.quick else 16)
                    repeats = 1
                else:
                    m, repeats = n, args.repeats
                    t, res = time_solve(solver, P.Z, lam, repeats)
                row.rows = m
                row.rate = m / t
                row.timing = f"best of {repeats}" if repeats > 1 else "1 run"
                if m < n:
                    row.note = f"{args.torch_budget:g}s budget"
                fill_certificates(row, P, res, lam)
            except Exception as e:  # noqa: BLE001
                if args.verbose:
                    traceback.print_exc()
                row.note = f"n/a: {_err(e)}"
            log(f"    lambda {lam}: {row.rows} rows, {row.rate:,.0f}/s {row.note}")

    # ratios, agreement with active-set, targets
    for row in rows:
        if row.lam is None:
            continue
        sk = by_key.get(("sklearn", row.lam))
        if sk is not None and np.isfinite(sk.rate):
            row.ratio = row.rate / sk.rate
        ref = by_key.get(("active-set", row.lam))
        if row.solver != "active-set" and ref is not None and ref.codes is not None and row.codes is not None:
            m = min(row.rows, ref.rows)
            delta = (row.codes[:m] - ref.codes[:m]).tocsr()
            row.diff = float(abs(delta).max()) if delta.nnz else 0.0
        row.target = TARGETS.get(row.lam)
        if row.target is not None and np.isfinite(row.rate):
            cert_ok = max(row.gap, row.kkt) <= CERT_TARGET
            fast = row.rate >= row.target
            row.met = "yes" if cert_ok and fast else "no: " + "+".join(
                w for w, bad in (("speed", not fast), ("cert", not cert_ok)) if bad
            )
        if row.n_status and not row.note.startswith("n/a"):
            row.note = (row.note + "; " if row.note else "") + f"status != 0 on {row.n_status} rows"
    return rows


# --------------------------------------------------------------------------------------------
# output


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt(x: float, spec: str) -> str:
    return "-" if x is None or not np.isfinite(x) else format(x, spec)


COLUMNS = (
    "problem", "lambda", "solver", "rows", "timing", "emb/s", "x sklearn", "nnz/row",
    "worst gap", "worst KKT", "max|dw| vs AS", "target emb/s", "met", "notes",
)


def table_cells(r: Row) -> list[str]:
    na = r.note.startswith("n/a")
    return [
        r.problem,
        "-" if r.lam is None else f"{r.lam:g}",
        r.solver,
        "-" if na and not r.rows else f"{r.rows:,}" if r.rows == r.of_rows else f"{r.rows:,}/{r.of_rows:,}",
        r.timing,
        "n/a" if na else _fmt(r.rate, ",.0f"),
        "" if na else _fmt(r.ratio, ",.1f"),
        "" if na else _fmt(r.nnz, ".1f"),
        "" if na else _fmt(r.gap, ".1e"),
        "" if na else _fmt(r.kkt, ".1e"),
        "" if na else _fmt(r.diff, ".1e"),
        "-" if r.target is None else f">= {r.target:,.0f}",
        "n/a" if na and r.target is not None else r.met,
        r.note,
    ]


def print_table(rows: list[Row], header: list[str], footer: list[str], plain: bool) -> None:
    cells = [table_cells(r) for r in rows]
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
    if not plain:
        console = Console(width=max(180, Console().width))
        table = Table(title="Non-negative lasso solvers: throughput and certificates", title_justify="left")
        for c in COLUMNS:
            table.add_column(c, justify="left" if c in ("problem", "solver", "timing", "met", "notes") else "right",
                             no_wrap=c != "notes")
        prev = None
        for r, cs in zip(rows, cells):
            if prev is not None and r.problem != prev:
                table.add_section()
            prev = r.problem
            table.add_row(*cs)
        for line in header:
            console.print(line)
        console.print(table)
        for line in footer:
            console.print(line)
        return
    widths = [max(len(c), *(len(cs[i]) for cs in cells)) for i, c in enumerate(COLUMNS)]
    for line in header:
        print(line)
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    prev = None
    for r, cs in zip(rows, cells):
        if prev is not None and r.problem != prev:
            print()
        prev = r.problem
        print("  ".join(c.ljust(w) for c, w in zip(cs, widths)).rstrip())
    for line in footer:
        print(line)


def save_csv(rows: list[Row], meta: dict[str, str], quick: bool) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = meta["timestamp"].replace(":", "").replace("-", "")
    path = RESULTS / f"bench_solvers_{stamp}{'_quick' if quick else ''}.csv"
    fields = ["problem", "lambda", "solver", "rows", "of_rows", "timing", "emb_per_s", "ratio_vs_sklearn",
              "mean_nnz", "worst_gap", "worst_kkt", "max_abs_diff_vs_active_set", "rows_status_nonzero",
              "target_emb_per_s", "target_met", "note", *meta]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for r in rows:
            w.writerow([r.problem, "" if r.lam is None else r.lam, r.solver, r.rows, r.of_rows, r.timing,
                        r.rate, r.ratio, r.nnz, r.gap, r.kkt, r.diff, r.n_status,
                        "" if r.target is None else r.target, r.met, r.note, *meta.values()])
    return path


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: few rows, small sklearn subset and torch budget")
    p.add_argument("--rows", type=int, default=None,
                   help="rows for the fast solvers (default: caption all 4875, synthetic 8000; --quick 600)")
    p.add_argument("--sklearn-rows", type=int, default=None, help="sklearn subset (default 100, --quick 30)")
    p.add_argument("--torch-budget", type=float, default=None,
                   help="seconds per torch measurement; its rows are sized to fit (default 10, --quick 2)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of each fast-solver timing; the best counts")
    p.add_argument("--solvers", nargs="+", default=["active-set", "torch", "sklearn"])
    p.add_argument("--problems", nargs="+", default=["caption", "synthetic"], choices=["caption", "synthetic"])
    p.add_argument("--plain", action="store_true", help="plain-text table even if rich is installed")
    p.add_argument("--no-save", action="store_true", help="do not write the CSV")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of failing solvers")
    args = p.parse_args(argv)
    if args.sklearn_rows is None:
        args.sklearn_rows = 30 if args.quick else 100
    if args.torch_budget is None:
        args.torch_budget = 2.0 if args.quick else 10.0
    rows_arg = args.rows if args.rows is not None else (600 if args.quick else None)

    import numba

    threads = [f"numba {numba.get_num_threads()}"]
    try:
        import torch

        threads.append(f"torch {torch.get_num_threads()}")
    except ImportError:
        pass
    load0 = os.getloadavg()
    started = time.perf_counter()
    meta = {
        "timestamp": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "threads": ", ".join(threads),
        "mode": "quick" if args.quick else "full",
    }

    all_rows: list[Row] = []
    header = [
        f"{meta['timestamp']}  {meta['machine']}  threads: {meta['threads']}  "
        f"python {platform.python_version()}  numpy {np.__version__}",
    ]
    for name in args.problems:
        log(f"building problem {name} ...")
        P = caption_problem(rows_arg) if name == "caption" else synthetic_problem(rows_arg or 8000)
        header.append(f"{P.name}: {P.summary}")
        all_rows += bench_problem(P, args)

    load1 = os.getloadavg()
    meta["load_avg"] = f"{load0[0]:.1f} -> {load1[0]:.1f}"
    meta["wall_s"] = f"{time.perf_counter() - started:.0f}"
    footer = [
        f"emb/s: embeddings per second, one cold solve per lambda, wall time; fast solvers: best of {args.repeats} "
        f"after a warm-up; sklearn: one run on a subset; torch: the largest subset that fits a "
        f"{args.torch_budget:g}s budget. x sklearn: relative to sklearn measured in this run.",
        "rows a/b: a subset, the first a of b rows. worst gap / KKT: max over rows of the duality gap and KKT "
        "violation of the timed output, objective ||C^T w - z||^2 + lambda ||w||_1.",
        "max|dw| vs AS: max abs weight difference to active-set on the same rows (sklearn at its paper "
        "tolerance is approximate, so its value is informational).",
        f"met: emb/s >= target and max(gap, KKT) <= {CERT_TARGET:g}. Load average (1 min) "
        f"{meta['load_avg']} on {os.cpu_count()} cpus; wall time {meta['wall_s']}s.",
    ]
    if max(load0[0], load1[0]) > (os.cpu_count() or 1):
        footer.append("WARNING: the machine was busy during the run; rates are noisy and likely pessimistic.")
    print_table(all_rows, header, footer, args.plain)
    if not args.no_save:
        path = save_csv(all_rows, meta, args.quick)
        print(f"saved {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
