#!/usr/bin/env bash
# The GPU checks in one go, on a machine with CUDA: `bench/gpu.sh tinyshakespeare.txt [OUT]`.
#
# In this order (the quick ones first), each part's output also saved under OUT: the GPU tests;
# bench/throughput.py on the GPU against its fp32 and TF32 matmul peaks; a young model's
# evaluations every 200 steps (validation and the cold-start check) with samples read at steps
# 200, 1,000 and 3,000; bench/quality.py's 136.5 s comparison with both runs on the GPU; and the
# throughput again on 2 of the machine's cores, for what the host's CPU count does to the GPU.
# DEVICE, BUDGET and STAGES override the device, the quality budget and the sampling steps
# (DEVICE=cpu BUDGET=10 STAGES="20 40" tries the script on a CPU).
set -u -o pipefail
corpus=$(realpath "${1:?usage: bench/gpu.sh CORPUS [OUT]}")
out=${2:-gpu-out}
device=${DEVICE:-cuda}
budget=${BUDGET:-136.5}
stages=${STAGES:-200 1000 3000}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
part() { echo; echo "## $1 ($(date -u +%H:%M:%S))"; }

part "machine"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
python3 -c 'import os, torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "CPUs", os.cpu_count(), "threads", torch.get_num_threads())'

if [ "$device" = cuda ]; then
    part "the GPU tests"
    python3 -m pytest -q -n 0 -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/tests.txt"
fi

part "throughput"
python3 bench/throughput.py --device "$device" --load-steps 0 2>&1 | tee "$out/throughput.txt"

part "a young model: evaluations every 200 steps, samples at steps $stages"
ck=$(mktemp -d)
first=1
for s in $stages; do
    if [ $first = 1 ]; then
        python3 -m charrnn train "$corpus" --device "$device" --checkpoint-dir "$ck" --name young \
            --steps "$s" --eval-every 200 >/dev/null 2>"$out/young-train.txt" || tail -5 "$out/young-train.txt"
        first=0
    else
        python3 -m charrnn train --resume young --checkpoint-dir "$ck" --steps "$s" \
            >/dev/null 2>>"$out/young-train.txt" || tail -5 "$out/young-train.txt"
    fi
    for seed in 1 2; do
        for prime in "ROMEO:" "The "; do
            echo "### step $s, best.pt, seed $seed, prime '$prime'"
            python3 -m charrnn sample --checkpoint-dir "$ck" -c young --seed "$seed" \
                --prime "$prime" --length 300
            echo
        done
    done
done 2>&1 | tee "$out/young-samples.txt"
grep -v "^\s*$" "$out/young-train.txt" | tail -40
python3 - "$ck/young/metrics.jsonl" <<'PY' | tee "$out/young-evals.txt"
import json, sys
from charrnn.runs import is_evaluation
print("| step | val loss | cold starts: runaways (zero state / after lead-in) of starts | gap |")
print("| --- | --- | --- | --- |")
for r in map(json.loads, open(sys.argv[1])):
    if is_evaluation(r):
        c = r.get("cold_start") or {}
        runs = f"{c.get('runaways')} / {c.get('runaways_lead_in')} of {c.get('starts')}"
        gap = f"{c.get('gap', float('nan')):.3f} / {c.get('gap_lead_in', float('nan')):.3f}"
        print(f"| {r['step']} | {r['val_loss']:.4f} | {runs} | {gap} |")
PY

part "quality: $budget s, both on $device"
python3 bench/quality.py --device "$device" --budget "$budget" --corpus "$corpus" \
    2>&1 | tee "$out/quality.txt"

if [ "$device" = cuda ]; then
    part "throughput on 2 of the host's cores"
    taskset -c 0,1 python3 bench/throughput.py --device cuda --load-steps 0 2>&1 |
        tee "$out/throughput-2cores.txt"
fi
part "done"
