"""Evaluation datasets from local folders in their published layouts, and precomputed embeddings.

Every loader returns an `AudioDataset` (clip paths and ids; single labels, multi-label indicator
rows or several captions per clip; class names; the official fold or split of each clip; the
dataset's metric). A folder that lacks a metadata file is an error naming that file and the
expected layout; clips listed in the metadata but absent are an error naming the first few, except
for the YouTube-based sets (AudioSet, AudioCaps, DCASE2017 Task 4), where some clips are always
unobtainable: those are dropped and counted in `AudioDataset.missing`.

`load_embedded` reads precomputed embeddings (npy + JSON sidecar, or Parquet, as written by
`audioconcepts embed` / `encoders.precomputed.save_precomputed`) together with a CSV of labels or
captions keyed by id, so that every evaluation runs without audio.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aif", ".aiff")

#: The 17 classes of DCASE2017 Task 4 (label strings as in its ground-truth files).
DCASE2017_TASK4_CLASSES = [
    "Train horn", "Air horn, truck horn", "Car alarm", "Reversing beeps", "Ambulance (siren)",
    "Police car (siren)", "Fire engine, fire truck (siren)", "Civil defense siren", "Screaming",
    "Bicycle", "Skateboard", "Car", "Car passing by", "Bus", "Truck", "Motorcycle", "Train",
]  # fmt: skip


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder lacks a file of its published layout."""


@dataclass
class AudioDataset:
    """A labelled or captioned evaluation set.

    Exactly one of `labels` and `captions` is set. `labels` is (n,) class indices for single-label
    sets or an (n, c) boolean indicator matrix for multi-label ones. `folds` holds each clip's
    official fold (int) or split name (str)."""

    name: str
    ids: list[str]
    paths: list[Path]
    class_names: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None
    captions: list[list[str]] | None = None
    folds: np.ndarray | None = None
    metric: str = "accuracy"  #: "accuracy", "f1", "map" or "retrieval"
    missing: list[str] = field(default_factory=list)  #: listed clips not found (dropped)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def multilabel(self) -> bool:
        return self.labels is not None and self.labels.ndim == 2

    def subset(self, mask: np.ndarray) -> AudioDataset:
        """The clips where mask is true (e.g. one fold)."""
        idx = np.flatnonzero(np.asarray(mask))
        return AudioDataset(
            self.name,
            [self.ids[i] for i in idx],
            [self.paths[i] for i in idx],
            self.class_names,
            None if self.labels is None else self.labels[idx],
            None if self.captions is None else [self.captions[i] for i in idx],
            None if self.folds is None else self.folds[idx],
            self.metric,
            self.missing,
        )

    def caption_pairs(self) -> tuple[list[str], np.ndarray]:
        """All captions flattened, with the index of each caption's clip (for retrieval)."""
        if self.captions is None:
            raise ValueError(f"{self.name} has labels, not captions")
        texts = [c for caps in self.captions for c in caps]
        owner = np.repeat(np.arange(len(self.captions)), [len(c) for c in self.captions])
        return texts, owner


# ------------------------------------------------------------------------------ helpers
def _require(root: Path, relative: str, dataset: str, layout: str) -> Path:
    path = root / relative
    if not path.is_file():
        raise DatasetLayoutError(f"{dataset}: missing {path}. Expected layout under {root}:\n{layout}")
    return path


def _dir(root: Path, candidates: Sequence[str], dataset: str, layout: str) -> Path:
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    raise DatasetLayoutError(
        f"{dataset}: missing the audio folder {root / candidates[0]} (also tried {', '.join(candidates[1:]) or 'nothing else'}). "
        f"Expected layout under {root}:\n{layout}"
    )


def _check_audio(name: str, paths: list[Path], allow_missing: bool) -> list[int]:
    """Indices of the clips that exist; missing clips are an error unless allow_missing."""
    present = [i for i, p in enumerate(paths) if p.is_file()]
    if len(present) < len(paths) and not allow_missing:
        missing = [str(paths[i]) for i in sorted(set(range(len(paths))) - set(present))]
        raise DatasetLayoutError(
            f"{name}: {len(missing)} of {len(paths)} clips listed in the metadata are missing, e.g. "
            f"{', '.join(missing[:3])}; restore them or pass allow_missing=True to evaluate the rest"
        )
    return present


