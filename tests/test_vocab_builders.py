"""Vocabulary builders on tiny hand-made FSD50K-format metadata with known answers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from audioconcepts.vocab.builders import (
    EXPLETIVES,
    audioset_ontology,
    baseline,
    caption_mined,
    caption_terms,
    clustered,
    from_text_list,
    pruned,
    tag_counts,
)

FIXTURES = Path(__file__).parent / "fixtures" / "vocab"
FILES = [FIXTURES / "clips_a_clips_info_FSD50K.json", FIXTURES / "clips_b_clips_info_FSD50K.json"]

#: Clip counts of the fixtures' tags, counted by hand.
EXPECTED_COUNTS = {
    "fuck": 7, "rain": 6, "dog": 5, "cough": 4, "x": 4, "2015": 3, "coughing": 3, "footstpes": 3,
    "coughs": 2, "field-recording": 2, "mp3": 2, "kitchen": 1, "shit": 1,
}


@pytest.fixture(scope="module")
def counts():
    return tag_counts(FILES)


def test_tag_counts_lowercases_strips_counts_once_per_clip_over_all_files(counts):
    assert dict(counts) == EXPECTED_COUNTS
    assert counts.sources == tuple(str(p) for p in FILES)


def test_baseline_drops_expletives_keeps_most_frequent_in_order(counts):
    built = baseline(counts, size=5)
    assert built.concepts == ["rain", "dog", "cough", "x", "2015"]
    assert built.counts == {"rain": 6, "dog": 5, "cough": 4, "x": 4, "2015": 3}
    assert built.provenance == {"recipe": "baseline", "sources": [str(p) for p in FILES], "parameters": {"size": 5}}
    assert "fuck" in EXPLETIVES and "shit" in EXPLETIVES


def test_baseline_custom_expletives_and_size_larger_than_vocabulary(counts):
    built = baseline(counts, size=100, expletives={"rain"})
    assert "rain" not in built.concepts and "fuck" in built.concepts
    assert len(built.concepts) == len(EXPECTED_COUNTS) - 1


def test_pruned_merges_shared_root_pooling_counts_and_drops_junk(counts):
    built = pruned(counts, size=10)
    assert built.concepts == ["cough", "rain", "dog", "field-recording", "kitchen"]
    assert built.counts == {"cough": 9, "rain": 6, "dog": 5, "field-recording": 2, "kitchen": 1}
    prov = built.provenance
    assert prov["merged"] == {"cough": ["cough", "coughing", "coughs"]}
    assert prov["dropped"] == {
        "expletive": ["fuck", "shit"],
        "single_letter": ["x"],
        "digits": ["2015", "mp3"],
        "misspelling": ["footstpes"],
    }
    assert prov["parameters"] == {"size": 10, "pool": 10000}


def test_pruned_concept_named_by_most_frequent_surface_form():
    built = pruned(Counter({"coughing": 5, "cough": 1, "coughs": 2}), size=5)
    assert built.concepts == ["coughing"]
    assert built.counts == {"coughing": 8}


def test_pruned_size_and_pool(counts):
    assert pruned(counts, size=3).concepts == ["cough", "rain", "dog"]
    # pool=5 sees only fuck, rain, dog, cough, x: coughing and coughs are outside it
    built = pruned(counts, size=10, pool=5)
    assert built.concepts == ["rain", "dog", "cough"]
    assert built.counts["cough"] == 4


def test_pruned_custom_word_list():
    built = pruned(Counter({"synth": 3, "footstpes": 2, "drum_machine": 1}), words={"synth", "drum", "machine"})
    assert built.concepts == ["synth", "drum_machine"]


def test_pruned_is_deterministic(counts):
    assert pruned(counts) == pruned(counts)


# clustered: three obvious groups on the unit circle, plus a rare far tag outside the pool.
ANGLES = {
    "rain": -0.3, "drizzle": 0.0, "shower": 0.1,  # near 0: mean angle ~ -0.07, nearest drizzle
    "dog": np.pi / 2 + 0.2, "bark": np.pi / 2, "woof": np.pi / 2 - 0.1,  # nearest bark
    "zzz": -np.pi / 2,  # count 1: outside a pool of 8
}
MIRRORED = {"sneeze": (-1.0, 0.6), "cough": (-1.0, -0.6)}  # exactly equidistant from their centroid
CLUSTER_COUNTS = Counter(
    {"rain": 9, "dog": 8, "sneeze": 5, "bark": 4, "shower": 3, "cough": 3, "drizzle": 2, "woof": 2, "zzz": 1}
)
GROUPS = [["rain", "drizzle", "shower"], ["dog", "bark", "woof"], ["sneeze", "cough"]]


def fake_embed(texts: list[str]) -> np.ndarray:
    rows = [
        np.array(MIRRORED[t]) if t in MIRRORED else np.array([np.cos(ANGLES[t]), np.sin(ANGLES[t])])
        for t in texts
    ]
    x = np.array(rows)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_clustered_picks_tag_nearest_each_centroid():
    seen: list[list[str]] = []

    def embed(texts):
        seen.append(list(texts))
        return fake_embed(texts)

    built = clustered(CLUSTER_COUNTS, embed, size=3, pool=8, seed=0)
    assert seen == [["rain", "dog", "sneeze", "bark", "cough", "shower", "drizzle", "woof"]]
    # independent computation: each group's centroid, its nearest member (ties: more frequent)
    expected = []
    for group in GROUPS:
        x = fake_embed(group)
        dist = np.linalg.norm(x - x.mean(axis=0), axis=1)
        best = min(range(len(group)), key=lambda i: (dist[i], -CLUSTER_COUNTS[group[i]]))
        expected.append(group[best])
    assert set(expected) == {"drizzle", "bark", "sneeze"}  # sneeze wins the exact tie by frequency
    assert built.concepts == ["sneeze", "bark", "drizzle"]
    assert built.counts == {"sneeze": 5, "bark": 4, "drizzle": 2}
    assert built.provenance["parameters"] == {"size": 3, "pool": 8, "seed": 0, "n_init": 4}


def test_clustered_is_deterministic_and_small_pool_keeps_all():
    a = clustered(CLUSTER_COUNTS, fake_embed, size=3, pool=8, seed=0)
    b = clustered(CLUSTER_COUNTS, fake_embed, size=3, pool=8, seed=0)
    assert a == b
    assert clustered(CLUSTER_COUNTS, fake_embed, size=3, pool=8, seed=7).concepts == a.concepts

    def never(texts):
        raise AssertionError("no embedding needed when the pool fits")

    assert clustered(CLUSTER_COUNTS, never, size=20, pool=4).concepts == ["rain", "dog", "sneeze", "bark"]


def test_from_text_list_parses_and_dedupes():
    built = from_text_list(FIXTURES / "concepts.txt")
    assert built.concepts == ["dog barking", "rain", "door knock"]
    assert built.counts == {"dog barking": 2, "rain": 2, "door knock": 1}
    assert built.provenance["duplicates"] == ["dog barking", "rain"]
    assert built.provenance["recipe"] == "text_list"


# --- caption_mined: tiny Clotho / AudioCaps / MusicCaps CSVs, caption counts counted by hand ---

CAPTION_FILES = [
    FIXTURES / "clotho_captions_tiny.csv",
    FIXTURES / "audiocaps_tiny.csv",
    FIXTURES / "musiccaps_tiny.csv",
]


def test_caption_terms_drop_stop_words_and_pair_only_truly_adjacent_words():
    words, pairs = caption_terms("The dog barks at a cat, dog's bark; walks on 2 gravel paths")
    assert words == {"dog", "barks", "cat", "bark", "walks", "gravel", "paths"}
    # "barks cat" / "walks gravel" would appear if stop words were removed before pairing;
    # "cat dog" spans a comma.
    assert pairs == {"dog barks", "dog bark", "gravel paths"}
    assert caption_terms("Dog barks", bigrams=False) == ({"dog", "barks"}, set())


def test_caption_mined_counts_ranks_and_truncates():
    built = caption_mined(CAPTION_FILES, size=6, min_bigram_count=2)
    assert built.concepts == ["dog", "rain", "barks", "dog barks", "falls", "rain falls"]
    assert built.counts == {"dog": 5, "rain": 5, "barks": 4, "dog barks": 4, "falls": 4, "rain falls": 4}
    p = built.provenance
    assert p["recipe"] == "caption_mined"
    assert p["sources"] == [str(f) for f in CAPTION_FILES]
    assert p["formats"] == dict(zip(p["sources"], ["clotho", "audiocaps", "musiccaps"]))
    assert p["parameters"]["size"] == 6 and p["parameters"]["min_bigram_count"] == 2
    assert p["n_captions"] == 13


def test_caption_mined_full_vocabulary_has_no_stop_words_digits_or_rare_bigrams():
    built = caption_mined(CAPTION_FILES, size=1000, min_bigram_count=2)
    assert built.concepts[6:13] == ["birds", "birds sing", "gravel", "heavy", "heavy rain", "roof", "sing"]
    for gone in ("the", "a", "at", "on", "while", "someone", "2", "s", "dog's", "barks birds"):
        assert gone not in built.counts
    assert "metal roof" not in built.counts  # seen in one caption only
    assert "metal roof" in caption_mined(CAPTION_FILES, min_bigram_count=1).counts
    assert built.counts["bark"] == 1 and built.counts["mood"] == 1  # MusicCaps quoted caption read
    assert all(" " not in t for t in caption_mined(CAPTION_FILES, bigrams=False).concepts)


def test_caption_mined_rejects_csv_without_captions(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file_name,label\nx.wav,dog\n", encoding="utf-8")
    with pytest.raises(ValueError):
        caption_mined([bad])


# --- audioset_ontology: tiny ontology JSON ---

ONTOLOGY = FIXTURES / "ontology_tiny.json"


def test_audioset_ontology_default_keeps_abstract_drops_blacklisted():
    built = audioset_ontology(ONTOLOGY)
    assert built.concepts == ["Animal", "Dog", "Cat"]
    assert built.counts == {"Animal": 1, "Dog": 1, "Cat": 1}
    assert built.provenance["ids"] == {"Animal": "/m/a", "Dog": "/m/b", "Cat": "/m/e"}
    assert built.provenance["sources"] == [str(ONTOLOGY)]
    assert "texts" not in built.provenance


def test_audioset_ontology_restriction_switches():
    assert audioset_ontology(ONTOLOGY, include_abstract=False).concepts == ["Dog", "Cat"]
    assert audioset_ontology(ONTOLOGY, include_blacklisted=True).concepts == [
        "Animal", "Dog", "Noise", "Other sourceless", "Cat"
    ]
    assert audioset_ontology(ONTOLOGY, include_abstract=False, include_blacklisted=True).concepts == [
        "Dog", "Noise", "Cat"
    ]


def test_audioset_ontology_description_texts():
    built = audioset_ontology(ONTOLOGY, with_descriptions=True)
    assert built.provenance["texts"] == {
        "Animal": "Animal: All animals.",
        "Dog": "Dog: A barking animal.",
        "Cat": "Cat",  # empty description: the name alone
    }
    assert built.provenance["parameters"]["with_descriptions"] is True
