"""MP3 encoders compared on one core: speed (× real time) and fidelity (SNR). Prints JSON lines (bench/records.py).

    python bench/encode.py [--seconds 60] [--out bench/results/encode-<machine>.json]

The signal is music-like (chords, a moving bass, noise bursts), stereo at 48 kHz. Each encoder runs
in this process, single-threaded. ``x_realtime_per_core`` is the project's encoder as the engine calls
it (``storage.media.audio.encode_mp3``: LAME through lameenc, Info frame and ID3 tags included).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path: keep only the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import functools  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from bench.records import record  # noqa: E402
from storage.media import audio  # noqa: E402

RATE = 48_000


def music(seconds: float) -> np.ndarray:
    """Three-note chords over a bass line with hiss, stereo float32."""
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(0)
    chord = sum(0.12 * np.sin(2 * np.pi * f * t * (1 + 0.002 * np.sin(0.5 * t))) for f in (261.6, 329.6, 392.0))
    bass = 0.2 * np.sin(2 * np.pi * (55 + 10 * np.floor(t % 8)) * t)
    # Hiss below 12 kHz: LAME low-passes 320 kb/s at about 20 kHz, which would otherwise cap the SNR.
    from scipy.signal import butter, sosfilt

    hiss = sosfilt(butter(8, 12_000, fs=RATE, output="sos"), 0.03 * rng.standard_normal(t.shape))
    hiss = hiss * (np.sin(2 * np.pi * 2 * t) > 0)
    left = chord + bass + hiss
    return np.stack([left, np.roll(left, 240) * 0.9], axis=1).astype(np.float32)


def snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    n = min(len(reference), len(decoded))
    error = reference[:n] - decoded[:n]
    return round(float(10 * np.log10((reference[:n] ** 2).sum() / max((error**2).sum(), 1e-20))), 2)


def measure(name: str, encode: Callable[[], bytes], seconds: float, signal: np.ndarray, repeats: int) -> dict:
    encode()  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        data = encode()
        times.append(time.perf_counter() - began)
    decoded, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    best = min(times)
    return {
        "encoder": name,
        "x_realtime": round(seconds / best, 1),
        "seconds": round(best, 3),
        "bytes": len(data),
        "decoded_samples": int(decoded.shape[0]),
        "snr_db": snr_db(signal, decoded),
    }


def libsndfile(signal: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, RATE, format="MP3", bitrate_mode="CONSTANT", compression_level=0.0)
    return buffer.getvalue()


def lame(signal: np.ndarray, quality: int) -> bytes:
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(320)
    encoder.set_in_sample_rate(RATE)
    encoder.set_channels(2)
    encoder.set_quality(quality)
    stream = bytes(encoder.encode(audio.to_pcm16(signal).tobytes()) + encoder.flush())
    return audio.info_frame(stream, len(signal)) + stream


def project(signal: np.ndarray, folder: Path) -> bytes:
    path = audio.encode_mp3(signal, folder / "song.mp3", audio.Tags("Bench", "a prompt", "la la", 1, 1))
    return path.read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON lines to this file")
    args = parser.parse_args()
    signal = music(args.seconds)
    if args.out:
        args.out.write_text("")  # a fresh file: records are appended as they come
    emit = functools.partial(record, out=args.out)
    emit(
        "setup",
        bench="encode",
        song_seconds=args.seconds,
        threads=1,
        cpu_count=os.cpu_count(),
        load_average_1m=round(os.getloadavg()[0], 2),  # a shared CPU: read the numbers with it
        lame_quality=audio.LAME_QUALITY,
        kbps=audio.MP3_KBPS,
    )
    with tempfile.TemporaryDirectory() as folder:
        # The project's encoder first: it gives the suite's figure (x_realtime_per_core).
        chosen = measure(
            "storage.media.audio.encode_mp3", lambda: project(signal, Path(folder)), args.seconds, signal, args.repeats
        )
        emit("chosen", x_realtime_per_core=chosen["x_realtime"], **chosen)
        emit(
            "encoder",
            **measure(
                "libsndfile (LAME -q 2, 320k CBR)", lambda: libsndfile(signal), args.seconds, signal, args.repeats
            ),
        )
        for quality in (2, 3, 5):
            emit(
                "encoder",
                **measure(
                    f"lameenc -q {quality} 320k CBR",
                    lambda q=quality: lame(signal, q),
                    args.seconds,
                    signal,
                    args.repeats,
                ),
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
