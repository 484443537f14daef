#!/usr/bin/env bash
# leaderboards/claims.md: the runs behind its rows that no other leaderboard holds: view-batch's
# ablations and view-batch on iCaRL, refresh on DER++ over four orders of magnitude of its rate
# (paper and released-code rules), CLASSP's safe first step, fast/slow on the few-shot stream with
# 8 seeds, power-law rehearsal's per-phase budgets, exponents, LwF and class-incremental base,
# the stability gap on Rotated-MNIST at the paper's 10 epochs.
#
#   CL_BENCH_DATA=../shared/data bash leaderboards/claims.sh RUNS [view_batch|refresh|classp|fast_slow|power_law|stability_gap]
#   then the cl-bench-leaderboard command under each claim in claims.md
#
# One Hydra multirun per (claim, variant) into RUNS/<claim>/<variant>; finished jobs are not run
# again, so a killed sweep resumes by running the same command.
set -euo pipefail
runs=${1:?usage: claims.sh RUNS [view_batch|refresh|classp|fast_slow|power_law|stability_gap]}
which=${2:-all}
export OMP_NUM_THREADS=1  # one core per sweep: the machine has two

sweep() {  # claim variant overrides...
  local claim=$1 variant=$2; shift 2
  cl-bench -m "$@" logger=none eval.plot=false data.download=false \
    "hydra.sweep.dir=$runs/$claim/$variant" || echo "claims: $claim $variant: sweep exit $?"
}

if [[ $which == all || $which == view_batch ]]; then
  # view_batch.md's setting (Split-MNIST, memory 2000, 4 epochs, evaluation every 10 updates):
  # its two rows again on this commit, then the ablations.
  E="scenario=split_mnist eval.schedule=every eval.period=10 seed=0,1,2 train.epochs=4"
  VB="+addons=view_batch addons.view_batch.shift=2 addons.view_batch.warmup_epochs=2"
  sweep view_batch er_replay $E strategy=replay strategy.mem_size=2000 train.batch_size=128
  sweep view_batch er_view_batch $E strategy=replay strategy.mem_size=2000 train.batch_size=256 $VB
  sweep view_batch er_sampler_only $E strategy=replay strategy.mem_size=2000 train.batch_size=256 $VB addons.view_batch.weight=0
  sweep view_batch er_merged_memory $E strategy=replay strategy.mem_size=2000 train.batch_size=256 $VB addons.view_batch.views=1
  # iCaRL with the paper's buffer (200): its exemplars join the training set, as view-batch assumes.
  sweep view_batch icarl $E strategy=icarl train.batch_size=128
  sweep view_batch icarl_view_batch $E strategy=icarl train.batch_size=128 $VB
fi

if [[ $which == all || $which == refresh ]]; then
  # refresh.md's Split-MNIST setting, on DER++ (Avalanche's DER, beta 0.5) as the paper uses it.
  R="scenario=split_mnist strategy=der train.epochs=1 train.batch_size=128 seed=0,1,2"
  sweep refresh der $R
  sweep refresh der_paper $R +addons=refresh addons.refresh.variant=paper addons.refresh.rate=1e-5,1e-4,1e-3,1e-2
  sweep refresh der_code $R +addons=refresh addons.refresh.variant=code addons.refresh.rate=1e-5,1e-4,1e-3,1e-2
fi

if [[ $which == all || $which == classp ]]; then
  # classp_vs_ewc.md's three settings, with the safe first step.
  C="strategy=classp strategy.rule=safe_first_step train.epochs=1 train.batch_size=128 seed=0,1,2"
  sweep classp split_mnist scenario=split_mnist $C
  sweep classp permuted_mnist scenario=permuted_mnist scenario.n_experiences=5 eval.schedule=every eval.period=10 $C
  # The default threshold (0.5 on g^2) gates nearly every weight on these streams: the same with 0.
  sweep classp split_mnist_threshold0 scenario=split_mnist $C strategy.threshold=0.0 strategy.rule=paper,safe_first_step
  sweep classp authors_protocol scenario=permuted_mnist scenario.n_experiences=2 "train.epochs=[4,1]" train.batch_size=32 \
    eval.schedule=every eval.period=50 seed=0,1,2 strategy=classp strategy.rule=safe_first_step \
    strategy.phase_switch=true strategy.threshold=0.0
fi

if [[ $which == all || $which == fast_slow ]]; then
  # few_shot.md's stream with 8 seeds (that file has 3).
  F="scenario=cfsl_mnist scenario.repeat_classes=true scenario.n_tasks=20 scenario.k_shot=10 eval.schedule=every \
     train.epochs=5 train.batch_size=10 seed=0,1,2,3,4,5,6,7"
  sweep fast_slow main $F strategy=naive,fast_slow,replay
  sweep fast_slow ewc $F strategy=ewc strategy.ewc_lambda=10
fi

if [[ $which == all || $which == power_law ]]; then
  # power_law_rehearsal.md's Permuted-MNIST setting (60k rehearsed in total) varied one way at a time.
  P="+experiment=power_law_permuted_mnist eval.period=50 seed=0,1,2"
  sweep power_law per_phase $P scenario.schedule.total_budget=null scenario.schedule.per_phase_budget=6667 \
    scenario.schedule.kind=power_law,exponential,uniform
  sweep power_law exponents $P scenario.schedule.kind=power_law scenario.schedule.exponent=0.5,2.0,4.0
  sweep power_law lwf $P strategy=lwf scenario.schedule.kind=power_law,uniform,none
  # Class-incremental base: Split-MNIST, 12k rehearsed in total.
  S="+experiment=power_law_split_mnist seed=0,1,2"
  sweep power_law split_mnist $S scenario.schedule.kind=power_law,exponential,uniform,none
  sweep power_law split_mnist_lwf $S strategy=lwf scenario.schedule.kind=power_law,none
fi

if [[ $which == all || $which == stability_gap ]]; then
  # The Rotated-MNIST preset at the paper's 10 epochs per task (the preset's 3 fit a CPU budget).
  sweep stability_gap rotated_10_epochs +experiment=stability_gap_rotated_mnist scenario.angle_step=10,80 train.epochs=10 seed=0,1,2
fi
