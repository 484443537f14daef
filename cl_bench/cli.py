"""The `cl-bench` command: compose the Hydra config, run it, return the final accuracy.

Errors a user can fix (unknown names, missing data, out-of-range values) end the process with a
one-line message and exit status 2 instead of a traceback.
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from cl_bench.data import DataUnavailableError
from cl_bench.registry import UnknownNameError

USER_ERRORS = (UnknownNameError, DataUnavailableError, ValueError)
# An absolute path: a relative one would make Hydra look for an importable `conf` package.
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    from cl_bench.run import run

    try:
        results = run(cfg, HydraConfig.get().runtime.output_dir)
    except USER_ERRORS as exc:
        print(f"cl-bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    return results["metrics"]["acc"]


if __name__ == "__main__":
    main()