def _finish(ds: AudioDataset, allow_missing: bool) -> AudioDataset:
    present = _check_audio(ds.name, ds.paths, allow_missing)
    if len(present) == len(ds.paths):
        return ds
    mask = np.zeros(len(ds.paths), bool)
    mask[present] = True
    missing = [ds.ids[i] for i in np.flatnonzero(~mask)]
    out = ds.subset(mask)
    out.missing = missing
    if not len(out):
        raise DatasetLayoutError(f"{ds.name}: none of the {len(ds.paths)} clips listed in the metadata was found")
    return out


def _read_rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def _need_columns(path: Path, rows: list[dict[str, str]], columns: Iterable[str]) -> None:
    """The file's header must name every column (an empty file is an error too)."""
    with path.open(newline="", encoding="utf-8") as f:
        have = set(next(csv.reader(f), []))
    lacking = [c for c in columns if c not in have]
    if lacking:
        raise ValueError(f"{path}: missing column(s) {lacking}; found {sorted(have)}")


def _multi_hot(label_lists: list[list[int]], n_classes: int) -> np.ndarray:
    out = np.zeros((len(label_lists), n_classes), bool)
    for i, labels in enumerate(label_lists):
        out[i, labels] = True
    return out


_TIME_SUFFIX = re.compile(r"(_\d+(\.\d+)?){1,2}$")


def _youtube_index(folder: Path) -> dict[str, Path]:
    """Audio files of a folder (recursive) by YouTube id, accepting the usual download names:
    <id>.wav, Y<id>.wav, <id>_<start>[_<end>].wav, Y<id>_<start>_<end>.wav."""
    index: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        stem = p.stem
        for key in (stem, _TIME_SUFFIX.sub("", stem)):
            index.setdefault(key, p)
            if key.startswith("Y"):
                index.setdefault(key[1:], p)
    return index


# ------------------------------------------------------------------------ the loaders
def _layout(layout: str):
    """Append the expected folder layout to a loader's docstring."""

    def decorate(fn):
        fn.__doc__ = (fn.__doc__ or "") + "\n\n    Expected layout::\n\n" + layout + "\n"
        return fn

    return decorate


US8K_LAYOUT = """  metadata/UrbanSound8K.csv   (slice_file_name,fsID,start,end,salience,fold,classID,class)
  audio/fold1 ... audio/fold10/<slice_file_name>"""


@_layout(US8K_LAYOUT)
def load_urbansound8k(root: str | Path, *, allow_missing: bool = False) -> AudioDataset:
    """UrbanSound8K (Salamon et al. 2014): 8,732 clips, 10 classes, 10 official folds.

    Layout (as unpacked from UrbanSound8K.tar.gz): see below."""
    root = Path(root)
    meta = _require(root, "metadata/UrbanSound8K.csv", "UrbanSound8K", US8K_LAYOUT)
    rows = _read_rows(meta)
    _need_columns(meta, rows, ("slice_file_name", "fold", "classID", "class"))
    names: dict[int, str] = {int(r["classID"]): r["class"] for r in rows}
    class_names = [names[i] for i in sorted(names)]
    ds = AudioDataset(
        "urbansound8k",
        [r["slice_file_name"] for r in rows],
        [root / "audio" / f"fold{r['fold']}" / r["slice_file_name"] for r in rows],
        class_names,
        labels=np.array([sorted(names).index(int(r["classID"])) for r in rows]),
        folds=np.array([int(r["fold"]) for r in rows]),
    )
    return _finish(ds, allow_missing)


ESC50_LAYOUT = """  meta/esc50.csv   (filename,fold,target,category,esc10,src_file,take)
  audio/<filename>"""


@_layout(ESC50_LAYOUT)
def load_esc50(root: str | Path, *, esc10: bool = False, allow_missing: bool = False) -> AudioDataset:
    """ESC-50 (Piczak 2015): 2,000 clips, 50 classes, 5 official folds (`esc10=True`: the ESC-10 subset).

    Layout (the ESC-50 repository / ESC-50-master.zip): see below."""
    root = Path(root)
    meta = _require(root, "meta/esc50.csv", "ESC-50", ESC50_LAYOUT)
    rows = _read_rows(meta)
    _need_columns(meta, rows, ("filename", "fold", "target", "category", "esc10"))
    if esc10:
        rows = [r for r in rows if r["esc10"].strip().lower() == "true"]
    names = {int(r["target"]): r["category"] for r in rows}
    order = sorted(names)
    ds = AudioDataset(
        "esc10" if esc10 else "esc50",
        [r["filename"] for r in rows],
        [root / "audio" / r["filename"] for r in rows],
        [names[i] for i in order],
        labels=np.array([order.index(int(r["target"])) for r in rows]),
        folds=np.array([int(r["fold"]) for r in rows]),
    )
    return _finish(ds, allow_missing)


