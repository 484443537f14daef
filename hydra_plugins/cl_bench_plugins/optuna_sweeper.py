"""`hydra/sweeper=optuna_resumable`: Hydra requires a sweeper class to live in the hydra_plugins
package, and Hydra imports every module here at start-up; the sweeper itself (and Optuna) is
imported only when a sweep uses it: cl_bench/tuning.py."""
from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper


class ResumableOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from cl_bench.tuning import ResumableStudy

        self.sweeper = ResumableStudy(**settings)

    def setup(self, **kwargs: Any) -> None:
        self.sweeper.setup(**kwargs)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
