#!/usr/bin/env bash
# leaderboards/lr_schedules.md: learning-rate schedules and the stability gap, fine-tuning and ER
# (the stability-gap presets), Split-MNIST (3 epochs per task) and Rotated-MNIST 80 degrees
# (1 epoch per task), 3 seeds, continual evaluation after every update.
#
#   CL_BENCH_DATA=../shared/data bash leaderboards/lr_schedules.sh RUNS [split_mnist|rotated_mnist]
#   cl-bench-leaderboard RUNS/split_mnist --group-by ... (the command in lr_schedules.md)
#
# One Hydra multirun per (scenario, strategy, variant) into RUNS/<scenario>/<strategy>/<variant>;
# finished jobs are not run again, so a killed sweep resumes by running the same command.
set -euo pipefail
runs=${1:?usage: lr_schedules.sh RUNS [split_mnist|rotated_mnist]}
which=${2:-all}
export OMP_NUM_THREADS=1  # one core per sweep: two sweeps (or a sweep and the tests) share the machine
seeds=0,1,2

# variant name | overrides on top of the preset
variants=(
  "constant|schedule=constant"
  "cosine_rewarm|schedule=cosine schedule.scope=experience schedule.warmup_steps=20"
  "cosine_experience|schedule=cosine schedule.scope=experience"
  "cosine_stream|schedule=cosine schedule.scope=stream"
  "wsd_experience|schedule=wsd schedule.scope=experience"
  "infinite_stream|schedule=infinite schedule.scope=stream schedule.warmup_steps=20"
  "sgd_no_momentum|optimizer.momentum=0"
  "sgd_no_momentum_lr10x|optimizer.momentum=0 optimizer.lr=0.1"  # the same effective step as momentum 0.9: lr / (1 - 0.9)
  "adam|optimizer=adam optimizer.lr=0.001 ~optimizer.momentum"
)
# Joint training on the whole stream: the reference Ibrahim et al. compare re-warm + replay against.
joint="strategy=joint ~strategy.mem_size ~strategy.storage_policy ~strategy.new_data_weight"

sweep() {  # scenario strategy variant overrides...
  local scenario=$1 strategy=$2 variant=$3; shift 3
  cl-bench -m "$@" seed=$seeds logger=none eval.plot=false data.download=false \
    "hydra.sweep.dir=$runs/$scenario/$strategy/$variant" || echo "lr_schedules: $scenario $strategy $variant: sweep exit $?"
}

scenario_runs() {  # scenario extra-overrides...
  local scenario=$1; shift
  for line in "${variants[@]}"; do
    name=${line%%|*}; read -ra extra <<< "${line#*|}"
    sweep "$scenario" er "$name" +experiment=stability_gap_split_mnist "$@" "${extra[@]}"
    sweep "$scenario" finetune "$name" +experiment=stability_gap_finetune_split_mnist "$@" "${extra[@]}"
  done
  read -ra j <<< "$joint"
  sweep "$scenario" joint constant +experiment=stability_gap_split_mnist "$@" "${j[@]}"
  sweep "$scenario" joint cosine +experiment=stability_gap_split_mnist "$@" "${j[@]}" schedule=cosine
}

if [[ $which == all || $which == split_mnist ]]; then
  scenario_runs split_mnist train.epochs=3
fi
if [[ $which == all || $which == rotated_mnist ]]; then
  scenario_runs rotated_mnist scenario=rotated_mnist scenario.n_experiences=5 scenario.angle_step=80 train.epochs=1
fi