TUT_LAYOUT = """  meta.txt                       (<audio/file.wav>TAB<scene label>[TAB<recording id>], no header)
  audio/<file.wav>
  evaluation_setup/fold<k>_evaluate.txt   (development set only: defines the 4 folds)"""


@_layout(TUT_LAYOUT)
def load_tut2017(root: str | Path, *, allow_missing: bool = False) -> AudioDataset:
    """TUT Acoustic Scenes 2017 (DCASE2017 Task 1): 15 scenes, 10-s segments.

    Either package, development (4 folds, read from evaluation_setup/fold<k>_evaluate.txt) or
    evaluation (meta.txt with the released ground truth; fold 0). Layout
    (TUT-acoustic-scenes-2017-development/ or -evaluation/ after unpacking): see below."""
    root = Path(root)
    meta = _require(root, "meta.txt", "TUT2017", TUT_LAYOUT)
    files, scenes = [], []
    for line in meta.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split("\t")
        if not parts or not parts[0]:
            continue
        if len(parts) < 2:
            raise ValueError(f"{meta}: line {line!r} has no scene label (expected <file>TAB<label>)")
        files.append(parts[0])
        scenes.append(parts[1])
    class_names = sorted(set(scenes))
    fold_of = {}
    for fold_file in sorted((root / "evaluation_setup").glob("fold*_evaluate.txt")):
        k = int(re.findall(r"fold(\d+)_", fold_file.name)[0])
        for line in fold_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                fold_of[line.split("\t")[0]] = k
    ds = AudioDataset(
        "tut2017",
        files,
        [root / f for f in files],
        class_names,
        labels=np.array([class_names.index(s) for s in scenes]),
        folds=np.array([fold_of.get(f, 0) for f in files]),
    )
    return _finish(ds, allow_missing)


VOCALSOUND_LAYOUT = """  class_labels_indices_vs.csv        (index,mid,display_name)
  datafiles/tr.json, val.json, te.json   ({"data": [{"wav": ".../<file>.wav", "labels": "<mid>"}, ...]})
  audio_16k/<file>.wav  (or audio_44k/)"""


@_layout(VOCALSOUND_LAYOUT)
def load_vocalsound(
    root: str | Path, *, splits: Sequence[str] = ("tr", "val", "te"), allow_missing: bool = False
) -> AudioDataset:
    """VocalSound (Gong et al. 2022): 21,024 recordings, 6 classes, speaker-disjoint tr/val/te splits
    (the split of each clip is its fold: "tr", "val" or "te").

    Layout (the release zip, vs_release_16k.zip, as `data/`): see below."""
    root = Path(root)
    classes_csv = _require(root, "class_labels_indices_vs.csv", "VocalSound", VOCALSOUND_LAYOUT)
    rows = _read_rows(classes_csv)
    _need_columns(classes_csv, rows, ("index", "mid", "display_name"))
    rows.sort(key=lambda r: int(r["index"]))
    mids = [r["mid"] for r in rows]
    audio_dir = _dir(root, ("audio_16k", "audio_44k"), "VocalSound", VOCALSOUND_LAYOUT)
    ids, paths, labels, folds = [], [], [], []
    for split in splits:
        datafile = _require(root, f"datafiles/{split}.json", "VocalSound", VOCALSOUND_LAYOUT)
        for item in json.loads(datafile.read_text(encoding="utf-8"))["data"]:
            name = Path(item["wav"]).name
            item_labels = [m for m in item["labels"].split(",") if m]
            unknown = [m for m in item_labels if m not in mids]
            if unknown:
                raise ValueError(f"{datafile}: {name} has label(s) {unknown} not in {classes_csv.name}")
            ids.append(name)
            paths.append(audio_dir / name)
            labels.append(mids.index(item_labels[0]))
            folds.append(split)
    ds = AudioDataset(
        "vocalsound", ids, paths, [r["display_name"] for r in rows], labels=np.array(labels), folds=np.array(folds)
    )
    return _finish(ds, allow_missing)


DCASE_LAYOUT = """  metadata/groundtruth_weak_label_testing_set.csv, groundtruth_weak_label_evaluation_set.csv
       (no header, TAB-separated: <ytid>_<start>_<end>.wav  <start>  <end>  <label>; one row per label)
  testing/Y<ytid>_<start>_<end>.wav, evaluation/Y<...>.wav   (the 'Y' prefix is optional)"""


