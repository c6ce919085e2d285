"""PNG plots of the evaluation (matplotlib, Agg backend: no display needed).

Install with the `eval` extra: pip install "audioconcepts[eval]"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError('plots need matplotlib: pip install "audioconcepts[eval]"') from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_lambda_sweep(sweeps: Mapping[str, object], path: str | Path, metric_name: str = "metric", dense: Mapping[str, float] | None = None) -> Path:
    """Three panels over lambda (log scale): the task metric (dense value dashed), mean non-zero
    concepts, mean cosine(recomposed, original); one line per dataset/task in `sweeps`."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for i, (name, df) in enumerate(sweeps.items()):
        color = f"C{i}"
        axes[0].plot(df["lambda"], df["metric"], "o-", color=color, label=name)
        if dense and name in dense:
            axes[0].axhline(dense[name], color=color, ls="--", lw=1)
        axes[1].plot(df["lambda"], df["mean_nnz"], "o-", color=color, label=name)
        axes[2].plot(df["lambda"], df["mean_cosine"], "o-", color=color, label=name)
    lambdas = sorted({float(x) for df in sweeps.values() for x in df["lambda"]})
    for ax, title in zip(axes, (f"{metric_name} (dashed: dense)", "mean non-zero concepts", "mean cosine(recomposed, original)")):
        _lambda_axis(ax, lambdas)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def _lambda_axis(ax, lambdas: Sequence[float]) -> None:
    """Log-scaled lambda axis labelled at the lambdas actually swept."""
    ax.set_xscale("log")
    ax.set_xticks(lambdas, [f"{x:g}" for x in lambdas])
    ax.minorticks_off()
    ax.set_xlabel("lambda")


def plot_metric_vs_nnz(sweeps: Mapping[str, object], path: str | Path, metric_name: str = "metric", dense: Mapping[str, float] | None = None) -> Path:
    """The sparsity trade-off: task metric against the mean number of concepts."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (name, df) in enumerate(sweeps.items()):
        ax.plot(df["mean_nnz"], df["metric"], "o-", color=f"C{i}", label=name)
        if dense and name in dense:
            ax.axhline(dense[name], color=f"C{i}", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("mean non-zero concepts")
    ax.set_ylabel(metric_name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_vocabulary_sweep(df, path: str | Path, metric_name: str = "metric") -> Path:
    """Bars per vocabulary (size or recipe): metric, mean non-zeros and mean cosine."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    names = [f"{v}\n({s})" for v, s in zip(df["vocabulary"], df["size"])]
    for ax, col, title in zip(axes, ("metric", "mean_nnz", "mean_cosine"), (metric_name, "mean non-zero concepts", "mean cosine(recomposed, original)")):
        ax.bar(range(len(df)), df[col], color=[f"C{i}" for i in range(len(df))])
        ax.set_xticks(range(len(df)), names, fontsize=7)
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_class_profiles(top: Mapping[str, Sequence[tuple[str, float]]], path: str | Path, max_classes: int = 12, title: str = "") -> Path:
    """A small bar chart of the top concepts of each class (up to max_classes classes)."""
    plt = _pyplot()
    classes = list(top)[:max_classes]
    cols = min(4, max(1, len(classes)))
    rows = (len(classes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat[len(classes):]:
        ax.axis("off")
    for ax, cls in zip(axes.flat, classes):
        items = list(top[cls])[::-1]
        ax.barh([c for c, _ in items], [w for _, w in items], color="C0")
        ax.set_title(cls, fontsize=9)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_comparison(rows: Sequence[tuple[str, float, float | None]], path: str | Path, title: str = "") -> Path:
    """Grouped bars of ours vs the paper's value for each (label, ours, paper) row."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(rows) + 2), 3.8))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r[1] for r in rows], 0.4, label="ours")
    ax.bar([i + 0.2 for i in x], [r[2] if r[2] is not None else 0 for r in rows], 0.4, label="paper")
    ax.set_xticks(list(x), [r[0] for r in rows], rotation=30, ha="right", fontsize=7)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(title)
    return _save(fig, path)


def plot_similarity_spectrum(ks: Sequence[float], scores: Mapping[str, Sequence[float]], path: str | Path, ylabel: str = "normalised NNGS") -> Path:
    """Nearest-neighbour graph similarity between dense and concept spaces over k."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, (name, values) in enumerate(scores.items()):
        ax.plot(ks, values, "o-", color=f"C{i}", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("k (neighbours)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
