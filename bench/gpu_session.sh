#!/usr/bin/env bash
# One GPU-machine call for the OCIM-table measurement: bench/gpu_check.py (the CUDA-graph step
# against plain fp32 included), then bench/ocim_gpu.py. Results and logs in $OUT (7 files).
#
#   bash bench/gpu_wheels.sh                    # here, once: .whl/ (about 38 MB)
#   run: bash bench/gpu_session.sh              # on the GPU machine, carry [".whl"], timeout 600 s
#
# BENCH_ARGS="--device cpu --tiny" runs both self-tests instead (no GPU needed).
# Then copy what came back to bench/results/<card>-<date>/ and the table of ocim_gpu.md to
# docs/benchmarks.md ("The OCIM table on one GPU").
set -u
OUT=${OUT:-bench/out/gpu_session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
if compgen -G ".whl/*.whl" > /dev/null; then
  site=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
    || { echo "gpu_session: installing .whl/ failed"; exit 1; }
  export PYTHONPATH="$site"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__)"
  echo "cpus $(nproc)"
} > "$OUT/env.txt" 2>&1
timeout 150 python3 bench/gpu_check.py ${BENCH_ARGS:-} --json "$OUT/gpu_check.json" > "$OUT/gpu_check.log" 2>&1
echo "gpu_check: exit $?"
timeout 400 python3 bench/ocim_gpu.py ${BENCH_ARGS:-} --out "$OUT" > "$OUT/ocim_gpu.log" 2>&1
echo "ocim_gpu: exit $?"
tail -n 30 "$OUT/gpu_check.log"
tail -n 20 "$OUT/ocim_gpu.log"
