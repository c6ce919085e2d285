"""Dataset loaders on tiny fake folders in the published layouts (real metadata excerpts for ESC-50 and
UrbanSound8K; the other metadata written here in the published formats), and precomputed embeddings."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from audioconcepts import Embeddings
from audioconcepts.encoders.precomputed import save_precomputed
from audioconcepts.evaluate import datasets as D

FIX = Path(__file__).parent / "fixtures" / "evaluate_datasets"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_esc50(tmp_path):
    (tmp_path / "meta").mkdir()
    shutil.copy(FIX / "esc50_excerpt.csv", tmp_path / "meta" / "esc50.csv")
    meta = rows(FIX / "esc50_excerpt.csv")
    for r in meta:
        touch(tmp_path / "audio" / r["filename"])
    ds = D.load_esc50(tmp_path)
    assert len(ds) == 30 and ds.metric == "accuracy" and not ds.multilabel
    assert sorted(set(ds.folds.tolist())) == [1, 2, 3, 4, 5]
    for i, r in enumerate(meta):  # every clip keeps its own class and fold
        assert ds.class_names[ds.labels[i]] == r["category"] and ds.folds[i] == int(r["fold"])
        assert ds.paths[i] == tmp_path / "audio" / r["filename"]
    assert ds.class_names == sorted(set(ds.class_names), key=lambda c: int(next(r["target"] for r in meta if r["category"] == c)))
    esc10 = D.load_esc50(tmp_path, esc10=True)
    assert len(esc10) == sum(r["esc10"] == "True" for r in meta)
    (tmp_path / "audio" / meta[3]["filename"]).unlink()
    with pytest.raises(D.DatasetLayoutError, match=meta[3]["filename"]):
        D.load_esc50(tmp_path)
    assert len(D.load_esc50(tmp_path, allow_missing=True)) == 29


def test_missing_metadata_names_the_file(tmp_path):
    with pytest.raises(D.DatasetLayoutError, match=r"meta[/\\]esc50\.csv"):
        D.load_esc50(tmp_path)
    with pytest.raises(D.DatasetLayoutError, match=r"UrbanSound8K\.csv"):
        D.load_urbansound8k(tmp_path)
    with pytest.raises(D.DatasetLayoutError, match="groundtruth_weak_label_evaluation_set.csv"):
        D.load_dcase2017_task4(tmp_path)
    with pytest.raises(D.DatasetLayoutError, match="class_labels_indices_vs.csv"):
        D.load_vocalsound(tmp_path)
    (tmp_path / "clotho_captions_evaluation.csv").write_text("file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n")
    with pytest.raises(D.DatasetLayoutError, match="audio folder"):
        D.load_clotho(tmp_path)


def test_urbansound8k(tmp_path):
    (tmp_path / "metadata").mkdir()
    shutil.copy(FIX / "UrbanSound8K_excerpt.csv", tmp_path / "metadata" / "UrbanSound8K.csv")
    meta = rows(FIX / "UrbanSound8K_excerpt.csv")
    for r in meta:
        touch(tmp_path / "audio" / f"fold{r['fold']}" / r["slice_file_name"])
    ds = D.load_urbansound8k(tmp_path)
    assert len(ds) == 40 and sorted(set(ds.folds.tolist())) == list(range(1, 11))
    for i, r in enumerate(meta):
        assert ds.class_names[ds.labels[i]] == r["class"]
    assert ds.subset(ds.folds == 10).folds.tolist() == [10] * 4


def test_tut2017_development_folds(tmp_path):
    scenes = ["beach", "bus", "cafe/restaurant"]
    files = [f"audio/a00{i}_0_10.wav" for i in range(6)]
    (tmp_path / "meta.txt").write_text("".join(f"{f}\t{scenes[i % 3]}\ta00{i}\n" for i, f in enumerate(files)))
    (tmp_path / "evaluation_setup").mkdir()
    (tmp_path / "evaluation_setup" / "fold1_evaluate.txt").write_text("".join(f"{f}\t{scenes[i % 3]}\n" for i, f in enumerate(files[:3])))
    (tmp_path / "evaluation_setup" / "fold2_evaluate.txt").write_text("".join(f"{f}\t{scenes[(i + 3) % 3]}\n" for i, f in enumerate(files[3:])))
    for f in files:
        touch(tmp_path / f)
    ds = D.load_tut2017(tmp_path)
    assert ds.class_names == sorted(scenes)
    assert ds.folds.tolist() == [1, 1, 1, 2, 2, 2]
    assert [ds.class_names[i] for i in ds.labels] == [scenes[i % 3] for i in range(6)]


def test_vocalsound(tmp_path):
    classes = [("0", "/m/01j3sz", "Laughter"), ("1", "/m/07plz5l", "Sigh"), ("2", "/m/01b_21", "Cough")]
    with (tmp_path / "class_labels_indices_vs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "mid", "display_name"])
        w.writerows(classes)
    (tmp_path / "datafiles").mkdir()
    split_items = {
        "tr": [("f0003_0_cough.wav", "/m/01b_21"), ("f0003_0_laughter.wav", "/m/01j3sz")],
        "val": [("m0010_0_sigh.wav", "/m/07plz5l")],
        "te": [("f0100_0_cough.wav", "/m/01b_21")],
    }
    for split, items in split_items.items():
        data = [{"wav": f"/some/old/path/audio_16k/{n}", "labels": m} for n, m in items]
        (tmp_path / "datafiles" / f"{split}.json").write_text(json.dumps({"data": data}))
        for n, _ in items:
            touch(tmp_path / "audio_16k" / n)
    ds = D.load_vocalsound(tmp_path)
    assert ds.ids == ["f0003_0_cough.wav", "f0003_0_laughter.wav", "m0010_0_sigh.wav", "f0100_0_cough.wav"]
    assert [ds.class_names[i] for i in ds.labels] == ["Cough", "Laughter", "Sigh", "Cough"]
    assert ds.folds.tolist() == ["tr", "tr", "val", "te"]
    assert len(D.load_vocalsound(tmp_path, splits=["te"])) == 1


def test_dcase2017_task4_multilabel(tmp_path):
    lines = [
        "-5QrBL6MzLg_60.000_70.000.wav\t60.000\t70.000\tTrain horn",
        "-5QrBL6MzLg_60.000_70.000.wav\t60.000\t70.000\tTrain",
        "-9GFn3fhDxQ_30.000_40.000.wav\t30.000\t40.000\tCar",
        "0kMkDo4E9_k_30.000_40.000.wav\t30.000\t40.000\tAmbulance (siren)",
    ]
    touch(tmp_path / "metadata" / "groundtruth_weak_label_evaluation_set.csv").write_text("\n".join(lines) + "\n")
    touch(tmp_path / "evaluation" / "Y-5QrBL6MzLg_60.000_70.000.wav")
    touch(tmp_path / "evaluation" / "-9GFn3fhDxQ_30.000_40.000.wav")  # no Y prefix: also found
    ds = D.load_dcase2017_task4(tmp_path)  # third clip missing: dropped and counted (YouTube set)
    assert ds.metric == "f1" and ds.multilabel and len(ds.class_names) == 17
    assert ds.missing == ["0kMkDo4E9_k_30.000_40.000.wav"]
    assert [sorted(ds.class_names[j] for j in np.flatnonzero(r)) for r in ds.labels] == [["Train", "Train horn"], ["Car"]]
    with pytest.raises(D.DatasetLayoutError, match="0kMkDo4E9_k"):
        D.load_dcase2017_task4(tmp_path, allow_missing=False)


def test_audioset_eval_segments(tmp_path):
    (tmp_path / "eval_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:25 2017\n"
        "# num_ytids=3, num_segs=3, num_unique_labels=3, num_positive_labels=4\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_"\n'
        '--BfvyPmVMo, 20.000, 30.000, "/m/03l9g"\n'
        '--U7joUcTCo, 0.000, 10.000, "/m/068hy"\n'
    )
    (tmp_path / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/068hy,"Domestic animals, pets"\n1,/m/07q6cd_,Squeak\n2,/m/03l9g,Hammer\n'
    )
    touch(tmp_path / "eval_segments" / "Y--4gqARaEJE.wav")
    touch(tmp_path / "eval_segments" / "--BfvyPmVMo_20.000_30.000.flac")
    ds = D.load_audioset(tmp_path)
    assert ds.class_names == ["Domestic animals, pets", "Squeak", "Hammer"]
    assert ds.ids == ["--4gqARaEJE", "--BfvyPmVMo"] and ds.missing == ["--U7joUcTCo"]
    assert ds.labels.tolist() == [[True, True, False], [False, False, True]]
    assert ds.paths[1].name == "--BfvyPmVMo_20.000_30.000.flac" and ds.metric == "map"


def test_clotho_and_audiocaps(tmp_path):
    clotho = tmp_path / "clotho"
    shutil.copy(Path(__file__).parent / "fixtures" / "clotho" / "clotho_captions_evaluation.csv", clotho.mkdir() or clotho)
    meta = rows(clotho / "clotho_captions_evaluation.csv")
    for r in meta:
        touch(clotho / "evaluation" / r["file_name"])
    ds = D.load_clotho(clotho)
    assert len(ds) == 1045 and all(len(c) == 5 for c in ds.captions) and ds.metric == "retrieval"
    texts, owner = ds.caption_pairs()
    assert len(texts) == 5225 and texts[5] == meta[1]["caption_1"] and owner[5] == 1

    ac = tmp_path / "audiocaps"
    (ac / "dataset").mkdir(parents=True)
    (ac / "dataset" / "test.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n"
        "103549,--0w1YA1Hm4,30,A vehicle driving as a man and woman are talking\n"
        "103548,--0w1YA1Hm4,30,Traffic passes while people talk\n"
        "10356,-5G0jvpRq6g,30,Rain falls on a roof\n"
    )
    touch(ac / "audio" / "test" / "Y--0w1YA1Hm4.wav")
    caps = D.load_audiocaps(ac)
    assert caps.ids == ["--0w1YA1Hm4"] and caps.missing == ["-5G0jvpRq6g"]
    assert caps.captions == [["A vehicle driving as a man and woman are talking", "Traffic passes while people talk"]]


def test_load_embedded_labels_and_captions(tmp_path):
    rng = np.random.default_rng(0)
    V = rng.normal(size=(4, 8)).astype(np.float32)
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    save_precomputed(tmp_path / "esc50.parquet", Embeddings(V, "m"), ids=["a", "b", "c", "d"])
    (tmp_path / "esc50.csv").write_text("id,label,fold\nc,rain,1\na,dog,2\nb,rain,1\n")
    e = D.load_embedded(tmp_path / "esc50.parquet", tmp_path / "esc50.csv")
    assert e.dataset.ids == ["c", "a", "b"] and e.dataset.class_names == ["dog", "rain"]
    assert e.dataset.labels.tolist() == [1, 0, 1] and e.dataset.folds.tolist() == [1, 2, 1]
    np.testing.assert_array_equal(e.audio, V[[2, 0, 1]])
    assert e.dataset.metric == "accuracy" and e.fingerprint == "m"

    (tmp_path / "multi.csv").write_text("id,label\na,dog;rain\nb,rain\n")
    m = D.load_embedded(tmp_path / "esc50.parquet", tmp_path / "multi.csv", name="audioset")
    assert m.dataset.multilabel and m.dataset.metric == "map"

    np.save(tmp_path / "clips.npy", V)
    (tmp_path / "clips.json").write_text(json.dumps({"fingerprint": "m", "ids": ["a", "b", "c", "d"]}))
    (tmp_path / "caps.csv").write_text("id,caption\nb,one\nb,two\nd,three\n")
    T = rng.normal(size=(3, 8)).astype(np.float32)
    save_precomputed(tmp_path / "caps.parquet", Embeddings(T, "m"), ids=["d#0", "b#1", "b#0"])
    c = D.load_embedded(tmp_path / "clips.npy", tmp_path / "caps.csv", text_embeddings=tmp_path / "caps.parquet")
    assert c.dataset.captions == [["one", "two"], ["three"]] and c.dataset.metric == "retrieval"
    np.testing.assert_allclose(c.text, T[[2, 1, 0]] / np.linalg.norm(T[[2, 1, 0]], axis=1, keepdims=True), rtol=1e-6)

    (tmp_path / "bad.csv").write_text("id,label\nzz,dog\n")
    with pytest.raises(ValueError, match="zz"):
        D.load_embedded(tmp_path / "esc50.parquet", tmp_path / "bad.csv")
    save_precomputed(tmp_path / "other.parquet", Embeddings(T, "other-model"), ids=["d#0", "b#1", "b#0"])
    with pytest.raises(ValueError, match="same model"):
        D.load_embedded(tmp_path / "clips.npy", tmp_path / "caps.csv", text_embeddings=tmp_path / "other.parquet")
