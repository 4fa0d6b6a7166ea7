#!/usr/bin/env bash
# Reproduces results/bibtex-ldrsp*.json alone (launch/bibtex.sh runs it beside DVN and the
# feed-forward baseline): LDRSP on real Bibtex, seeds 0-2, the F1 after each refinement step
# 0..30 recorded for seed 0.
#
#   DATA=/path/to/folder/with/mulan/bibtex bash launch/bibtex_ldrsp.sh [launcher flags...]
#
# Launcher flags are passed to every run (e.g. --overwrite_results after a default changed).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-${TFSP_DATA_DIR:-../shared/data}}
RUNS=${RUNS:-runs}
SEEDS=${SEEDS:-0 1 2}

for seed in $SEEDS; do
  suffix=""; [ "$seed" != 0 ] && suffix="-seed$seed"
  python -m tfsp.launch --task=bibtex --method=ldrsp --data_dir="$DATA" --seed="$seed" --verbose=2 \
    --model_dir="$RUNS/bibtex-ldrsp$suffix" --results_suffix="$suffix" \
    $([ "$seed" = 0 ] && echo --step_curve=30) "$@"
done

# Seed 0 with the papers' squared-error regression of D, beside the default's cross-entropy.
if [ "${SQUARED_ERROR:-1}" = 1 ]; then
  python -m tfsp.launch --task=bibtex --method=ldrsp --data_dir="$DATA" --seed=0 --verbose=2 \
    --model_dir="$RUNS/bibtex-ldrsp-squared-error" --results_suffix=-squared-error \
    --set value_loss=squared_error "$@"
  python -m tfsp.launch --task=bibtex --method=alen_no_task_loss --data_dir="$DATA" --seed=0 --verbose=2 \
    --model_dir="$RUNS/bibtex-alen_no_task_loss-squared-error" --results_suffix=-squared-error \
    --set value_loss=squared_error "$@"
fi
