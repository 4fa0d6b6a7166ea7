#!/usr/bin/env bash
# Reproduces results/bibtex-{implicit-ssvm,implicit-cd,implicit-dvn,spen,infnet}.json and
# results/benchmark-bibtex-epoch.json on real Bibtex, one run at a time.
#
#   DATA=/path/to/folder/with/mulan/bibtex EPOCHS_IMPLICIT=15 bash launch/bibtex_implicit.sh
#
# EPOCHS_*: the committed results were sized to finish in about 12 minutes each on a shared
# 2-core machine (each results file records its exact command and epochs).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-${TFSP_DATA_DIR:-../shared/data}}
RUNS=${RUNS:-runs}
export TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS:-1}
EPOCHS_IMPLICIT=${EPOCHS_IMPLICIT:-15}
for loss in cd ssvm dvn; do
  python -m tfsp.launch --task=bibtex --method=implicit --primary_loss="$loss" --data_dir="$DATA" \
    --model_dir="$RUNS/bibtex-implicit-$loss" --epochs="$EPOCHS_IMPLICIT" --verbose=2
done
python -m tfsp.launch --task=bibtex --method=spen --data_dir="$DATA" --model_dir="$RUNS/bibtex-spen" --verbose=2
python -m tfsp.launch --task=bibtex --method=infnet --data_dir="$DATA" --model_dir="$RUNS/bibtex-infnet" --epochs=25 --verbose=2
python launch/benchmark_epoch.py --data_dir="$DATA" --output=results/benchmark-bibtex-epoch.json
python -m tfsp.report --results_dir=results --readme=README.md
