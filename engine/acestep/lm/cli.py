"""``songbot plan "<description>" [--instrumental] [--seed N] [--duration S] [--json]``.

Prints the planner's blueprint for a description, for operators who tune prompts. The model
folder is ``$MODEL_DIR`` (default ``./models``); the LM is ``$LM_MODEL`` when set, else the
first ``acestep-5Hz-lm-*`` folder present.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

from storage.contract.errors import SongbotError


def build_parser() -> argparse.ArgumentParser:
    """The ``plan`` subcommand's arguments."""
    parser = argparse.ArgumentParser(prog="songbot plan", description="Plan a song with the 5 Hz LM.")
    parser.add_argument("description", help="one sentence describing the song")
    parser.add_argument("--instrumental", action="store_true", help="no vocals")
    parser.add_argument("--seed", type=int, default=None, help="uint32 seed (random when omitted)")
    parser.add_argument("--duration", type=float, default=None, help="seconds (the model picks when omitted)")
    parser.add_argument("--language", default=None, help="vocal language code such as en")
    parser.add_argument("--device", default=os.environ.get("ENGINE_DEVICE", "auto"), help="cpu, cuda or auto")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def plan_main(argv: list[str]) -> int:
    """Run ``songbot plan``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from engine.acestep.lm.model import find_lm
    from engine.acestep.lm.planner import Planner, PlanRequest

    model_dir = Path(os.environ.get("MODEL_DIR", "./models"))
    folder = find_lm(model_dir, os.environ.get("LM_MODEL") or None) or find_lm(model_dir)
    if folder is None:
        print(f"No acestep-5Hz-lm-* folder with weights in {model_dir}; set MODEL_DIR.", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    request = PlanRequest(
        args.description, seed, instrumental=args.instrumental, language=args.language, duration=args.duration
    )
    try:
        planner = Planner.load(model_dir, folder.name, _device(args.device))
        plan = planner.plan([request])[0]
    except SongbotError as error:
        print(error.user_message, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(plan.stored(), ensure_ascii=False))
        return 0
    print(f"seed: {seed}")
    for name in ("caption", "bpm", "key", "time_signature", "duration_s", "language"):
        print(f"{name}: {getattr(plan, name)}")
    print(f"audio codes: {len(plan.audio_codes)}\n\n{plan.lyrics}")
    return 0
