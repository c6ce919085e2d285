"""Reproduce the paper's tables and figures from whatever datasets are present, as Markdown + PNG.

`reproduce(data_root=DIR | embeddings=DIR, model=SPEC, out_dir=OUT)` evaluates every dataset it
finds, writes OUT/report.md (our numbers beside the paper's published ones and the difference),
OUT/results.json and the PNG figures, and lists what was skipped and why.

Inputs
- `data_root`: one sub-folder per dataset in its published layout (see evaluate.datasets); tried
  names: urbansound8k | UrbanSound8K, esc50 | ESC-50 | ESC-50-master, tut2017 |
  TUT-acoustic-scenes-2017-evaluation | TUT-acoustic-scenes-2017-development, vocalsound | data,
  dcase2017_task4, audioset, clotho, audiocaps. Audio is embedded with `model` (cached).
- `embeddings`: a folder with, per dataset NAME (the names above, or any other name: evaluated
  like the known ones but without paper numbers), `NAME.parquet` or `NAME.npy` (+ `NAME.json`)
  clip embeddings and `NAME.csv` with labels or captions (see `datasets.load_embedded`); optional
  `NAME.text.parquet|npy` caption embeddings (ids "<clip id>#<j>") and `NAME.prompts.parquet|npy`
  class prompt embeddings (ids = class names). Text the files lack is embedded with `model`.

Our choices where the paper is silent (also written into the report): the audio modality mean
used for centring is the mean of each evaluation set's own clip embeddings; bootstrap intervals
are percentile intervals over clips / queries; the fine-tuned projector is trained on the
development folds (every fold but the last; VocalSound "tr"+"val"; or the "train" split) and
evaluated on the held-out fold or split; DCASE2017 Task 4 decisions are the top-scoring class.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audioconcepts.evaluate import paper_numbers as P
from audioconcepts.evaluate.datasets import (
    LOADERS,
    AudioDataset,
    DatasetLayoutError,
    EmbeddedDataset,
    load_embedded,
)
from audioconcepts.evaluate.metrics import Interval
from audioconcepts.evaluate.sweeps import DEFAULT_LAMBDAS

#: Folder names tried under data_root, per dataset.
FOLDER_NAMES = {
    "urbansound8k": ("urbansound8k", "UrbanSound8K"),
    "esc50": ("esc50", "ESC-50", "ESC-50-master"),
    "tut2017": ("tut2017", "TUT-acoustic-scenes-2017-evaluation", "TUT-acoustic-scenes-2017-development"),
    "vocalsound": ("vocalsound", "vocalsound_16k", "data"),
    "dcase2017_task4": ("dcase2017_task4", "dcase2017task4"),
    "audioset": ("audioset",),
    "clotho": ("clotho", "clotho_v2"),
    "audiocaps": ("audiocaps",),
}
TITLES = {
    "urbansound8k": "UrbanSound8K", "esc50": "ESC-50", "tut2017": "TUT2017", "vocalsound": "VocalSound",
    "dcase2017_task4": "DCASE2017 T4", "audioset": "AudioSet", "clotho": "Clotho", "audiocaps": "AudioCaps",
}  # fmt: skip
TEST_SPLITS = {"te", "test", "eval", "evaluation", "evaluate"}


@dataclass
class ReportSettings:
    """Everything that changes the numbers; written into the report."""

    l1_penalty: float = P.PAPER_L1_PENALTY
    lambdas: Sequence[float] = DEFAULT_LAMBDAS
    n_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    #: The paper's baseline recipe (on the bundled FSD50K evaluation-set tags; build the full one with
    #: `audioconcepts vocab build`): a shipped name, a vocabulary or text file, or a Vocabulary.
    vocab: Any = "fsd50k-eval-baseline-2k"
    vocab_sizes: Sequence[int] = (500, 1000)  #: smaller sizes: the first n concepts of `vocab`
    #: Vocabularies compared with `vocab` (the paper's recipes and sizes): names/files, or {name: Vocabulary}.
    recipes: Any = ("fsd50k-eval-pruned-2k", "fsd50k-eval-clustered-2k", "fsd50k-eval-baseline-3k", "fsd50k-eval-baseline-5k")
    finetune: bool = True
    finetune_epochs: int = 100
    finetune_lr: float = 1e-3
    profile_top: int = 5
    similarity_ks: Sequence[int] = (1, 5, 10, 50, 100)
    datasets: Sequence[str] | None = None  #: restrict to these names


@dataclass
class Report:
    out_dir: Path
    markdown: Path
    figures: list[Path]
    skipped: list[tuple[str, str]]
    results: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ inputs
def _find_embedded(folder: Path, names: Sequence[str] | None) -> tuple[list[tuple[str, EmbeddedDataset, Path | None]], list[tuple[str, str]]]:
    found, skipped = [], []
    stems = sorted({p.name.split(".")[0] for p in folder.glob("*.csv")})
    candidates = list(dict.fromkeys([*LOADERS, *stems]))
    for name in candidates:
        if names is not None and name not in names:
            continue
        emb = next((folder / f"{name}{s}" for s in (".parquet", ".npy") if (folder / f"{name}{s}").is_file()), None)
        meta = folder / f"{name}.csv"
        if emb is None or not meta.is_file():
            if name in LOADERS:
                skipped.append((TITLES[name], f"no {name}.parquet or {name}.npy with {name}.csv in {folder}"))
            continue
        text = next((folder / f"{name}.text{s}" for s in (".parquet", ".npy") if (folder / f"{name}.text{s}").is_file()), None)
        prompts = next((folder / f"{name}.prompts{s}" for s in (".parquet", ".npy") if (folder / f"{name}.prompts{s}").is_file()), None)
        try:
            found.append((name, load_embedded(emb, meta, name=name, text_embeddings=text), prompts))
        except (ValueError, OSError) as e:
            skipped.append((TITLES.get(name, name), f"cannot read {emb.name} / {meta.name}: {e}"))
    return found, skipped


def _find_audio(root: Path, names: Sequence[str] | None, encoder, cache, say) -> tuple[list[tuple[str, EmbeddedDataset, None]], list[tuple[str, str]]]:
    from audioconcepts.encoders.cached import embed_files

    found, skipped = [], []
    for name, loader in LOADERS.items():
        if names is not None and name not in names:
            continue
        folder = next((root / f for f in FOLDER_NAMES[name] if (root / f).is_dir()), None)
        if folder is None:
            skipped.append((TITLES[name], f"no folder {' or '.join(FOLDER_NAMES[name])} under {root}"))
            continue
        try:
            ds = loader(folder)
        except (DatasetLayoutError, ValueError) as e:
            skipped.append((TITLES[name], str(e).splitlines()[0]))
            continue
        if encoder is None:
            skipped.append((TITLES[name], "no model to embed the audio with"))
            continue
        say(f"embedding {len(ds)} clips of {TITLES[name]}")
        result = embed_files(encoder, ds.paths, cache)
        ok = {p for p in result.paths}
        mask = np.array([str(p) in ok for p in ds.paths])
        if not mask.any():
            skipped.append((TITLES[name], f"no clip could be embedded ({len(result.failures)} failures)"))
            continue
        kept = ds.subset(mask)
        kept.missing = ds.missing + [ds.ids[i] for i in np.flatnonzero(~mask)]
        order = {p: i for i, p in enumerate(result.paths)}
        audio = result.embeddings.vectors[[order[str(p)] for p in kept.paths]]
        found.append((name, EmbeddedDataset(kept, audio, result.embeddings.fingerprint), None))
    return found, skipped


def _vocabulary(spec, encoder, cache, fingerprint: str):
    from audioconcepts.vocab import Vocabulary
    from audioconcepts.vocab.sources import embed_vocabulary

    if isinstance(spec, Vocabulary):
        return spec
    if encoder is not None:  # shipped names, text files, vocabulary files (their stored embeddings if any)
        return embed_vocabulary(spec, encoder, cache)
    path = Path(str(spec))
    if path.suffix == ".npz" and path.is_file():
        return Vocabulary.load(path, fingerprint)
    raise RuntimeError(f"vocabulary {spec!r} must be embedded with the model, but no model is available")


# --------------------------------------------------------------------------- helpers
def _iv(iv: Interval) -> dict[str, float]:
    return {"value": iv.value, "low": iv.low, "high": iv.high}


def _fmt(x: float | None, pm: float | None = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.3f}" + (f" ± {pm:.3f}" if pm is not None and not math.isnan(pm) else "")


def _diff(ours: float | None, paper: float | None) -> str:
    if ours is None or paper is None or math.isnan(ours):
        return "—"
    return f"{ours - paper:+.3f}"


def _split(ds: AudioDataset) -> tuple[np.ndarray, np.ndarray] | None:
    """(train mask, test mask) for the fine-tuned variant, from the official folds or splits."""
    if ds.folds is None:
        return None
    folds = ds.folds
    if folds.dtype.kind in "iu":
        values = np.unique(folds)
        if len(values) < 2:
            return None
        test = folds == values.max()
        return ~test, test
    test = np.isin(np.char.lower(folds.astype(str)), list(TEST_SPLITS))
    if not test.any() or test.all():
        return None
    return ~test, test


# ------------------------------------------------------------------------------- main
def reproduce(
    data_root: str | Path | None = None,
    embeddings: str | Path | None = None,
    model: str | None = None,
    out_dir: str | Path = "reproduce-report",
    *,
    encoder: Any = None,
    settings: ReportSettings | None = None,
    cache: Any = "default",
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run the paper's evaluations that the present data allow; write report.md, results.json and PNGs.

    Give `data_root` (audio in published layouts) and/or `embeddings` (precomputed); `model` is an
    encoder spec (load_encoder) for prompts, captions, vocabulary and audio, or pass `encoder`.
    `cache`: an EmbeddingCache, None (no cache), or "default" (the user's cache)."""
    if data_root is None and embeddings is None:
        raise ValueError("give data_root (audio in the published layouts) or embeddings (a folder of precomputed embeddings)")
    if isinstance(cache, str) and cache == "default":
        from audioconcepts.encoders.cache import EmbeddingCache

        with EmbeddingCache() as owned:
            return _reproduce(data_root, embeddings, model, out_dir, encoder, settings, owned, progress)
    return _reproduce(data_root, embeddings, model, out_dir, encoder, settings, cache, progress)


