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

# DVN as the reference code configures it (bibtex-dvn.json), then the task's default (its
# feature network that of the feed-forward baseline, Adam for 100 epochs; bibtex-dvn*-ff-features.json).
DVN_REFERENCE=(--set data.standardize=true --set value_net.hidden=[150] --set value_net.dropout=0
  --set value_net.weight_decay=0.001 --epochs=375 --set final_epochs_on_all_training_data=15
  --set select_best=false --set optimizer.name=sgd --set optimizer.learning_rate=0.1
  --set optimizer.decay_epochs=[150,300])
lane_a() {
  run dvn 0 --step_curve=30 "${DVN_REFERENCE[@]}"
  for s in 0 1 2; do
    python -m tfsp.launch --task=bibtex --method=dvn --data_dir="$DATA" --seed="$s" \
      --model_dir="$RUNS/bibtex-dvn-ff-features-seed$s" --results_suffix=-ff-features --verbose=0 \
      $([ "$s" = 0 ] && echo --step_curve=30)
  done
}
lane_b() {
  # LDRSP's task-file default now has D's ranking term; its committed records came from
  # `SEEDS="0 1 2" VARIANTS=ranking1 bash launch/bibtex_ldrsp_variants.sh` (the same settings);
  # bibtex-ldrsp[-seedN].json were written by this line before, without it (ranking_weight=0).
  for s in 0 1 2; do run ldrsp "$s" $([ "$s" = 0 ] && echo --step_curve=30); done
  for s in 0 1 2; do run feedforward "$s"; done
}
lane_a > "$RUNS-bibtex-lane-a.log" 2>&1 &
lane_b > "$RUNS-bibtex-lane-b.log" 2>&1
wait
python -m tfsp.report --results_dir=results --readme=README.md