@_layout(DCASE_LAYOUT)
def load_dcase2017_task4(
    root: str | Path, *, splits: Sequence[str] = ("evaluation",), allow_missing: bool = True
) -> AudioDataset:
    """DCASE2017 Task 4 (large-scale weakly supervised sound event detection for smart cars),
    audio tagging: 17 classes, multi-label, scored by micro F1; splits "testing" (488 clips) and/or
    "evaluation" (1,103 clips).

    Layout (the task repository's metadata plus the downloaded clips): see below."""
    root = Path(root)
    class_names = list(DCASE2017_TASK4_CLASSES)
    ids, paths, label_lists, folds = [], [], [], []
    for split in splits:
        meta = _require(root, f"metadata/groundtruth_weak_label_{split}_set.csv", "DCASE2017 Task 4", DCASE_LAYOUT)
        audio_dir = _dir(root, (split, f"audio/{split}"), "DCASE2017 Task 4", DCASE_LAYOUT)
        per_clip: dict[str, list[int]] = {}
        with meta.open(newline="", encoding="utf-8") as f:
            for row in csv.reader(f, delimiter="\t"):
                if not row or not row[0].strip():
                    continue
                if len(row) < 4:
                    raise ValueError(f"{meta}: row {row} needs 4 TAB-separated fields (file, start, end, label)")
                label = row[3].strip()
                if label not in class_names:
                    class_names.append(label)
                per_clip.setdefault(row[0].strip(), []).append(class_names.index(label))
        for name, labels in per_clip.items():
            path = audio_dir / ("Y" + name)
            ids.append(name)
            paths.append(path if path.is_file() else audio_dir / name)
            label_lists.append(labels)
            folds.append(split)
    ds = AudioDataset(
        "dcase2017_task4", ids, paths, class_names,
        labels=_multi_hot(label_lists, len(class_names)), folds=np.array(folds), metric="f1",
    )  # fmt: skip
    return _finish(ds, allow_missing)


AUDIOSET_LAYOUT = """  eval_segments.csv         ('#' comment lines, then: YTID, start_seconds, end_seconds, "mid,mid,...")
  class_labels_indices.csv  (index,mid,display_name)
  eval_segments/<YTID>.wav  (or audio/, eval/; names <YTID>, Y<YTID>, <YTID>_<start>_<end> are all found)"""


@_layout(AUDIOSET_LAYOUT)
def load_audioset(
    root: str | Path,
    *,
    segments: str = "eval_segments.csv",
    clips_dir: str | None = None,
    allow_missing: bool = True,
) -> AudioDataset:
    """AudioSet evaluation segments (Gemmeke et al. 2017): 527 classes, multi-label, scored by macro mAP.
    YouTube clips disappear over time: the clips found are evaluated and the rest counted in `missing`.

    Layout (the files from the AudioSet download page plus your clips): see below."""
    root = Path(root)
    seg = _require(root, segments, "AudioSet", AUDIOSET_LAYOUT)
    classes_csv = _require(root, "class_labels_indices.csv", "AudioSet", AUDIOSET_LAYOUT)
    rows = _read_rows(classes_csv)
    _need_columns(classes_csv, rows, ("index", "mid", "display_name"))
    rows.sort(key=lambda r: int(r["index"]))
    mid_index = {r["mid"]: i for i, r in enumerate(rows)}
    folder = _dir(root, (clips_dir,) if clips_dir else ("eval_segments", "audio", "eval"), "AudioSet", AUDIOSET_LAYOUT)
    found = _youtube_index(folder)
    ids, paths, label_lists = [], [], []
    with seg.open(newline="", encoding="utf-8") as f:
        for row in csv.reader((line for line in f if not line.startswith("#")), skipinitialspace=True):
            if not row:
                continue
            if len(row) < 4:
                raise ValueError(f"{seg}: row {row} needs YTID, start_seconds, end_seconds, positive_labels")
            unknown = [m for m in row[3].split(",") if m not in mid_index]
            if unknown:
                raise ValueError(f"{seg}: {row[0]} has label(s) {unknown} not in {classes_csv.name}")
            ids.append(row[0])
            paths.append(found.get(row[0], folder / f"{row[0]}.wav"))
            label_lists.append([mid_index[m] for m in row[3].split(",")])
    ds = AudioDataset(
        "audioset", ids, paths, [r["display_name"] for r in rows],
        labels=_multi_hot(label_lists, len(rows)), folds=np.array(["eval"] * len(ids)), metric="map",
    )  # fmt: skip
    return _finish(ds, allow_missing)


