"""The SQLite embedding cache: exact round trips, isolation, validation, concurrency and crash safety."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import signal
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from audioconcepts.encoders.cache import EmbeddingCache, default_cache_path, file_key, text_key

FP = "clap-test@1"
DIM = 16


def vector_for(key: str, dim: int = DIM) -> np.ndarray:
    """A deterministic unit vector per key, so any process can check what another one wrote."""
    v = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def integrity(path: Path) -> str:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


# --- child processes (module level, so the "spawn" start method can import them) ---


def _writer(path: str, name: str, n: int, batch: int, barrier) -> None:
    """Write keys k0..k{n-1}, shared by both writers (same values), plus keys private to `name`."""
    with EmbeddingCache(path) as cache:
        barrier.wait(timeout=120)
        for start in range(0, n, batch):
            keys = [f"k{i}" for i in range(start, start + batch)] + [f"{name}{i}" for i in range(start, start + batch)]
            cache.put_many({k: vector_for(k) for k in keys}, FP)


def _batch_keys(b: int, batch: int) -> list[str]:
    return [f"b{b}-{i}" for i in range(batch)]


def _crashing_writer(path: str, log: str, batch: int, dim: int, die_in_batch: int | None) -> None:
    """Commit batches and log each one after it commits. With `die_in_batch`, call os._exit halfway
    through that batch's INSERTs (a tiny page cache makes SQLite spill them into the WAL first);
    without it, write until SIGKILLed."""
    cache = EmbeddingCache(path)
    conn = cache._conn
    conn.execute("PRAGMA cache_size=8")
    inserts = 0

    def trace(statement: str) -> None:
        nonlocal inserts
        if statement.startswith("INSERT OR REPLACE"):
            inserts += 1
            if die_in_batch is not None and inserts == die_in_batch * batch + batch // 2:
                os._exit(3)

    conn.set_trace_callback(trace)
    b = 0
    while True:
        cache.put_many({k: vector_for(k, dim) for k in _batch_keys(b, batch)}, FP)
        with open(log, "a") as f:
            f.write(f"{b}\n")
        b += 1


def _check_after_crash(path: Path, log: Path, batch: int, dim: int) -> int:
    """Every logged batch reads back exactly, no batch is partly stored, and the DB is intact."""
    assert integrity(path) == "ok"
    committed = [int(line) for line in log.read_text().split()]
    with EmbeddingCache(path) as cache:
        for b in range(max(committed) + 3):
            keys = _batch_keys(b, batch)
            hits = cache.get_many(keys, FP)
            assert len(hits) in (0, batch), f"batch {b} is partly stored"
            if b in committed:
                assert len(hits) == batch
            for k, v in hits.items():
                assert v.tobytes() == vector_for(k, dim).tobytes()
        cache.put_many({"after": vector_for("after", dim)}, FP)  # and it is still writable
        assert ("after", FP) in cache
    return len(committed)


# --- tests ---


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "cache.sqlite") as c:
        yield c


def test_hits_and_misses(cache):
    assert cache.get_many(["a", "b"], FP) == {}
    cache.put_many({"a": vector_for("a")}, FP)
    hits = cache.get_many(["a", "b", "a"], FP)
    assert list(hits) == ["a"]
    assert ("a", FP) in cache and ("b", FP) not in cache
    assert len(cache) == 1 and cache.fingerprints() == {FP: 1}
    cache.put_many([], FP)
    assert cache.get_many([], FP) == {}


def test_round_trip_is_bitwise_exact(cache):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, DIM)).astype(np.float32)
    X[0, :3] = [np.float32(1e-45), np.float32(-0.0), np.finfo(np.float32).max]  # subnormal, -0, max
    keys = [f"x{i}" for i in range(len(X))]
    cache.put_many(list(zip(keys, X)), FP)
    hits = cache.get_many(keys, FP)
    got = np.stack([hits[k] for k in keys])
    assert got.dtype == np.float32 and got.flags.writeable
    assert got.tobytes() == X.tobytes()


def test_replace_and_float64_input(cache):
    cache.put_many({"a": vector_for("a")}, FP)
    v64 = vector_for("b").astype(np.float64)
    cache.put_many({"a": v64}, FP)
    assert cache.get_many(["a"], FP)["a"].tobytes() == v64.astype(np.float32).tobytes()
    assert len(cache) == 1


def test_fingerprint_isolation(cache):
    cache.put_many({"a": vector_for("a")}, "model-1")
    cache.put_many({"a": vector_for("other", 8)}, "model-2")  # same key, another model and dim
    assert cache.get_many(["a"], "model-1")["a"].tobytes() == vector_for("a").tobytes()
    assert cache.get_many(["a"], "model-2")["a"].tobytes() == vector_for("other", 8).tobytes()
    assert cache.get_many(["a"], "model-3") == {}
    assert cache.fingerprints() == {"model-1": 1, "model-2": 1}
    assert cache.prune("model-1") == 1
    assert cache.get_many(["a"], "model-1") == {} and ("a", "model-2") in cache
    cache.put_many({"a": vector_for("a", 4)}, "model-1")  # pruned: the dimension may change


def test_invalid_vectors_are_rejected(cache):
    cache.put_many({"a": vector_for("a")}, FP)
    with pytest.raises(ValueError, match="16-d"):
        cache.put_many({"b": vector_for("b", 8)}, FP)
    with pytest.raises(ValueError, match="different dimensions"):
        cache.put_many({"b": vector_for("b", 8), "c": vector_for("c")}, FP)
    for bad in (np.zeros((2, DIM)), np.full(DIM, np.nan), np.full(DIM, 1e39), np.zeros(0)):  # 1e39: inf in float32
        with pytest.raises(ValueError):
            cache.put_many({"b": bad}, FP)
    assert len(cache) == 1 and cache.fingerprints() == {FP: 1}  # nothing half-written


def test_file_and_text_keys(tmp_path, cache):
    f = tmp_path / "sound.wav"
    f.write_bytes(b"RIFF" + os.urandom(3_000_000))  # larger than a hashing chunk
    key = file_key(f)
    assert key == hashlib.sha256(f.read_bytes()).hexdigest()
    assert file_key(str(f)) == key
    cache.put_many({key: vector_for("x")}, FP)
    f.rename(tmp_path / "renamed.wav")  # renaming keeps the key
    f = tmp_path / "renamed.wav"
    assert file_key(f) == key and (key, FP) in cache
    f.write_bytes(f.read_bytes()[:-1] + b"!")  # content changes: new key, a miss
    assert file_key(f) != key and cache.get_many([file_key(f)], FP) == {}

    assert text_key("dog barking") == hashlib.sha256(b"text:dog barking").hexdigest()
    assert text_key("café") == hashlib.sha256("text:café".encode()).hexdigest()
    assert text_key("dog") != text_key("dog ")
    cache.put_many({text_key("dog"): vector_for("dog")}, FP)  # concepts share the same cache
    assert text_key("dog") in cache.get_many([text_key("dog"), text_key("cat")], FP)


def test_corrupted_row_is_a_miss_and_deleted(tmp_path):
    path = tmp_path / "cache.sqlite"
    with EmbeddingCache(path) as cache:
        cache.put_many({"good": vector_for("good"), "bad": vector_for("bad")}, FP)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE embeddings SET vector = ? WHERE key = 'bad'", (vector_for("bad").tobytes()[:-4],))
        conn.execute("INSERT INTO embeddings VALUES (?, 'long', ?)", (FP, vector_for("long").tobytes() + b"\0"))
    with EmbeddingCache(path) as cache:
        assert len(cache) == 3
        assert ("bad", FP) not in cache
        hits = cache.get_many(["good", "bad", "long"], FP)
        assert list(hits) == ["good"] and hits["good"].tobytes() == vector_for("good").tobytes()
        assert len(cache) == 1  # the bad rows are gone
        cache.put_many({"bad": vector_for("bad")}, FP)
        assert ("bad", FP) in cache


def test_concurrent_writers_and_reader(tmp_path):
    """Two processes write (partly the same keys) in many small batches while this one reads."""
    path, n, batch = tmp_path / "cache.sqlite", 300, 25
    keys = [f"{p}{i}" for p in ("k", "a", "b") for i in range(n)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_writer, args=(str(path), name, n, batch, barrier)) for name in ("a", "b")]
    for p in procs:
        p.start()
    with EmbeddingCache(path) as cache:
        barrier.wait(timeout=120)
        reads = 0
        while any(p.is_alive() for p in procs) or reads == 0:
            for key, v in cache.get_many(keys, FP).items():
                assert v.tobytes() == vector_for(key).tobytes()
            reads += 1
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0]
        hits = cache.get_many(keys, FP)
        assert len(hits) == len(cache) == 3 * n
        assert all(hits[k].tobytes() == vector_for(k).tobytes() for k in keys)
    assert integrity(path) == "ok"


def test_many_openers_of_a_new_file(tmp_path):
    """Connections opening a fresh file together race to switch it to WAL; none may fail."""
    errors: list[BaseException] = []

    def open_and_write(path: Path, barrier: threading.Barrier, i: int) -> None:
        barrier.wait()
        try:
            with EmbeddingCache(path) as cache:
                cache.put_many({f"k{i}": vector_for(f"k{i}")}, FP)
        except BaseException as e:
            errors.append(e)

    for trial in range(40):
        path, barrier = tmp_path / f"cache{trial}.sqlite", threading.Barrier(4)
        threads = [threading.Thread(target=open_and_write, args=(path, barrier, i)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        with EmbeddingCache(path) as cache:
            assert len(cache) == 4


@pytest.mark.parametrize("how", ["os._exit mid-transaction", "SIGKILL"])
def test_killed_writer_keeps_committed_batches(tmp_path, how):
    path, log, batch, dim = tmp_path / "cache.sqlite", tmp_path / "committed.log", 200, 256
    ctx = mp.get_context("spawn")
    die_in_batch = 3 if how.startswith("os._exit") else None
    p = ctx.Process(target=_crashing_writer, args=(str(path), str(log), batch, dim, die_in_batch))
    p.start()
    if die_in_batch is None:
        deadline = time.monotonic() + 60
        while (not log.exists() or len(log.read_text().split()) < 3) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(p.pid, signal.SIGKILL)
    p.join(60)
    assert p.exitcode == (3 if die_in_batch else -signal.SIGKILL)
    committed = _check_after_crash(path, log, batch, dim)
    assert committed >= 3 if die_in_batch is None else committed == die_in_batch


def test_default_location_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AUDIOCONCEPTS_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_path() == tmp_path / "home/.cache/audioconcepts/embeddings.sqlite"

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg/audioconcepts/embeddings.sqlite"

    monkeypatch.setenv("AUDIOCONCEPTS_CACHE", str(tmp_path / "mine"))
    with EmbeddingCache() as cache:
        assert cache.path == tmp_path / "mine/embeddings.sqlite"
        cache.put_many({"a": vector_for("a")}, FP)
    assert (tmp_path / "mine/embeddings.sqlite").is_file()
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()


def test_wal_mode_and_close(tmp_path):
    cache = EmbeddingCache(tmp_path / "nested/dirs/cache.sqlite")
    assert cache._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cache._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    cache.close()
    with pytest.raises(sqlite3.ProgrammingError):
        cache.get_many(["a"], FP)
