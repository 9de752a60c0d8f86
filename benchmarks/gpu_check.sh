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
# Offline: no dependencies, no build isolation. Should the install fail, the carried
# domain_zoo.egg-info on PYTHONPATH still gives the domain entry points.
$PY -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH=$PWD
DEVICE=${ZOO_GPU_CHECK_DEVICE:-cuda}   # cpu only to try the script out on a machine without a GPU
export ZOO_HOME=${ZOO_HOME:-$(mktemp -d)}
RESULTS=benchmarks/results/gpu_check.json
LOG=$(mktemp)

start_ns=$(date +%s%N)
$PY -m zoo finetune vision/digits_cnn.sklearn --data vision/digits --scratch --epochs 3 \
    --set precision=bf16 --set device=$DEVICE --set augment=none --out "$(mktemp -d)/ft" 2>&1 | tee "$LOG"
finetune_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))

$PY - "$RESULTS" "$finetune_ms" "$LOG" "$DEVICE" <<'PY'
import json, re, statistics, sys, time
import torch
import zoo
from zoo.envinfo import fingerprint

out, finetune_s, log, device = sys.argv[1], int(sys.argv[2]) / 1000, open(sys.argv[3]).read(), sys.argv[4]
cuda = device == "cuda"
sync = torch.cuda.synchronize if cuda else (lambda: None)
accuracy = re.findall(r"accuracy\W+test\W+([0-9.]+)", log)
result = {"benchmark": "gpu_check", "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
          "finetune": {"model": "vision/digits_cnn.sklearn (scratch, 3 epochs, bf16 autocast)",
                       "wall_s": finetune_s, "test_accuracy": float(accuracy[-1]) if accuracy else None},
          "inference": {}}

ITERS = 50 if cuda else 3


def median_ms(fn, x):
    for _ in range(3 if not cuda else 10):
        fn(x)
    sync()
    times = []
    for _ in range(ITERS):
        start = time.perf_counter(); fn(x); sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


model = zoo.load("timm:resnet50", pretrained=False, device=device)
runners = {"torch": model}
for backend, options in (("torch-compile", {}), ("onnxruntime", {"device": device})):
    try:
        runners[backend] = model.to_backend(backend, **options)
    except Exception as e:  # report, keep measuring the others
        runners[backend] = f"{type(e).__name__}: {str(e)[:300]}"
ort = runners["onnxruntime"]
result["onnxruntime_providers"] = ort.net.runner.session.get_providers() if not isinstance(ort, str) else ort
for batch in (1, 32):
    x = torch.rand(batch, 3, 224, 224, device=device)
    row = {}
    with torch.inference_mode():
        for backend, runner in runners.items():
            row[backend] = runner if isinstance(runner, str) else median_ms(runner.net, x)
        with torch.autocast(device, dtype=torch.bfloat16):
            row["torch bf16 autocast"] = median_ms(model.net, x)
    result["inference"][f"timm:resnet50 (random weights) batch {batch}, ms"] = row
result["env"] = {k: v for k, v in fingerprint().items() if k in ("python", "torch", "gpu", "git_commit")}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
if [ -n "${OUT:-}" ]; then cp "$RESULTS" "$OUT/"; fi
