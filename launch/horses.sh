#!/usr/bin/env bash
# Reproduces results/horses-*.json and the horse figures: FCN, DVN and LDRSP on the
# Weizmann horses at 32x32 (seeded 200/28/100 split), with IoU after each refinement step.
#
#   DATA=/path/to/folder/with/weizmann_horse_db bash launch/horses.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-${TFSP_DATA_DIR:-../shared/data}}
RUNS=${RUNS:-runs}
SEEDS=${SEEDS:-0}

for seed in $SEEDS; do
  suffix=""; [ "$seed" != 0 ] && suffix="-seed$seed"
  for method in fcn ldrsp dvn; do
    curve=""; [ "$method" != fcn ] && curve="--step_curve=30"
    python -m tfsp.launch --task=horses --method=$method --data_dir="$DATA" --seed="$seed" \
      --model_dir="$RUNS/horses-$method$suffix" --results_suffix="$suffix" --verbose=2 $curve
  done
done
# LDRSP's refinement steps chosen on validation; DVN with leaky ReLU, 40 epochs resumed to 120;
# probes of both value networks (D's value next to the oracle for reference masks).
python -m tfsp.launch --task=horses --method=ldrsp --data_dir="$DATA" --model_dir="$RUNS/horses-ldrsp" \
  --mode=evaluate --results_suffix=-select-steps --set select_refine_steps=true --set compare_crop_modes=false
LEAKY=(--task=horses --method=dvn --data_dir="$DATA" --seed=0 --model_dir="$RUNS/horses-dvn-leaky"
       --results_suffix=-leaky --verbose=2 --step_curve=20 --set value_net.activation=leaky_relu)
python -m tfsp.launch "${LEAKY[@]}" --epochs=40
python -m tfsp.launch "${LEAKY[@]}" --epochs=120
python -m tfsp.launch "${LEAKY[@]}" --epochs=120 --mode=probe
python -m tfsp.launch --task=horses --method=ldrsp --data_dir="$DATA" --model_dir="$RUNS/horses-ldrsp" --mode=probe
python -m tfsp.figures --data_dir="$DATA" --run=fcn:"$RUNS/horses-fcn" --run=ldrsp:"$RUNS/horses-ldrsp" \
  --steps=0,5,10,30 --output=results/horses-qualitative.png
python launch/benchmark_segmentation.py --task=horses --output=results/benchmark-horses.json --batch_sizes=1,4 --repeats=2
python -m tfsp.report --results_dir=results --readme=README.md
