#!/usr/bin/env bash
# Reproduces results/bibtex-*.json: feed-forward, DVN and LDRSP on real Bibtex, seeds 0-2,
# with the metric after each refinement step 0..30 recorded for seed 0.
#
#   DATA=/path/to/folder/with/mulan/bibtex bash launch/bibtex.sh
#
# Two runs at a time (the machine this was made on has 2 cores); each method's seeds run in order.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-${TFSP_DATA_DIR:-../shared/data}}
RUNS=${RUNS:-runs}

run() {  # method seed [flags...]
  local method=$1 seed=$2; shift 2
  local suffix=""; [ "$seed" != 0 ] && suffix="-seed$seed"
  python -m tfsp.launch --task=bibtex --method="$method" --data_dir="$DATA" --seed="$seed" \
    --model_dir="$RUNS/bibtex-$method$suffix" --results_suffix="$suffix" --verbose=0 "$@"
}

lane_a() { for s in 0 1 2; do run dvn "$s" $([ "$s" = 0 ] && echo --step_curve=30); done; }
lane_b() {
  for s in 0 1 2; do run ldrsp "$s" $([ "$s" = 0 ] && echo --step_curve=30); done
  for s in 0 1 2; do run feedforward "$s"; done
}
lane_a > "$RUNS-bibtex-lane-a.log" 2>&1 &
lane_b > "$RUNS-bibtex-lane-b.log" 2>&1
wait
python -m tfsp.report --results_dir=results --readme=README.md
