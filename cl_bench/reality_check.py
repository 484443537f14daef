"""`cl-bench-reality-check`: hyperparameters chosen without looking at the reported stream
(Cha & Cho, "Hyperparameters in continual learning: a reality check", 2024).

For every strategy, three steps, each a cl-bench command in its own folder under --out:

    tune/          an Optuna study (hparams_search=<strategy>) on the tuning stream
    conventional/  the same study on the evaluation stream: what most papers report, the best
                   trial's score on the very stream it was tuned on
    evaluate/      one run on the evaluation stream with the values chosen on the tuning stream:
                   the reality-check score, the only one a reader should trust

The two streams must have the same shape (experiences, classes per experience, setting) and the
same strategy and training settings (memory included): only the data differ. Checked before any
trial trains. Every step resumes where it stopped when the command is run again.

    cl-bench-reality-check --out DIR [--strategies naive,ewc] [--trials 8]
        [--tune scenario=split_digits ...] [--evaluate scenario=split_mnist ...] [OVERRIDES...]

OVERRIDES (for example train.epochs=2 eval=off) apply to every run. Writes DIR/reality_check.json
and DIR/reality_check.md (the table); `--table-only` rebuilds them from the folders.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

STRATEGIES = ("naive", "ewc", "si", "lwf", "replay", "der")


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cl_bench.cli import CONFIG_DIR

    from hydra.errors import HydraException

    from cl_bench.errors import ConfigError

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return hydra_compose(config_name="config", overrides=overrides)
    except HydraException as exc:
        raise ConfigError(f"{' '.join(overrides)}: {str(exc).strip().splitlines()[0]}") from None
    finally:
        GlobalHydra.instance().clear()


def shape(cfg) -> dict:
    """What must match between the two streams: the stream's form, not its data."""
    from cl_bench.data import DataSource
    from cl_bench.registry import SCENARIOS

    scenario = SCENARIOS.build(cfg.scenario.name, cfg.scenario, DataSource(**cfg.data), int(cfg.seed)).describe()
    return {"experiences": scenario["n_experiences"], "setting": scenario["setting"], "multi_head": scenario["multi_head"],
            "classes per experience": [len(c) for c in scenario["classes_per_experience"]]}


def check_streams(strategies: list[str], tune: list[str], evaluate: list[str], common: list[str]) -> None:
    from omegaconf import OmegaConf

    from cl_bench.errors import ConfigError

    for strategy in strategies:
        a = compose([f"hparams_search={strategy}", *common, *tune])
        b = compose([f"hparams_search={strategy}", *common, *evaluate])
        for key in ("strategy", "train", "optimizer", "model", "eval", "optimized_metric", "schedule"):
            if OmegaConf.select(a, key) != OmegaConf.select(b, key):
                plain = [json.dumps(OmegaConf.to_container(c, resolve=True)) if OmegaConf.is_config(c) else repr(c)
                         for c in (OmegaConf.select(a, key), OmegaConf.select(b, key))]
                raise ConfigError(f"--tune and --evaluate must differ only in the data: '{key}' differs "
                                  f"({plain[0]} vs {plain[1]})")
    sa, sb = shape(a), shape(b)  # the streams do not depend on the strategy: built once
    if sa != sb:
        raise ConfigError(f"the tuning stream ({a.scenario.name}: {sa}) and the evaluation stream "
                          f"({b.scenario.name}: {sb}) must have the same shape")


