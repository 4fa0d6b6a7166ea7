# Sourced by launch/bibtex_*_variants.sh: a variant of a method's Bibtex task-file default.
#
#   variant_runs METHOD NAME [launcher flags...]
#
# runs results/bibtex-METHOD[-seedN]-variant-NAME.json in $RUNS/bibtex-METHOD-variant-NAME[-seedN]
# for each seed of SEEDS (default 0), unless VARIANTS (default all) leaves NAME out; with
# TRAINED_IN=<variant> the run reuses that variant's trained weights (a test-time choice only).
# VARIANT_FLAGS (an array): flags put before the model dir.
variant_runs() {
  local method=$1 name=$2; shift 2
  case " ${VARIANTS:-all} " in *" all "*|*" $name "*) ;; *) return 0 ;; esac
  local seed dir
  for seed in ${SEEDS:-0}; do
    dir="$RUNS/bibtex-$method-variant-${TRAINED_IN:-$name}"; [ "$seed" = 0 ] || dir="$dir-seed$seed"
    python -m tfsp.launch --task=bibtex --method="$method" --data_dir="$DATA" --seed="$seed" --verbose=2 \
      ${VARIANT_FLAGS[@]+"${VARIANT_FLAGS[@]}"} --model_dir="$dir" --results_suffix="-variant-$name" "$@"
  done
}