def _reproduce(data_root, embeddings, model, out_dir, encoder, settings, cache, progress) -> Report:
    from audioconcepts import ConceptDecomposer
    from audioconcepts.evaluate import plots
    from audioconcepts.evaluate.profiles import class_profiles, top_concepts
    from audioconcepts.evaluate.retrieval import dense_and_concept_retrieval, recompose
    from audioconcepts.evaluate.sweeps import lambda_sweep, vocabulary_subsets, vocabulary_sweep
    from audioconcepts.evaluate.zeroshot import class_prompts, class_scores, score, zero_shot, zero_shot_variants

    s = settings or ReportSettings()
    say = progress or (lambda msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[tuple[str, str]] = []
    notes: list[str] = []
    names = list(s.datasets) if s.datasets is not None else None
    found: list = []
    if embeddings is not None:
        if not Path(embeddings).is_dir():
            raise FileNotFoundError(f"embeddings folder not found: {embeddings}")
        f, sk = _find_embedded(Path(embeddings), names)
        found += f
        skipped += sk
    if data_root is not None and not Path(data_root).is_dir():
        raise FileNotFoundError(f"data root folder not found: {data_root}")
    if not found and data_root is None:
        raise FileNotFoundError("no dataset found: " + "; ".join(f"{a}: {b}" for a, b in skipped))
    if encoder is None and model:
        from audioconcepts.encoders import load_encoder

        say(f"loading {model}")
        try:
            encoder = load_encoder(model)
        except Exception as e:  # noqa: BLE001 - any loading failure is reported, the rest still runs
            notes.append(f"model {model!r} could not be loaded ({type(e).__name__}: {e}); only precomputed text embeddings are usable")
    if data_root is not None:
        have = {n for n, _, _ in found}
        f, sk = _find_audio(Path(data_root), [n for n in (names or LOADERS) if n not in have], encoder, cache, say)
        found += f
        skipped += sk
    # a dataset found in one place is not "skipped" because the other place lacks it
    got = {TITLES.get(n, n) for n, _, _ in found}
    skipped = [x for x in skipped if x[0] not in got]
    if not found:
        raise FileNotFoundError("no dataset found: " + "; ".join(f"{a}: {b}" for a, b in skipped))
    fingerprints = {e.fingerprint for _, e, _ in found}
    if len(fingerprints) > 1:
        raise ValueError(f"the datasets come from different models {sorted(fingerprints)}; use one model")
    fingerprint = fingerprints.pop()
    if encoder is not None and encoder.fingerprint != fingerprint:
        raise ValueError(f"the embeddings come from {fingerprint!r} but the model is {encoder.fingerprint!r}")

    def embed_text(texts: list[str]) -> np.ndarray:
        if encoder is None:
            raise RuntimeError("needs a text encoder (--model) for texts the embeddings folder lacks")
        from audioconcepts.encoders.cached import embed_texts

        return embed_texts(encoder, texts, cache).vectors

    say("preparing the vocabulary")
    vocab = _vocabulary(s.vocab, encoder, cache, fingerprint)
    recipes: dict[str, Any] = {}
    if isinstance(s.recipes, dict):
        recipes = dict(s.recipes)
    else:
        for r in s.recipes:
            try:
                recipes[str(r)] = _vocabulary(r, encoder, cache, fingerprint)
            except Exception as e:  # noqa: BLE001
                skipped.append((f"vocabulary {r}", str(e)))
    vocab_name = str(s.vocab) if not hasattr(s.vocab, "concepts") else "given vocabulary"
    vocabularies = {f"{vocab_name} ({len(vocab)})": vocab}
    for name, v in vocabulary_subsets(vocab, [n for n in s.vocab_sizes if n < len(vocab)]).items():
        vocabularies[name] = v
    for name, v in recipes.items():
        vocabularies[name] = v
    missing_sizes = [n for n in s.vocab_sizes if n > len(vocab)]
    if missing_sizes:
        skipped.append(("vocabulary sizes " + ", ".join(map(str, missing_sizes)), f"the vocabulary has only {len(vocab)} concepts"))

    opts = {"n_resamples": s.n_resamples, "confidence": s.confidence, "seed": s.seed}
    results: dict[str, Any] = {"fingerprint": fingerprint, "l1_penalty": s.l1_penalty, "datasets": {}}
    table1, table2, table3, table4, sparsity = [], [], [], [], []
    sweeps_cls: dict[str, Any] = {}
    sweeps_ret: dict[str, Any] = {}
    dense_cls: dict[str, float] = {}
    dense_ret: dict[str, float] = {}
    vocab_sweeps: dict[str, Any] = {}
    profile_figs, similarity_rows = [], []
    spectra: dict[str, Any] = {}
    figures: list[Path] = []

    try:
        from audioconcepts.evaluate import similarity as sim
    except ImportError:
        sim = None
        skipped.append(("embedding-space similarity", "evaluate.similarity is not available"))
    try:
        from audioconcepts.evaluate.finetune import fit_projector
    except ImportError:
        fit_projector = None

    for name, emb, prompts_file in found:
        ds, Z = emb.dataset, np.asarray(emb.audio, np.float32)
        title = TITLES.get(name, name)
        entry: dict[str, Any] = {"n": len(ds), "missing": len(ds.missing), "metric": ds.metric}
        results["datasets"][name] = entry
        say(f"evaluating {title} ({len(ds)} clips)")
        t0 = time.perf_counter()
        dec = ConceptDecomposer(vocab, l1_penalty=s.l1_penalty).fit(Z)
        d = dec.decompose(Z, certify=False)
        entry["mean_nnz"], entry["mean_cosine"] = float(d.nnz.mean()), float(np.nanmean(d.cosine))
        R = dec.inverse_transform(d.codes)

        if sim is not None and len(Z) > max(s.similarity_ks):
            ks = [k for k in s.similarity_ks if k < len(Z)]
            spec = sim.nngs_spectrum(Z, R, ks)
            spectra[title] = spec
            km = min(10, len(Z) - 1)
            row = {"dataset": title, "linear_cka": float(sim.linear_cka(Z, R)), f"mutual_knn@{km}": float(sim.mutual_knn(Z, R, km))}
            row.update({f"nngs@{k}": float(v) for k, v in zip(spec.k, spec.score)})
            similarity_rows.append(row)
            entry["similarity"] = row

        if ds.metric == "retrieval":
            texts, owner = ds.caption_pairs()
            try:
                T = emb.text if emb.text is not None else embed_text(texts)
            except RuntimeError as e:
                skipped.append((title, str(e)))
                continue
            both = dense_and_concept_retrieval(dec, Z, T, owner, **opts)
            entry["retrieval"] = {v: {k: _iv(iv) for k, iv in r.metrics.items()} for v, r in both.items()}
            for variant in ("dense", "concepts"):
                for key, iv in both[variant].metrics.items():
                    paper = P.TABLE_II[variant].get(key) if name == "clotho" else None
                    table2.append((title, variant, key, iv, paper))
            dense_ret[title] = both["dense"].value("text_to_audio R@1")

            def evaluate_ret(Rz, T=T, owner=owner):
                from audioconcepts.evaluate.metrics import retrieval_metrics

                return retrieval_metrics(Rz, T, owner)["text_to_audio R@1"]

            sweeps_ret[title] = lambda_sweep(dec, Z, s.lambdas, evaluate_ret)
            vocab_sweeps[f"{title} text→audio R@1"] = vocabulary_sweep(vocabularies, Z, s.l1_penalty, evaluate_ret)
            if name == "clotho" or not table4:
                hit = next((i for i, caps in enumerate(ds.captions) if any(c.strip().rstrip(".").lower() == P.TABLE_IV_CAPTION.lower() for c in caps)), None)
                if hit is not None:
                    for vname, v in [(vocab_name, vocab), *recipes.items()]:
                        dv = ConceptDecomposer(v, l1_penalty=s.l1_penalty).fit(Z).decompose(Z[hit : hit + 1], certify=False)
                        table4.append((title, ds.ids[hit], vname, dv.explain(0, 3), float(dv.cosine[0]), v is vocab, len(v)))
        else:
            labels = ds.labels
            try:
                if prompts_file is not None:
                    from audioconcepts.encoders.precomputed import load as load_pre

                    pe = load_pre(str(prompts_file))
                    pos = {c: i for i, c in enumerate(pe.ids or [])}
                    lacking = [c for c in ds.class_names if c not in pos]
                    if lacking:
                        raise RuntimeError(f"{prompts_file.name} lacks prompt embeddings for classes {lacking[:3]}")
                    Tc = pe.embeddings.vectors[[pos[c] for c in ds.class_names]]
                else:
                    Tc = embed_text(class_prompts(ds.class_names))
            except RuntimeError as e:
                skipped.append((title, str(e)))
                continue
            variants = zero_shot_variants(dec, Z, labels, Tc, ds.metric, **opts)
            entry["zero_shot"] = {v: _iv(r.result) for v, r in variants.items()}
            paper = P.TABLE_I.get(name, {})
            table1.append((title, ds.metric, variants["dense"].result, variants["concepts"].result, paper))
            dense_cls[title] = variants["dense"].result.value

            def evaluate_cls(Rz, labels=labels, Tc=Tc, metric=ds.metric):
                return score(labels, class_scores(Rz, Tc), metric)

            sweeps_cls[title] = lambda_sweep(dec, Z, s.lambdas, evaluate_cls)
            vocab_sweeps[f"{title} {ds.metric}"] = vocabulary_sweep(vocabularies, Z, s.l1_penalty, evaluate_cls)
            prof = class_profiles(d.codes, labels, ds.class_names, vocab.concepts)
            top = top_concepts(prof, s.profile_top)
            entry["top_concepts"] = top
            profile_figs.append(plots.plot_class_profiles(top, out / f"fig_profiles_{name}.png", title=f"{title}: top concepts per class (lambda {s.l1_penalty})"))

            split = _split(ds) if s.finetune else None
            if not s.finetune:
                pass
            elif fit_projector is None:
                skipped.append((f"{title} fine-tuned", "evaluate.finetune is not available"))
            elif ds.multilabel:
                skipped.append((f"{title} fine-tuned", "multi-label set: the paper fine-tunes single-label sets only"))
            elif split is None:
                skipped.append((f"{title} fine-tuned", "no official development/test folds or splits to train and test on"))
            else:
                train, test = split
                H = fit_projector(Z[train], labels[train], Tc, epochs=s.finetune_epochs, lr=s.finetune_lr, seed=s.seed)
                HZ_train = H.transform(Z[train])
                dec_h = ConceptDecomposer(vocab, l1_penalty=s.l1_penalty).fit(HZ_train)
                rows = {
                    "dense (test split)": zero_shot(Z[test], labels[test], Tc, ds.metric, **opts).result,
                    "finetuned": zero_shot(H.transform(Z[test]), labels[test], Tc, ds.metric, **opts).result,
                    "finetuned+concepts": zero_shot(recompose(dec_h, H.transform(Z[test])), labels[test], Tc, ds.metric, **opts).result,
                }
                entry["finetuned"] = {k: _iv(v) for k, v in rows.items()} | {"n_train": int(train.sum()), "n_test": int(test.sum())}
                table3.append((title, int(train.sum()), int(test.sum()), rows, P.TABLE_III.get(name, {})))
        sw = sweeps_ret.get(title) if ds.metric == "retrieval" else sweeps_cls.get(title)
        if sw is not None:
            for lam, approx in P.SPARSITY.items():
                match = sw[np.isclose(sw["lambda"], lam)]
                if len(match):
                    sparsity.append((title, lam, approx, float(match["mean_nnz"].iloc[0]), float(match["mean_cosine"].iloc[0])))
        entry["seconds"] = round(time.perf_counter() - t0, 2)

    # ------------------------------------------------------------------------- figures
    say("plotting")
    fig_list: list[tuple[str, Path]] = []
    if sweeps_cls:
        fig_list.append(("Zero-shot metric, concepts and fidelity over lambda (classification)", plots.plot_lambda_sweep(sweeps_cls, out / "fig_lambda_classification.png", "zero-shot metric", dense_cls)))
        fig_list.append(("Zero-shot metric against the number of concepts", plots.plot_metric_vs_nnz(sweeps_cls, out / "fig_sparsity_classification.png", "zero-shot metric", dense_cls)))
    if sweeps_ret:
        fig_list.append(("Text→audio R@1, concepts and fidelity over lambda (retrieval)", plots.plot_lambda_sweep(sweeps_ret, out / "fig_lambda_retrieval.png", "text→audio R@1", dense_ret)))
        fig_list.append(("Text→audio R@1 against the number of concepts", plots.plot_metric_vs_nnz(sweeps_ret, out / "fig_sparsity_retrieval.png", "text→audio R@1", dense_ret)))
    for i, (task, df) in enumerate(vocab_sweeps.items()):
        fig_list.append((f"Vocabulary size and recipe: {task}", plots.plot_vocabulary_sweep(df, out / f"fig_vocabulary_{i}.png", task)))
    for p in profile_figs:
        fig_list.append((f"Class-level concept profiles: {p.stem.removeprefix('fig_profiles_')}", p))
    if spectra:
        ks_all = sorted({int(k) for sp_ in spectra.values() for k in sp_.k})
        fig_list.append(("Nearest-neighbour graph similarity, dense vs recomposed (normalised, over k)", plots.plot_similarity_spectrum(ks_all, {t: [dict(zip(sp_.k.tolist(), sp_.normalized.tolist())).get(k, float("nan")) for k in ks_all] for t, sp_ in spectra.items()}, out / "fig_similarity.png")))
    cmp_rows = [(f"{t} {v}", r.value, paper.get(v, (None,))[0]) for t, _, dn, cn, paper in table1 for v, r in (("dense", dn), ("concepts", cn)) if paper]
    if cmp_rows:
        fig_list.append(("Table I, ours vs paper", plots.plot_comparison(cmp_rows, out / "fig_table1_comparison.png", "Table I: zero-shot, ours vs paper")))
    figures = [p for _, p in fig_list]

    # ------------------------------------------------------------------------ markdown
    md = _markdown(s, fingerprint, vocab_name, len(vocab), model, notes, table1, table2, table3, table4, sparsity, sweeps_cls, sweeps_ret, vocab_sweeps, similarity_rows, results, fig_list, skipped, out)
    path = out / "report.md"
    path.write_text(md, encoding="utf-8")
    results["skipped"] = skipped
    results["sweeps"] = {k: v.to_dict(orient="records") for k, v in {**sweeps_cls, **sweeps_ret}.items()}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return Report(out, path, figures, skipped, results)


def _markdown(s, fingerprint, vocab_name, vocab_size, model, notes, table1, table2, table3, table4, sparsity, sweeps_cls, sweeps_ret, vocab_sweeps, similarity_rows, results, fig_list, skipped, out) -> str:
    L = ["# Reproduction report", ""]
    L += [
        f"Paper: {P.CITATION}. Paper setting: {P.PAPER_MODEL}, baseline FSD50K vocabulary (2,000 concepts), lambda {P.PAPER_L1_PENALTY}.",
        "",
        f"This run: model fingerprint `{fingerprint}`{f' (spec `{model}`)' if model else ''}; vocabulary {vocab_name} ({vocab_size} concepts); "
        f"lambda {s.l1_penalty}; {s.n_resamples} bootstrap resamples, {int(s.confidence * 100)}% percentile intervals, seed {s.seed}; "
        'prompt "This is a sound of [class label]."',
        "",
    ]
    if "msclap" not in fingerprint.lower():
        L += ["**Note:** this run does not use the paper's model, so the differences to the published numbers measure the model and data as much as the method. Compare dense against concept-based within this run.", ""]
    L += [
        "Choices where the paper is silent: the modality mean for centring is the mean of each evaluation set's own clip embeddings; "
        "concept-based embeddings are the recomposition normalise(normalise(C~ᵀw) + mean); DCASE2017 Task 4 F1 is micro-averaged over (clip, class) "
        "decisions with the top-scoring class predicted; AudioSet mAP is the macro mean of per-class average precision; "
        "retrieval mAP@10 is AP@10 normalised by min(#relevant, 10); the fine-tuned projector is trained on the development folds and tested on the held-out fold/split.",
        "",
    ]
    L += [f"- {n}" for n in notes] + ([""] if notes else [])

    L += ["## Table I — zero-shot classification", ""]
    if table1:
        L += ["| dataset | metric | paper dense | ours dense | Δ | paper concepts | ours concepts | Δ | ours concepts − dense |", "|---|---|---|---|---|---|---|---|---|"]
        for title, metric, dn, cn, paper in table1:
            pd_, pc = paper.get("dense", (None, None)), paper.get("concepts", (None, None))
            L.append(
                f"| {title} | {metric} | {_fmt(pd_[0])} | {_fmt(dn.value, dn.half_width)} | {_diff(dn.value, pd_[0])} | "
                f"{_fmt(pc[0], pc[1])} | {_fmt(cn.value, cn.half_width)} | {_diff(cn.value, pc[0])} | {cn.value - dn.value:+.3f} |"
            )
        L += ["", "Paper's best published zero-shot: " + ", ".join(f"{TITLES[k]} {v['best published'][0]:.3f}" for k, v in P.TABLE_I.items()), ""]
    else:
        L += ["Not run: no classification dataset available (see Skipped).", ""]

    L += ["## Table II — retrieval", ""]
    if table2:
        L += ["| dataset | variant | metric | paper | ours | Δ |", "|---|---|---|---|---|---|"]
        for title, variant, key, iv, paper in table2:
            L.append(f"| {title} | {variant} | {key} | {_fmt(paper)} | {_fmt(iv.value, iv.half_width)} | {_diff(iv.value, paper)} |")
        L += ["", "Paper's best published (HTS-AT based): " + ", ".join(f"{k} {v:.3f}" for k, v in P.TABLE_II["best published"].items()), ""]
    else:
        L += ["Not run: no retrieval dataset available (see Skipped).", ""]

    L += ["## Table III — fine-tuned projector H", ""]
    if table3:
        L += ["| dataset | train / test clips | row | paper | ours | Δ |", "|---|---|---|---|---|---|"]
        for title, ntr, nte, rows, paper in table3:
            for row, iv in rows.items():
                pv = paper.get(row, (None, None))
                L.append(f"| {title} | {ntr} / {nte} | {row} | {_fmt(pv[0], pv[1])} | {_fmt(iv.value, iv.half_width)} | {_diff(iv.value, pv[0])} |")
        L.append("")
    else:
        L += ["Not run (see Skipped).", ""]

    L += ["## Table IV — one Clotho clip, top 3 concepts", ""]
    if table4:
        L += [f'Clip captioned "{P.TABLE_IV_CAPTION}".', "", "| dataset | clip | vocabulary | top 3 (ours) | cosine (ours) | paper top 3 | paper cosine |", "|---|---|---|---|---|---|---|"]
        for title, clip, vname, top, cos, main, size in table4:
            # the main vocabulary stands for the paper's baseline; recipes by the recipe in their name
            key = "baseline" if main else next((r for r in ("baseline", "pruned", "clustered") if r in str(vname).lower()), None)
            key = key if main or (key and size == vocab_size) else None  # the paper's columns are 2,000-concept vocabularies
            paper = P.TABLE_IV.get(key) if key else None
            vname = f"{vname} (paper: {key})" if key else vname
            ptop = ", ".join(f"{c} {w:.3f}" for c, w in paper["top"]) if paper else "—"
            L.append(f"| {title} | {clip} | {vname} | {', '.join(f'{c} {w:.3f}' for c, w in top)} | {cos:.3f} | {ptop} | {_fmt(paper['cosine']) if paper else '—'} |")
        L.append("")
    else:
        L += [f'Not run: no retrieval clip captioned "{P.TABLE_IV_CAPTION}" was found.', ""]

    L += ["## Sparsity and fidelity over lambda", ""]
    if sparsity:
        L += ["| dataset | lambda | paper ≈ concepts | ours mean concepts | ours mean cosine(recomposed, original) |", "|---|---|---|---|---|"]
        L += [f"| {t} | {lam} | {approx:g} | {nnz:.1f} | {cos:.3f} |" for t, lam, approx, nnz, cos in sparsity]
        L.append("")
    for title, df in {**sweeps_cls, **sweeps_ret}.items():
        L += [f"**{title}**", "", "| lambda | metric | mean concepts | mean cosine |", "|---|---|---|---|"]
        L += [f"| {r['lambda']:g} | {r['metric']:.3f} | {r['mean_nnz']:.1f} | {r['mean_cosine']:.3f} |" for r in df.to_dict(orient="records")]
        L.append("")

    L += ["## Vocabulary size and recipe", ""]
    for task, df in vocab_sweeps.items():
        L += [f"**{task}** (lambda {s.l1_penalty})", "", "| vocabulary | size | metric | mean concepts | mean cosine |", "|---|---|---|---|---|"]
        L += [f"| {r['vocabulary']} | {r['size']} | {r['metric']:.3f} | {r['mean_nnz']:.1f} | {r['mean_cosine']:.3f} |" for r in df.to_dict(orient="records")]
        L.append("")

    tops = {n: e["top_concepts"] for n, e in results["datasets"].items() if "top_concepts" in e}
    if tops:
        L += ["## Class-level concept profiles", ""]
        for n, top in tops.items():
            L += [f"**{TITLES.get(n, n)}** (mean weight over the clips of each class)", "", "| class | top concepts |", "|---|---|"]
            L += [f"| {cls} | {', '.join(f'{c} {w:.3f}' for c, w in items)} |" for cls, items in top.items()]
            L.append("")

    if similarity_rows:
        L += ["## Embedding-space similarity, dense vs concept-based (recomposed)", ""]
        cols = list(dict.fromkeys(c for r in similarity_rows for c in r))  # datasets of different sizes use different k

        def cell(r, c):
            v = r.get(c)
            return "—" if v is None else v if isinstance(v, str) else f"{v:.3f}"

        L += ["NNGS@k: mean Jaccard overlap of the k nearest neighbours in the two spaces (Tavares, Ayres & Smaragdis 2024).", ""]
        L += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        L += ["| " + " | ".join(cell(r, c) for c in cols) + " |" for r in similarity_rows]
        L.append("")

    L += ["## Figures", "", "The paper's Figures 3-8 show sparsity/performance trade-offs over lambda, vocabulary comparisons and class-level concept profiles; "
          "they publish no numbers, so the figures below are ours alone, matched to the paper's by content.", ""]
    for caption, p in fig_list:
        L += [f"**{caption}**", "", f"![{caption}]({p.relative_to(out).as_posix()})", ""]

    L += ["## Skipped", ""]
    L += [f"- {what}: {why}" for what, why in skipped] if skipped else ["Nothing."]
    L.append("")
    return "\n".join(L)
