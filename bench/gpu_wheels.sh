#!/usr/bin/env bash
# Wheels of the packages the GPU machine's image lacks (it reaches no package registry), for
# bench/gpu_session.sh: facenet-pytorch (MTCNN, weights inside) and av (H.264 profile videos).
# Without MLflow there, training logs to no tracker (it says so) and each result says "mlflow": false.
# Run here, in the repository root; .whl/ is ignored by git and travels with `carry: [".whl"]`.
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl facenet-pytorch==2.5.3 av==18.1.0
du -sh .whl
