"""Hostile uploads against the bot's probe and the engine's decode: peak memory and CPU of each, in a child.

    python bench/hostile_audio.py [--code DIR] [--seconds 300] [--out bench/results/hostile-audio-<machine>.json]

Each file is written here, then one child process per (file, path) reads it and runs the bot's
check (`storage.media.decoding.probe`) or the engine's decode (`storage.media.decoding.decode`) with the default
600 s limit, and reports its own peak RSS (VmHWM) and CPU seconds. `--code DIR` runs the children on
another checkout's code (e.g. main's, where both processes called `storage.media.audio.decode`); its
children get an address-space cap (`--cap-gb`) and a timeout, so that a file that would take all
the machine's memory ends as "over the cap" instead.

The tests (`tests/storage/media/test_decoding_hostile.py`) use the same files and the same child.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
LIMIT_S = 600

# The child: imports the code under test from PYTHONPATH, runs one path on one file, prints JSON.
CHILD = r"""
import json, resource, sys
path, step, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
data = open(path, "rb").read()
try:
    from storage.media import decoding
    run = decoding.probe if step == "probe" else decoding.decode
except ImportError:  # main before this change: both processes called audio.decode
    from storage.media import audio
    run = audio.decode
try:
    run(data, limit)
    outcome, sentence = "decoded", ""
except MemoryError as error:
    outcome, sentence = "MemoryError", str(error)[:200]
except Exception as error:
    outcome, sentence = type(error).__name__, getattr(error, "user_message", str(error))[:200]
usage = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss: a child forked (preexec_fn) from a big parent (a pytest worker that ran torch tests)
# keeps the parent's RSS in ru_maxrss across exec; VmHWM is this program's own peak.
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "sentence": sentence, "peak_rss_mb": round(hwm_kb / 1024, 1),
                  "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}))
"""


def flac_constant(rate: int, seconds: float, value: float = 0.5) -> bytes:
    """A mono 16-bit FLAC at `rate` holding one constant value: tiny on disk, huge when decoded."""
    buffer = io.BytesIO()
    block = np.full((rate, 1), value, np.float32)
    with sf.SoundFile(buffer, "w", rate, 1, format="FLAC", subtype="PCM_16") as handle:
        for _ in range(int(seconds)):
            handle.write(block)
    return buffer.getvalue()


def hide_length(flac: bytes) -> bytes:
    """The FLAC with its STREAMINFO's total-samples field zeroed: "length unknown", so only reading tells."""
    data = bytearray(flac)
    data[21] &= 0xF0  # the top 4 of the 36 bits share a byte with the bits per sample
    data[22:26] = bytes(4)
    return bytes(data)


def wav_claiming(rate: int, payload_bytes: int, data_size: int | None = None) -> bytes:
    """A mono 16-bit WAV whose header says `rate` Hz and `data_size` bytes of audio (the truth if None)."""
    pcm = (np.sin(np.arange(payload_bytes // 2) / 5.0) * 10_000).astype("<i2").tobytes()
    size = len(pcm) if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16)
    riff = struct.pack("<I", (36 + size) & 0xFFFFFFFF)
    return b"RIFF" + riff + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + pcm


def hostile_files(seconds: float) -> dict[str, Callable[[], bytes]]:
    """The issue's files (and one long file at the highest rate accepted), by name; each built on demand."""
    return {
        "flac_384khz_constant": lambda: flac_constant(384_000, seconds),
        "flac_655350hz_constant": lambda: flac_constant(655_350, seconds),
        "wav_header_10mhz": lambda: wav_claiming(10_000_000, 96_000),
        "wav_header_2147483647hz": lambda: wav_claiming(2**31 - 1, 96_000),
        "wav_header_lies_about_size": lambda: wav_claiming(48_000, 96_000, data_size=0x7FFF_FFF0),
        "flac_192khz_constant": lambda: flac_constant(192_000, seconds),
        "flac_hidden_length_over_limit": lambda: hide_length(flac_constant(96_000, LIMIT_S + 60)),
    }


def run_child(
    path: Path, step: str, code: Path = REPO, cap_bytes: int | None = None, timeout_s: float = 600
) -> dict[str, object]:
    """Run one path on one file in a fresh process on `code`'s modules; its outcome, peak RSS and CPU."""
    env = {**os.environ, "PYTHONPATH": str(code)}

    def limit() -> None:
        if cap_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), step, str(LIMIT_S)],
            env=env,
            cwd=str(code),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            preexec_fn=limit,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": f"over {timeout_s:g} s", "sentence": "", "peak_rss_mb": None, "cpu_s": None}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"outcome": f"exit {done.returncode}", "sentence": done.stderr[-300:], "peak_rss_mb": None}
    return dict(json.loads(lines[-1]))


def measure(folder: Path, seconds: float, code: Path | None, cap_gb: float, timeout_s: float) -> dict[str, object]:
    """Every file through this checkout's probe and decode, and (with `code`) through that checkout's decode."""
    rows: dict[str, object] = {}
    for name, build in hostile_files(seconds).items():
        path = folder / name
        path.write_bytes(build())
        row: dict[str, object] = {"bytes": path.stat().st_size}
        for step in ("probe", "decode"):
            row[step] = run_child(path, step)
        if code is not None:
            row["before"] = run_child(path, "decode", code, int(cap_gb * 2**30), timeout_s)
        rows[name] = row
        print(name, json.dumps(row), file=sys.stderr)
    return rows


def main() -> None:
    """Parse the options, measure, print (and write) the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, help="another checkout to measure as 'before' (e.g. /work/main)")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--cap-gb", type=float, default=6.0)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = measure(Path(folder), args.seconds, args.code, args.cap_gb, args.timeout_s)
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "limit_s": LIMIT_S,
        "seconds": args.seconds,
        "before_cap_gb": args.cap_gb,
        "files": rows,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