CLOTHO_LAYOUT = """  clotho_captions_<split>.csv   (file_name,caption_1,...,caption_5)
  <split>/<file_name>           (split: development, validation or evaluation; clotho_audio_<split>/ also found)"""


@_layout(CLOTHO_LAYOUT)
def load_clotho(root: str | Path, *, split: str = "evaluation", allow_missing: bool = False) -> AudioDataset:
    """Clotho v2 (Drossos et al. 2020): 5 captions per clip; retrieval. Layout (the Zenodo archives
    unpacked side by side): see below."""
    root = Path(root)
    meta = _require(root, f"clotho_captions_{split}.csv", "Clotho", CLOTHO_LAYOUT)
    rows = _read_rows(meta)
    caption_cols = [f"caption_{i}" for i in range(1, 6)]
    _need_columns(meta, rows, ["file_name", *caption_cols])
    audio_dir = _dir(root, (split, f"clotho_audio_{split}", f"audio/{split}"), "Clotho", CLOTHO_LAYOUT)
    ds = AudioDataset(
        "clotho",
        [r["file_name"] for r in rows],
        [audio_dir / r["file_name"] for r in rows],
        captions=[[r[c] for c in caption_cols] for r in rows],
        folds=np.array([split] * len(rows)),
        metric="retrieval",
    )
    return _finish(ds, allow_missing)


AUDIOCAPS_LAYOUT = """  <split>.csv  or dataset/<split>.csv   (audiocap_id,youtube_id,start_time,caption; split: train, val, test)
  audio/<split>/<youtube_id>.wav  (or <split>/; names <id>, Y<id>, <id>_<start>[_<end>] are all found)"""


@_layout(AUDIOCAPS_LAYOUT)
def load_audiocaps(root: str | Path, *, split: str = "test", allow_missing: bool = True) -> AudioDataset:
    """AudioCaps (Kim et al. 2019): YouTube clips with captions (5 per clip in val/test); retrieval.
    Clips not found are counted in `missing`. Layout (the AudioCaps repository's CSVs plus your clips): see below."""
    root = Path(root)
    rel = f"{split}.csv" if (root / f"{split}.csv").is_file() else f"dataset/{split}.csv"
    meta = _require(root, rel, "AudioCaps", AUDIOCAPS_LAYOUT)
    rows = _read_rows(meta)
    _need_columns(meta, rows, ("audiocap_id", "youtube_id", "start_time", "caption"))
    folder = _dir(root, (f"audio/{split}", split, "audio"), "AudioCaps", AUDIOCAPS_LAYOUT)
    found = _youtube_index(folder)
    grouped: dict[str, list[str]] = {}
    for r in rows:
        grouped.setdefault(r["youtube_id"], []).append(r["caption"])
    ids = list(grouped)
    ds = AudioDataset(
        "audiocaps", ids, [found.get(y, folder / f"{y}.wav") for y in ids],
        captions=[grouped[y] for y in ids], folds=np.array([split] * len(ids)), metric="retrieval",
    )  # fmt: skip
    return _finish(ds, allow_missing)


#: Loader per dataset name (the names used by the report and by `load_embedded` files).
LOADERS = {
    "urbansound8k": load_urbansound8k,
    "esc50": load_esc50,
    "tut2017": load_tut2017,
    "vocalsound": load_vocalsound,
    "dcase2017_task4": load_dcase2017_task4,
    "audioset": load_audioset,
    "clotho": load_clotho,
    "audiocaps": load_audiocaps,
}
METRIC = {
    "urbansound8k": "accuracy", "esc50": "accuracy", "tut2017": "accuracy", "vocalsound": "accuracy",
    "dcase2017_task4": "f1", "audioset": "map", "clotho": "retrieval", "audiocaps": "retrieval",
}  # fmt: skip


# --------------------------------------------------------------- precomputed embeddings
@dataclass
class EmbeddedDataset:
    """Precomputed clip embeddings with their labels or captions (and caption embeddings when given)."""

    dataset: AudioDataset
    audio: np.ndarray  #: (n, d) clip embeddings, rows in dataset order
    fingerprint: str
    text: np.ndarray | None = None  #: (m, d) caption embeddings in caption_pairs() order, if precomputed


