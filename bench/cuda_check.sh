#!/usr/bin/env bash
# One command that checks lab5's CUDA path on a GPU machine, in under 7 minutes, installing
# nothing (it uses the PyTorch that is there, which may be an older 2.x CUDA build):
#   1. the test suite with LAB5_DEVICE=cuda (the step, compile and ensemble tests run on the GPU),
#   2. one default WGAN-GP run with --device cuda, and its final W1 against the noise floor,
#   3. bench/speed.py --device cuda for WGAN-GP: the step against the eager reference, and 1, 8,
#      64 and 256 seeds in one vmapped step (six compiles: all three variants would not fit).
# Everything goes to one file, FOLDER/cuda_check.md (FOLDER the argument, default bench; the
# pytest log beside it as cuda_tests.log): copy its tables into
# BENCHMARKS.md with the card's name. Each part has its own time limit, so the file is written
# even when a part fails or runs long.
#
#     bash bench/cuda_check.sh [FOLDER]
set -u
mkdir -p "${1:-$(dirname "$0")}"
folder=$(realpath "${1:-$(dirname "$0")}")
cd "$(dirname "$0")/.."
# a GPU machine's own PyTorch, where nothing is installed: lab5 and the harness from this folder
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}
report=$folder/cuda_check.md
log=$folder/cuda_tests.log
work=$(mktemp -d)
export PYTHONUNBUFFERED=1

section() { printf '\n## %s\n\n```\n' "$1" >>"$report"; }
close() { printf '```\n' >>"$report"; }

{
  echo "# bench/cuda_check.sh, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$python" -c "import torch, sys; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'Python', sys.version.split()[0]); print('device:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')"
  echo '```'
} >"$report"

section "1. tests, LAB5_DEVICE=cuda"
parallel=$("$python" -c "import xdist" 2>/dev/null && echo "-n 8")
# SIGINT at the limit: pytest then still lists what failed so far. The whole log lies beside.
LAB5_DEVICE=cuda timeout -s INT -k 15 180 "$python" -m pytest -v --tb=short -p no:cacheprovider \
  $parallel tests >"$log" 2>&1
echo "exit status $?" >>"$report"
grep -E "^(FAILED|ERROR)|[0-9]+ (passed|failed)" "$log" >>"$report"
close

section "2. python variants/wgan_gp.py --device cuda (the defaults)"
timeout 100 "$python" variants/wgan_gp.py --device cuda --out "$work/wgan_gp" >"$work/run.log" 2>&1
echo "exit status $?" >>"$report"
tail -n 15 "$work/run.log" >>"$report"
"$python" - "$work/wgan_gp/summary.json" >>"$report" 2>&1 <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
f = s["final"]
print(f"status {s['status']}, epochs {s['epochs_done']}, final W1 {f['w1']:.4f} = "
      f"{f['w1'] / s['noise_floor']['w1']:.2f}x the noise floor {s['noise_floor']['w1']:.4f}; "
      f"wall {s['wall_s']} s, compile {s['warm_up_s']} s, training {s['train_s']} s")
EOF
close

section "3. python bench/speed.py step ensembles floor --device cuda --variants wgan_gp"
timeout 200 "$python" bench/speed.py step ensembles floor --device cuda --variants wgan_gp \
  --seeds 1 8 64 256 --reps 5 --out "$work/speed.md" >"$work/speed.log" 2>&1
echo "exit status $?" >>"$report"
cat "$work/speed.md" >>"$report" 2>/dev/null || tail -n 30 "$work/speed.log" >>"$report"
close

rm -rf "$work"
echo "wrote $report"
