#!/usr/bin/env bash
# Reproduces results/bibtex-{implicit-*,spen*,infnet}.json and results/benchmark-bibtex-epoch.json
# on real Bibtex, one run at a time (the commands that wrote the committed files, in order).
#
#   DATA=/path/to/folder/with/mulan/bibtex bash launch/bibtex_implicit.sh
#
# The epochs were sized so that each run finishes in about ten minutes on a shared 2-core machine;
# none of these schedules is converged.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-${TFSP_DATA_DIR:-../shared/data}}
RUNS=${RUNS:-runs}
export TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS:-1}

implicit() {  # loss epochs name-suffix [flags...]
  local loss=$1 epochs=$2 suffix=$3; shift 3
  python -m tfsp.launch --task=bibtex --method=implicit --primary_loss="$loss" --data_dir="$DATA" \
    --model_dir="$RUNS/bibtex-implicit-$loss$suffix" --results_suffix="$suffix" --epochs="$epochs" --verbose=2 "$@"
}
SELECT_A=(--set select_on=inference_net_example_f1)

implicit cd 15 ""
implicit ssvm 15 ""
implicit dvn 15 ""
# bibtex-spen.json: the task's earlier SPEN energy (150 softplus feature units, weight decay 1e-3,
# standardized inputs); the current default's rows are the bibtex-spen*-ff-features.json below.
python -m tfsp.launch --task=bibtex --method=spen --data_dir="$DATA" --model_dir="$RUNS/bibtex-spen" --verbose=2 \
  --set data.standardize=true --set value_net.hidden=[150] --set value_net.dropout=0 --set value_net.weight_decay=0.001
implicit cd 20 -select-inference-net "${SELECT_A[@]}"
python launch/benchmark_epoch.py --data_dir="$DATA" --output=results/benchmark-bibtex-epoch.json
implicit dvn 25 -25epochs
implicit cd 20 -lambda10-alpha0.05 "${SELECT_A[@]}" --set energy_weight=10 --set neumann_step=0.05
implicit ssvm 20 -select-inference-net "${SELECT_A[@]}"
python -m tfsp.report --results_dir=results --readme=README.md
implicit cd 30 -pretrain20-lambda0.1 --set pretrain_epochs=20 --set energy_weight=0.1 \
  "${SELECT_A[@]}" --set select_refine_steps=true
# InfNet's default (the epoch chosen on A's validation F1, refinement steps on validation), 3 seeds.
for seed in 0 1 2; do
  suffix=""; [ "$seed" != 0 ] && suffix="-seed$seed"
  python -m tfsp.launch --task=bibtex --method=infnet --data_dir="$DATA" --seed=$seed --step_curve=10 \
    --model_dir="$RUNS/bibtex-infnet-default$suffix" --verbose=2
done

# SPEN with the feed-forward baseline's feature network (the task default since it was chosen on
# validation), three seeds.
for seed in 0 1 2; do
  python -m tfsp.launch --task=bibtex --method=spen --data_dir="$DATA" --seed=$seed \
    --model_dir="$RUNS/bibtex-spen-ff-features-seed$seed" --results_suffix=-ff-features --verbose=2
done

# The implicit trainer's task-file default (CD primary loss, 30 epochs), with the 30-step curve.
python -m tfsp.launch --task=bibtex --method=implicit --data_dir="$DATA" --seed=0 --step_curve=30 \
  --model_dir="$RUNS/bibtex-implicit" --results_suffix=-default --verbose=2
# The same with the epoch chosen on A's validation F1 and the refinement steps on validation.
python -m tfsp.launch --task=bibtex --method=implicit --data_dir="$DATA" --seed=0 --step_curve=30 \
  --model_dir="$RUNS/bibtex-implicit-select-a" --results_suffix=-default-select-a-steps --verbose=2 \
  --set select_on=inference_net_example_f1 --set select_refine_steps=true
# The default with one more CD negative, A_θ(x) refined on V as at test time
# (cd_refined_negatives), as it is and with the epoch chosen on A_θ and the steps on validation.
python -m tfsp.launch --task=bibtex --method=implicit --data_dir="$DATA" --seed=0 --verbose=2 \
  --model_dir="$RUNS/bibtex-implicit-refined-negatives" --results_suffix=-default-refined-negatives \
  --step_curve=30 --set cd_refined_negatives=true
python -m tfsp.launch --task=bibtex --method=implicit --data_dir="$DATA" --seed=0 --verbose=2 \
  --model_dir="$RUNS/bibtex-implicit-refined-negatives-select-a" \
  --results_suffix=-default-refined-negatives-select-a-steps --step_curve=30 --set cd_refined_negatives=true \
  --set select_on=inference_net_example_f1 --set select_refine_steps=true
# The same with the energy on the feature network that lifted DVN and SPEN (2 x 500, dropout 0.5,
# no weight decay); the method's variant name (cd) is part of the file name.
python -m tfsp.launch --task=bibtex --method=implicit --data_dir="$DATA" --seed=0 --verbose=2 \
  --model_dir="$RUNS/bibtex-implicit-cd-ff-features" --results_suffix=-cd-ff-features --step_curve=30 \
  --set cd_refined_negatives=true --set select_on=inference_net_example_f1 --set select_refine_steps=true \
  --set value_net.hidden='[500,500]' --set value_net.dropout=0.5 --set value_net.weight_decay=0
