#!/usr/bin/env bash
# Walk bench/README.md's device call on this CPU, as the lent machine would run it (SMALL mode):
#
#     VENV=/work/venv312 bench/rehearse_device.sh [WORK]
#
# What the device has, rebuilt here (as the notes of the first GPU run, gpu_runs.md, describe it): Python
# 3.12 with torch 2.11 (CUDA 13 build; it runs on a CPU) and transformers 5.x, no project install, no
# network, and only the checkout plus the carried .gpu-wheels/. Make the interpreter once, OUTSIDE the repository:
#
#     ~/.pyenv/versions/3.12.*/bin/python -m venv /work/venv312
#     /work/venv312/bin/pip install torch==2.11.0 'transformers>=5,<6' pytest pytest-timeout scipy jinja2 \
#         aiohttp httpx
#     PIP=/work/venv312/bin/pip bench/gpu_wheels.sh
#
# The walk copies what the device tool sends (tracked and untracked-not-ignored files, no .git) and the
# carried .gpu-wheels into WORK/repo, then runs there, with no network (unshare -n) and a clean
# environment: `SMALL=1 bench/gpu_suite.sh`, then `ONLY=failed bench/gpu_suite.sh` (the second command,
# which must find nothing to redo), then `SMALL=1 bench/lm_gpu_suite.sh`. It prints each step's seconds
# and fails when a bench failed. OMP_NUM_THREADS=1: this machine's cores are shared.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-/work/venv312}
WORK=${1:-$(mktemp -d -t songbot-rehearsal-XXXX)}
PY="$VENV/bin/python"
"$PY" - <<'PY'
import sys, torch, transformers
print("interpreter:", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__)
if sys.version_info[:2] != (3, 12) or not torch.__version__.startswith("2.11") or transformers.__version__[0] != "5":
    raise SystemExit("the device has Python 3.12, torch 2.11 and transformers 5: make that venv first")
PY
[ -d "$REPO/.gpu-wheels" ] || { echo "no .gpu-wheels: run bench/gpu_wheels.sh first" >&2; exit 1; }

# -- what travels: the working tree as git sees it, without .git, plus the carried folder --------------
rm -rf "$WORK/repo" "$WORK/out" "$WORK/out2" "$WORK/lm" "$WORK/state"
mkdir -p "$WORK/repo" "$WORK/home"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 tar --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$WORK/repo"
cp -r "$REPO/.gpu-wheels" "$WORK/repo/"
COMMIT=$(git -C "$REPO" rev-parse HEAD)
if [ "$(id -u)" = 0 ]; then OFFLINE=(unshare -n); else OFFLINE=(unshare -rn); fi
device() {  # device COMMAND...: in the copy, offline, with the device's environment and nothing of ours
    (cd "$WORK/repo" && "${OFFLINE[@]}" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$WORK/home" \
        PYTHON="$PY" SUITE_COMMIT="$COMMIT" SUITE_STATE="$WORK/state" OMP_NUM_THREADS=1 "$@")
}
timed() {  # timed NAME COMMAND...: run it, print its seconds
    local name=$1 began=$SECONDS
    shift
    "$@"
    echo "rehearsal: $name took $(( SECONDS - began )) s" >&2
}

timed "the suite" device env SMALL=1 bench/gpu_suite.sh "$WORK/out"
timed "the second command" device env SMALL=1 ONLY=failed bench/gpu_suite.sh "$WORK/out2"
timed "lm_gpu_suite.sh" device env SMALL=1 OUT="$WORK/lm" bench/lm_gpu_suite.sh
"$PY" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
first, second = (json.loads((work / d / "gpu-suite.json").read_text()) for d in ("out", "out2"))
print(json.dumps(first, indent=2))
if first["errors"] or second["errors"]:
    raise SystemExit(f"benches failed: {first['errors'] or second['errors']}")
print(f"rehearsal passed: {work}/out/gpu-suite.json")
PY
