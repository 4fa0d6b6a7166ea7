#!/usr/bin/env bash
# Reproduces results/bibtex-{gan,lsgan,wgan_gp,ebgan,aen,alen_no_task_loss}*.json: the LDRSP
# paper's GAN-family comparison rows and the ALEN paper's ablations (issue 16) on real Bibtex,
# with LDRSP's networks, optimizers and test-time refinement (tasks/bibtex.json), the F1 after
# each refinement step 0..30 recorded for seed 0.
#
#   DATA=/path/to/folder/with/mulan/bibtex SEEDS="0 1 2" bash launch/bibtex_adversarial_baselines.sh
#
# METHODS="aen alen_no_task_loss" reruns only those rows; launcher flags given to the script
# are passed to every run (e.g. --overwrite_results after a default changed).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-${TFSP_DATA_DIR:-../shared/data}}
RUNS=${RUNS:-runs}
SEEDS=${SEEDS:-0 1 2}
METHODS=${METHODS:-gan lsgan wgan_gp ebgan aen alen_no_task_loss}

for seed in $SEEDS; do
  suffix=""; [ "$seed" != 0 ] && suffix="-seed$seed"
  for method in $METHODS; do
    python -m tfsp.launch --task=bibtex --method=$method --data_dir="$DATA" --seed="$seed" --verbose=2 \
      --model_dir="$RUNS/bibtex-$method$suffix" --results_suffix="$suffix" \
      $([ "$seed" = 0 ] && echo --step_curve=30) "$@"
  done
done
