#!/usr/bin/env bash
# The LM planner's GPU checks and numbers in one call (a few minutes on an H100/H200).
#   bench/lm_gpu_suite.sh            # on the GPU machine: JSON files in $OUT (or bench/results)
#   SMALL=1 bench/lm_gpu_suite.sh    # the same commands with the tiny geometry on this CPU (a smoke test)
# Needs only torch, transformers, tokenizers, safetensors, jinja2, pyyaml and numpy (no project install).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
if [[ -n "${SMALL:-}" ]]; then
    size=(--small --threads 1)
    sizes=(small)
else
    size=(--full-size)
    sizes=(0.6B 4B)
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PY" -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__)"
# 1.7B: every batch size, both phases, the graphs-vs-eager-vs-reference check, the old loop for comparison.
"$PY" bench/lm.py "${size[@]}" --check --reference --out "$OUT/lm-gpu-${SMALL:+small-}1.7B.json"
# The other geometries: that they run, and their speed at batch 1 and 32.
for g in "${sizes[@]}"; do
    [[ "$g" == small ]] && continue
    "$PY" bench/lm.py --full-size --geometry "$g" --batches 1,32 --tokens 200 --out "$OUT/lm-gpu-$g.json"
done
# The planner's own tests on the GPU machine's torch and transformers (CPU tiny model; fast).
"$PY" -m pytest -q -p no:cacheprovider tests/engine/lm/test_sampling.py tests/engine/lm/test_qwen3.py \
    tests/engine/lm/test_fast.py tests/engine/lm/test_decode.py 2>&1 | tail -5 > "$OUT/lm-gpu-pytest.txt" || true
cat "$OUT/lm-gpu-pytest.txt"