def cl_bench(args: list[str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        return subprocess.call([sys.executable, "-m", "cl_bench", *args], stdout=out, stderr=subprocess.STDOUT)


def study_summary(sweep_dir: Path) -> dict:
    """Trials by state and the best one, from the study's own database."""
    import optuna

    from cl_bench.tuning import open_study

    study = open_study(f"sqlite:///{sweep_dir}/optuna.db", "cl-bench")
    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if completed else None
    return {"trials": len(trials), "completed": len(completed), "failed": len(trials) - len(completed),
            "best_value": best.value if best else None, "best_params": dict(best.params) if best else None}


def metric_of(run_dir: Path, metric: str):
    from cl_bench.results.run_folder import read_results

    results = read_results(run_dir) or {}
    return (results.get("metrics") or {}).get(metric), results.get("status")


def run_strategy(out: Path, strategy: str, trials: int, tune: list[str], evaluate: list[str], common: list[str]) -> dict:
    folder = out / strategy
    study = ["-m", f"hparams_search={strategy}", f"hydra.sweeper.n_trials={trials}", *common]
    cl_bench([*study, *tune, f"hydra.sweep.dir={folder / 'tune'}"], folder / "tune.log")
    cl_bench([*study, *evaluate, f"hydra.sweep.dir={folder / 'conventional'}"], folder / "conventional.log")
    return summarize(out, strategy, evaluate, common)


def summarize(out: Path, strategy: str, evaluate: list[str], common: list[str], run_missing: bool = True) -> dict:
    folder = out / strategy
    metric = str(compose([*common, *evaluate]).optimized_metric)
    tuned, conventional = study_summary(folder / "tune"), study_summary(folder / "conventional")
    row = {"strategy": strategy, "metric": metric, "tune": tuned, "conventional": conventional,
           "reality_check": None, "status": "no trial completed on the tuning stream"}
    if tuned["best_params"] is None:
        return row
    chosen = [f"{k}={v}" for k, v in tuned["best_params"].items()]
    if run_missing:
        cl_bench([f"strategy={strategy}", *common, *evaluate, *chosen, f"hydra.run.dir={folder / 'evaluate'}"],
                 folder / "evaluate.log")
    value, status = metric_of(folder / "evaluate", metric)
    row.update(reality_check=value, status=status, chosen=tuned["best_params"])
    return row


def ranks(values: list) -> list:
    order = sorted((v for v in values if v is not None), reverse=True)
    return [order.index(v) + 1 if v is not None else None for v in values]


def fmt(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def table(rows: list[dict], command: str) -> str:
    conventional = ranks([r["conventional"]["best_value"] for r in rows])
    reality = ranks([r["reality_check"] for r in rows])
    metric = rows[0]["metric"] if rows else "acc"
    lines = [f"`{command}`", "", f"Metric: {metric} (%). Trials: completed / run (a failed or diverged trial has no value). "
             "Ranks among the rows, 1 = best; a run without a value has none.", "",
             "| strategy | trials tune | trials conventional | best on tuning stream "
             "| conventional (tuned on the evaluation stream) | reality check (tuned on the tuning stream) | difference "
             "| rank conventional | rank reality check | chosen on the tuning stream |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r, rc, rr in zip(rows, conventional, reality):
        t, c = r["tune"], r["conventional"]
        diff = None if r["reality_check"] is None or c["best_value"] is None else r["reality_check"] - c["best_value"]
        chosen = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (r.get("chosen") or {}).items())
        lines.append(f"| {r['strategy']} | {t['completed']}/{t['trials']} | {c['completed']}/{c['trials']} | {fmt(t['best_value'])} "
                     f"| {fmt(c['best_value'])} | {fmt(r['reality_check']) if r['reality_check'] is not None else r['status']} "
                     f"| {'n/a' if diff is None else f'{100 * diff:+.1f}'} "
                     f"| {rc or 'n/a'} | {rr or 'n/a'} | {chosen or r['status']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from cl_bench.errors import UserError, describe, exit_status

    parser = argparse.ArgumentParser(prog="cl-bench-reality-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--tune", action="append", help="an override of the tuning stream (repeatable); "
                        "default: scenario=split_digits")
    parser.add_argument("--evaluate", action="append", help="an override of the evaluation stream (repeatable); "
                        "default: scenario=split_mnist")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from --out without running")
    parser.add_argument("overrides", nargs="*", help="overrides for every run")
    args = parser.parse_args(argv)
    args.tune, args.evaluate = args.tune or ["scenario=split_digits"], args.evaluate or ["scenario=split_mnist"]
    strategies = [s for s in args.strategies.split(",") if s]
    try:
        if args.trials < 1:
            raise UserError(f"--trials must be an integer >= 1, got {args.trials}")
        from cl_bench.cli import CONFIG_DIR

        unknown = [s for s in strategies if not (Path(CONFIG_DIR) / "hparams_search" / f"{s}.yaml").exists()]
        if unknown:
            raise UserError(f"--strategies: no search space conf/hparams_search/{unknown[0]}.yaml; "
                            f"available: {', '.join(STRATEGIES)}")
        if not args.table_only:  # every pairing is checked before the first trial trains
            check_streams(strategies, args.tune, args.evaluate, args.overrides)
        rows = []
        for strategy in strategies:
            if args.table_only:
                rows.append(summarize(args.out, strategy, args.evaluate, args.overrides, run_missing=False))
            else:
                rows.append(run_strategy(args.out, strategy, args.trials, args.tune, args.evaluate, args.overrides))
                print(f"cl-bench-reality-check: {strategy}: conventional {fmt(rows[-1]['conventional']['best_value'])}, "
                      f"reality check {fmt(rows[-1]['reality_check'])}", flush=True)
    except UserError as exc:
        print(describe(exc), file=sys.stderr)
        return exit_status(exc)
    command = " ".join(["cl-bench-reality-check", f"--out {args.out}", f"--strategies {','.join(strategies)}",
                        f"--trials {args.trials}", *(f"--tune {o}" for o in args.tune), *(f"--evaluate {o}" for o in args.evaluate),
                        *args.overrides])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reality_check.json").write_text(json.dumps(rows, indent=1))
    text = table(rows, command)
    (args.out / "reality_check.md").write_text(text)
    print(text)
    return 0 if all(r["reality_check"] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
