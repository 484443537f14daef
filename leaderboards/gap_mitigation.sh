#!/usr/bin/env bash
# leaderboards/gap_mitigation.md: what evaluating an EMA of the weights (`+addons=ema`) or a
# nearest-class-mean classifier (`+addons=ncm_eval`) does to the stability gap, on ER and
# fine-tuning, in the Split-MNIST stability-gap preset and the Hess et al. Rotated-MNIST preset.
#
#   CL_BENCH_DATA=../shared/data bash leaderboards/gap_mitigation.sh RUNS [SEEDS]
#   then the cl-bench-leaderboard command in gap_mitigation.md
#
# One run per (preset, strategy, variant, seed) into RUNS/<preset>/<strategy>/<variant>/seed<k>,
# all of seed 0 first; a finished run is not run again, so a killed sweep resumes by running the
# same command.
set -euo pipefail
runs=${1:?usage: gap_mitigation.sh RUNS [SEEDS]}
seeds=${2:-0,1,2}
export OMP_NUM_THREADS=1

presets=(stability_gap_split_mnist gap_hess_rotated_mnist)
# strategy name | overrides (fine-tuning drops the ER keys the presets set)
strategies=("er|" "finetune|strategy=naive ~strategy.mem_size ~strategy.storage_policy ~strategy.new_data_weight")
variants=("none|" "ema|+addons=ema" "ncm|+addons=ncm_eval")

for seed in ${seeds//,/ }; do
  for preset in "${presets[@]}"; do
    for s in "${strategies[@]}"; do
      for v in "${variants[@]}"; do
        folder="$runs/$preset/${s%%|*}/${v%%|*}/seed$seed"
        [[ -f $folder/results.json ]] && grep -q '"status": "completed"' "$folder/results.json" && continue
        # shellcheck disable=SC2086  # the overrides are words
        cl-bench +experiment=$preset ${s#*|} ${v#*|} seed=$seed logger=none eval.plot=false "hydra.run.dir=$folder" \
          > /dev/null 2>&1 || echo "gap_mitigation: $folder: exit $?"
      done
    done
  done
done
