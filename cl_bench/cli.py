"""The `cl-bench` command: compose the Hydra config, run it, return the metric a sweep optimizes.

    cl-bench [hydra flags] [overrides]      one run, or a sweep with -m
    cl-bench list [scenarios|strategies|models|addons|loggers]

Errors a user can fix (`cl_bench.errors.UserError`: unknown names, keys or options, wrong types,
out-of-range values, missing data, a checkpoint from another config) end a single run with one
line and exit status 2; anything else is a bug and says so in one line, exit status 1
(CL_BENCH_DEBUG=1 shows the traceback of either). A run whose loss turns non-finite stops there
with status "diverged" and exit status 3. In a sweep a failing job is reported the same way and
recorded as failed; the other jobs still run and the sweep exits non-zero.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cl_bench.errors import EXIT_DIVERGED, UserError, debugging, describe, exit_status

# An absolute path: a relative one would make Hydra look for an importable `conf` package.
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def run_from_config(cfg: DictConfig) -> float | None:
    from hydra import compose

    from cl_bench.validation import config_dirs, group_overrides, validate

    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        # What the same group choices give without value overrides: the keys and types allowed.
        reference = compose(config_name="config",
                            overrides=group_overrides(list(HydraConfig.get().overrides.task), config_dirs(CONFIG_DIR)))
        validate(cfg, reference)
        from cl_bench.run import run  # torch and Avalanche: only once the config is known to be good

        results = run(cfg, HydraConfig.get().runtime.output_dir)
    except Exception as exc:
        if debugging():
            raise
        print(describe(exc), file=sys.stderr)
        if in_sweep:
            return None  # results.json says failed; the sweep report counts it
        sys.exit(exit_status(exc))
    if results["status"] == "diverged":
        print(f"cl-bench: diverged: {results['error']}", file=sys.stderr)
        if in_sweep:
            return None  # a result, not a failure: the sweep goes on and reports it
        sys.exit(EXIT_DIVERGED)
    return results["metrics"].get(cfg.optimized_metric)  # None (a metric without a value): the trial failed


def list_registered(kinds: list[str]) -> int:
    from cl_bench import registry

    available = {"scenarios": registry.SCENARIOS, "strategies": registry.STRATEGIES, "models": registry.MODELS,
                 "addons": registry.ADDONS, "loggers": registry.LOGGERS}
    unknown = [k for k in kinds if k not in available]
    if unknown:
        print(f"cl-bench: error: cannot list '{unknown[0]}'; choose from {', '.join(available)}", file=sys.stderr)
        return 2
    for kind in kinds or list(available):
        print(f"{kind}: {', '.join(available[kind].names())}")
    return 0


def main() -> None:
    from cl_bench.validation import check_composition, check_group_choices, config_dirs

    if len(sys.argv) > 1 and sys.argv[1] == "list":
        sys.exit(list_registered(sys.argv[2:]))
    try:
        check_group_choices(sys.argv[1:], config_dirs(CONFIG_DIR))
        check_composition(sys.argv[1:], CONFIG_DIR)
    except UserError as exc:
        if debugging():
            raise
        print(describe(exc), file=sys.stderr)
        sys.exit(exit_status(exc))
    run_from_config()


if __name__ == "__main__":
    main()
