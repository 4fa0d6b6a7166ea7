#!/usr/bin/env bash
# Reproduces results/mlc-*-bibtex.json: Bibtex read as a dataset never seen, through --task=mlc
# and its generic defaults (tasks/mlc.json: early stopping on the validation part, test steps and
# one threshold chosen there, the same for every method; the seeded 2/3 : 1/3 split, not the
# Bibtex task's). Issue 14 item 3.
#
#   DATA=/path/to/folder/with/mulan bash launch/mlc_bibtex.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-${TFSP_DATA_DIR:-../shared/data}}
RUNS=${RUNS:-runs}
SEED=${SEED:-0}

for method in ${METHODS:-feedforward ldrsp dvn spen infnet}; do
  python -m tfsp.launch --task=mlc --method=$method --arff="$DATA/mulan/bibtex/bibtex.arff" \
    --xml="$DATA/mulan/bibtex/bibtex.xml" --seed="$SEED" --verbose=2 \
    --model_dir="$RUNS/mlc-$method-bibtex-seed$SEED" --results_suffix=-bibtex$([ "$SEED" != 0 ] && echo "-seed$SEED")
done
