#!/usr/bin/env bash
# Issue 7's GPU checks in one run, for a task that is lent a GPU (see README "Speed").
#
# On the device machine, from the repository root, with the 10k split carried along:
#   run(command="bash scripts/gpu_check.sh", carry=["data/prepared/10000-seed0"], timeout_s=520)
# It needs torch with CUDA, safetensors, numpy, tqdm, matplotlib, pytest (the device image has
# them) and runs tangshi from source. Everything it measures lands in $OUT (default gpu-out/).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
PY=${PY:-python3}
DATA=${DATA:-data/prepared/10000-seed0}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu EPOCHS=1 REPEATS=2: a local smoke run of this script's mechanics
EPOCHS=${EPOCHS:-50}
REPEATS=${REPEATS:-20}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$OUT/summary.txt"; }

stamp "start $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$OUT/summary.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'cudnn', torch.backends.cudnn.version())" \
  | tee -a "$OUT/summary.txt"

# 1. Correctness on the GPU: graph replay = the same steps run eagerly; CUDA step = CPU step.
stamp "tests"
# -rs lists skipped tests: the CUDA ones must have run, not been skipped
timeout 120 $PY -m pytest -q -rs -p no:cacheprovider tests/test_graphstep.py 2>&1 | tee "$OUT/tests.log" | tail -12

# 2. The bench: steps and the layer alone, eager and graphed, against cuDNN.
stamp "bench"
timeout 150 $PY -m tangshi bench --device "$DEVICE" --data "$DATA" --repeats "$REPEATS" \
  --only seed,tangshi,tangshi_graph,nn_lstm,layer_tangshi,layer_tangshi_graph,layer_nn --json \
  > "$OUT/bench.json" 2> "$OUT/bench.err"
$PY - "$OUT/bench.json" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
from tangshi.experiments.bench import format_bench
print(format_bench(json.load(open(sys.argv[1]))))
PYEOF

# 3. The 50-epoch run on the 10k split (the assignment's hyper-parameters with the loss done right),
#    dev evaluation every epoch included; wall time from the command's start to its end.
stamp "train $EPOCHS epochs"
s=$(date +%s.%N)
timeout 200 $PY -m tangshi train --data "$DATA" --out /tmp/run50 --device "$DEVICE" --epochs "$EPOCHS" \
  --no-epoch-checkpoints --quiet 2>&1 | tee "$OUT/train50.log" | tail -2
e=$(date +%s.%N)
stamp "$EPOCHS epochs wall: $($PY -c "print(round($e - $s, 1))") s"
cp /tmp/run50/metrics.jsonl "$OUT/train50-metrics.jsonl" 2>/dev/null
stamp "done"
