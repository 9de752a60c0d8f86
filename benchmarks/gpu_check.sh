#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU and PyTorch already installed (no network needed).
# Installs the project without dependencies, runs a short bf16-autocast fine-tune on CUDA and an
# inference benchmark on torch / torch-compile / onnxruntime (CUDA provider where installed),
# and writes benchmarks/results/gpu_check.json (and a copy to $OUT when that is set).
#
#     bash benchmarks/gpu_check.sh            # a few minutes
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2 || true
export ZOO_HOME=${ZOO_HOME:-$(mktemp -d)}
RESULTS=benchmarks/results/gpu_check.json
LOG=$(mktemp)

start=$(date +%s.%N)
$PY -m zoo finetune vision/digits-cnn.sklearn --data vision/digits --scratch --epochs 3 \
    --set precision=bf16 --set device=cuda --set augment=none --out "$(mktemp -d)/ft" 2>&1 | tee "$LOG"
finetune_s=$(echo "$(date +%s.%N) - $start" | bc)

$PY - "$RESULTS" "$finetune_s" "$LOG" <<'PY'
import json, re, statistics, sys, time
import torch
import zoo
from zoo.envinfo import fingerprint

out, finetune_s, log = sys.argv[1], float(sys.argv[2]), open(sys.argv[3]).read()
accuracy = re.findall(r"accuracy\s+test\s+([0-9.]+)", log)
result = {"benchmark": "gpu_check", "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
          "finetune": {"model": "vision/digits-cnn.sklearn (scratch, 3 epochs, bf16 autocast)",
                       "wall_s": finetune_s, "test_accuracy": float(accuracy[-1]) if accuracy else None},
          "inference": {}}

def median_ms(fn, x, iters=50):
    for _ in range(10):
        fn(x)
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter(); fn(x); torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)

model = zoo.load("timm:resnet50", pretrained=False, device="cuda")
for batch in (1, 32):
    x = torch.rand(batch, 3, 224, 224, device="cuda")
    row = {}
    for backend in ("torch", "torch-compile", "onnxruntime"):
        try:
            runner = model if backend == "torch" else model.to_backend(backend, **({"device": "cuda"} if backend == "onnxruntime" else {}))
            with torch.inference_mode():
                row[backend] = median_ms(runner.net, x)
        except Exception as e:  # report, keep measuring the others
            row[backend] = f"{type(e).__name__}: {str(e)[:200]}"
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        row["torch bf16 autocast"] = median_ms(model.net, x)
    result["inference"][f"timm:resnet50 (random weights) batch {batch}, ms"] = row
result["env"] = {k: v for k, v in fingerprint().items() if k in ("python", "torch", "gpu", "git_commit")}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
if [ -n "${OUT:-}" ]; then cp "$RESULTS" "$OUT/"; fi