def load_embedded(
    embeddings: str | Path,
    metadata: str | Path,
    *,
    name: str | None = None,
    text_embeddings: str | Path | None = None,
    metric: str | None = None,
) -> EmbeddedDataset:
    """Clip embeddings (.npy + .json sidecar with ids, or .parquet) plus a CSV keyed by `id`.

    The CSV has an `id` column matching the embedding ids and either
    - `label` (one class per clip; several classes separated by ";" make the set multi-label), or
    - `caption` (one row per caption; several rows per id for several captions),
    and optionally `fold` (official fold or split). Class names are the sorted distinct labels.
    `text_embeddings` (optional): a file of caption embeddings whose ids are "<clip id>#<j>", j the
    caption's position among the clip's rows; without it captions are embedded by the caller.
    `metric` defaults to the dataset's (METRIC[name]) or accuracy / map / retrieval by content."""
    from audioconcepts.encoders.precomputed import load

    emb = load(str(embeddings))
    if emb.ids is None:
        raise ValueError(f"{embeddings}: needs ids (the .json sidecar's 'ids' or the Parquet 'id' column) to match {metadata}")
    meta = Path(metadata)
    if not meta.is_file():
        raise FileNotFoundError(f"metadata file not found: {meta} (a CSV with id and label or caption columns)")
    rows = _read_rows(meta)
    _need_columns(meta, rows, ("id",))
    name = name or Path(embeddings).stem
    row_of = {i: r for r, i in enumerate(emb.ids)}
    unknown = sorted({r["id"] for r in rows} - set(row_of))
    if unknown:
        raise ValueError(f"{meta}: {len(unknown)} id(s) have no embedding in {embeddings}, e.g. {unknown[:3]}")
    vectors = emb.embeddings.vectors
    with meta.open(newline="", encoding="utf-8") as f:
        has = set(next(csv.reader(f), []))
    if "caption" in has:
        grouped: dict[str, list[str]] = {}
        fold_of: dict[str, str] = {}
        for r in rows:
            grouped.setdefault(r["id"], []).append(r["caption"])
            fold_of.setdefault(r["id"], r.get("fold", ""))
        ids = list(grouped)
        ds = AudioDataset(
            name, ids, [Path(i) for i in ids], captions=[grouped[i] for i in ids],
            folds=np.array([fold_of[i] for i in ids]) if "fold" in has else None, metric=metric or "retrieval",
        )  # fmt: skip
        text = None
        if text_embeddings is not None:
            temb = load(str(text_embeddings))
            if temb.embeddings.fingerprint != emb.embeddings.fingerprint:
                raise ValueError(
                    f"{text_embeddings} comes from {temb.embeddings.fingerprint!r}, {embeddings} from "
                    f"{emb.embeddings.fingerprint!r}: embed both with the same model"
                )
            tpos = {t: j for j, t in enumerate(temb.ids or [])}
            keys = [f"{i}#{j}" for i in ids for j in range(len(grouped[i]))]
            lacking = [k for k in keys if k not in tpos]
            if lacking:
                raise ValueError(f"{text_embeddings}: no caption embedding for id(s) {lacking[:3]} (ids are '<clip id>#<j>')")
            text = temb.embeddings.vectors[[tpos[k] for k in keys]]
    elif "label" in has:
        ids = [r["id"] for r in rows]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{meta}: each id must appear once in a labelled set (use 'a;b' for several labels)")
        label_lists = [[x.strip() for x in r["label"].split(";") if x.strip()] for r in rows]
        class_names = sorted({x for ls in label_lists for x in ls})
        multi = any(len(ls) != 1 for ls in label_lists)
        if multi:
            labels = _multi_hot([[class_names.index(x) for x in ls] for ls in label_lists], len(class_names))
        else:
            labels = np.array([class_names.index(ls[0]) for ls in label_lists])
        folds = None
        if "fold" in has:
            raw = [r["fold"] for r in rows]
            folds = np.array([int(f) for f in raw]) if all(f.strip().lstrip("-").isdigit() for f in raw) else np.array(raw)
        ds = AudioDataset(
            name, ids, [Path(i) for i in ids], class_names, labels=labels, folds=folds,
            metric=metric or METRIC.get(name, "map" if multi else "accuracy"),
        )  # fmt: skip
        text = None
    else:
        raise ValueError(f"{meta}: needs a 'label' or a 'caption' column besides 'id'")
    audio = vectors[[row_of[i] for i in ds.ids]]
    return EmbeddedDataset(ds, audio, emb.embeddings.fingerprint, text)
