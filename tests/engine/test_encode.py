"""The encode pool: spawned processes return the file's hash; a dead process is replaced."""

import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from engine.encode import EncodePool, PoolClosed
from storage.blobs.local import sha256_of
from storage.contract.results import LyricTiming, TimedLine
from storage.media import audio

TAGS = audio.Tags(title="t", prompt="p", lyrics="", seed=1, song_id=2)


def noise(seconds):
    return (np.random.default_rng(0).standard_normal((48_000 * seconds, 2)) * 0.1).astype(np.float32)


def test_spawned_and_inline_pools_write_the_same_tagged_mp3(tmp_path):
    pcm = audio.to_pcm16(noise(2))
    spawned, inline = EncodePool(1), EncodePool(0)
    try:
        a = spawned.submit(pcm, 48_000, tmp_path / "a.mp3", TAGS).result(60)
        b = inline.submit(pcm, 48_000, tmp_path / "b.mp3", TAGS).result(60)
    finally:
        spawned.close()
        inline.close()
    assert a == b == sha256_of(tmp_path / "a.mp3")
    assert audio.read_tags(tmp_path / "a.mp3")["song_id"] == "2"


def test_a_spawned_encode_writes_the_timed_lyrics_as_sylt(tmp_path):
    from mutagen.id3 import ID3

    timing = LyricTiming(lines=(TimedLine(start_s=0.5, end_s=1.5, text="la la"),))
    tags = audio.Tags(title="t", prompt="p", lyrics="[verse]\nla la", seed=1, song_id=3, timing=timing)
    pool = EncodePool(1)
    try:
        pool.submit(audio.to_pcm16(noise(2)), 48_000, tmp_path / "timed.mp3", tags).result(60)
    finally:
        pool.close()
    (sylt,) = ID3(str(tmp_path / "timed.mp3")).getall("SYLT")
    assert list(sylt.text) == [("la la", 500)]


def test_a_dead_encode_process_is_replaced_and_the_track_encoded_again(tmp_path):
    pool = EncodePool(1)
    pcm = noise(120)  # long enough that the kill lands mid-encode
    try:
        future = pool.submit(pcm, 48_000, tmp_path / "a.mp3", TAGS)
        deadline = time.monotonic() + 30
        while not pool._executor._processes and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.01)
        time.sleep(0.5)
        for pid in list(pool._executor._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            future.result(60)
        digest = pool.retry(pcm, 48_000, tmp_path / "a.mp3", TAGS)
    finally:
        pool.close()
    assert digest == sha256_of(tmp_path / "a.mp3")
    assert audio.duration_of(tmp_path / "a.mp3") == pytest.approx(120.0, abs=0.01)


def test_a_disk_error_wrapped_by_a_library_keeps_its_errno_across_the_process_boundary(tmp_path, monkeypatch):
    import errno
    import pickle

    from mutagen import MutagenError

    from engine.encode import encode_track

    def full_disk(path, tags):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as error:
            raise MutagenError("saving the tags failed") from error

    monkeypatch.setattr(audio, "write_tags", full_disk)
    with pytest.raises(OSError) as raised:
        encode_track(audio.to_pcm16(noise(1)), 48_000, str(tmp_path / "a.mp3"), TAGS)
    assert pickle.loads(pickle.dumps(raised.value)).errno == errno.ENOSPC  # what a spawned encoder sends back


ENGINE_WITH_POOL = """
import sys, time
import numpy as np
from engine.encode import EncodePool, PoolClosed
from storage.media import audio

pool = EncodePool(2)
pcm = (np.random.default_rng(0).standard_normal((48_000 * 600, 2)) * 0.1).astype(np.float32)
tags = audio.Tags(title="t", prompt="p", lyrics="", seed=1, song_id=2)
futures = [pool.submit(pcm, 48_000, f"{sys.argv[1]}/{n}.mp3", tags) for n in range(2)]
print(" ".join(str(pid) for pid in pool._executor._processes), flush=True)
time.sleep(600)  # killed long before: the encodes are still running then
"""


def alive(pid):
    """Whether `pid` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc to see the children")
@pytest.mark.parametrize("kind", ["the engine's main thread", "another thread"])
def test_an_engine_killed_mid_encode_leaves_no_encoder_behind(tmp_path, kind):
    import subprocess
    import sys

    script = ENGINE_WITH_POOL
    if kind == "another thread":  # only the pid watch holds here: the kernel's signal follows the thread
        script = script.replace(
            "pool = EncodePool(2)",
            "pool = EncodePool(2)\nimport threading\nt = threading.Thread(target=pool._pool); t.start(); t.join()",
        )
    engine = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        children = [int(pid) for pid in engine.stdout.readline().split()]
        assert len(children) == 2 and all(alive(pid) for pid in children)
    finally:
        engine.kill()  # SIGKILL: no cleanup of any kind in the engine
        engine.wait()
    deadline = time.monotonic() + 60  # a bound for a busy machine; they go within a fraction of a second
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in children)


def test_an_abandoned_pool_kills_its_encodes_and_starts_no_new_one(tmp_path):
    pool = EncodePool(1)
    pcm = noise(600)  # minutes of work: still running when abandoned
    future = pool.submit(pcm, 48_000, tmp_path / "a.mp3", TAGS)
    children = list(pool._executor._processes)  # type: ignore[union-attr]
    pool.abandon()
    with pytest.raises(BrokenProcessPool):
        future.result(60)
    with pytest.raises(PoolClosed):
        pool.retry(pcm, 48_000, tmp_path / "a.mp3", TAGS)
    with pytest.raises(PoolClosed):
        pool.submit(pcm, 48_000, tmp_path / "b.mp3", TAGS)
    assert not any(alive(pid) for pid in children)
    pool.close()  # after abandon(): nothing left to wait for
