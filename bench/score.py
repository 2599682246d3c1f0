"""What scoring a best=N take costs, against what making the take cost (the target: 10 % at most).

    python bench/score.py --full-size --seconds 60,180     # GPU: official sizes, random bf16 weights
    python bench/score.py --small --seconds 10             # CPU: the tiny checkpoint set

Per song length, one take is made as the engine makes it (the 5 Hz LM plans caption, metadata and audio
codes; the DiT and the VAE make the audio) and then scored the official way by the same LM
(`engine/acestep/lm/score.py`: one teacher-forced pass over the take's codes per condition). The first
length also warms everything up; each length is then timed on a take of its own. Prints JSON lines
(bench/records.py): ``setup``, then one ``case`` per length with ``take_s``, ``score_s``, ``score_pct``
(100 × score / take), ``score_passes`` and ``codes``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path: keep only the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import LYRICS  # noqa: E402
from bench.load import CAPTION, full_size_generator, tiny_generator  # noqa: E402
from bench.records import record  # noqa: E402
from engine.protocol import TrackRequest  # noqa: E402
from storage.contract.spec import JobSpec  # noqa: E402

BEST_OF = 3


def request(seconds: int, seed: int) -> TrackRequest:
    """A fresh take of a best=3 song of `seconds`, with lyrics (every condition is scored)."""
    spec = JobSpec.build(caption=CAPTION, lyrics=LYRICS, duration_s=seconds, duration_given=True, best_of=BEST_OF)
    return TrackRequest(job_id=seed, kind="song", spec=spec, seed=seed)


def quiet(_job: int | None, _stage: str, _percent: float) -> None:
    """Progress sink."""


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure(generator: Any, seconds: int, seed: int) -> dict[str, Any]:
    """Make one take, then score it; both timed to the GPU's end."""
    began = time.perf_counter()
    [take] = generator.generate([request(seconds, seed)], quiet)
    synchronize()
    made = time.perf_counter()
    if take.error:
        raise SystemExit(f"the take failed: {take.error}")
    score = generator.score(request(seconds, seed), take, quiet)
    synchronize()
    scored = time.perf_counter()
    take_s, score_s = made - began, scored - made
    return {
        "seconds": seconds,
        "take_s": round(take_s, 3),
        "score_s": round(score_s, 3),
        "score_pct": round(100.0 * score_s / take_s, 2),
        "score_passes": 2 * len(score.conditions) - sum(key not in ("caption", "lyrics") for key in score.conditions),
        "codes": len(take.plan.audio_codes) if take.plan is not None else 0,
        "total": round(score.total, 4),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print their records."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--full-size", action="store_true", help="official sizes, random bf16 weights (GPU)")
    size.add_argument("--small", action="store_true", help="the tiny checkpoint set on the CPU")
    parser.add_argument("--seconds", default="60,180", help="song lengths, comma-separated")
    args = parser.parse_args(argv)
    lengths = [int(value) for value in args.seconds.split(",")]
    began = time.perf_counter()
    generator = full_size_generator(1) if args.full_size else tiny_generator(1)
    device = str(generator.device)
    record("setup", device=device, full_size=args.full_size, load_s=round(time.perf_counter() - began, 1))
    measure(generator, lengths[0], seed=1)  # warm-up: kernels, CUDA graphs, caches
    for n, seconds in enumerate(lengths, start=2):
        record("case", **measure(generator, seconds, seed=n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
