"""Lets an installed plugin package ship its own configs: for every package that registers in one
of cl-bench's entry-point groups (`cl_bench.strategies`, `cl_bench.scenarios`, `cl_bench.models`,
`cl_bench.addons`, `cl_bench.loggers`), a `conf/` folder next to its top-level module joins
Hydra's config search path, so `conf/strategy/<name>.yaml` (or `conf/scenario/<name>.yaml`, ...)
there is selectable as `strategy=<name>`. Hydra discovers this plugin through the hydra_plugins
namespace."""
from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

def external_config_dirs() -> list[Path]:
    from cl_bench.registry import ENTRY_POINT_GROUPS  # light: no torch

    dirs = []
    for group in ENTRY_POINT_GROUPS:
        for ep in entry_points(group=group):
            top = ep.value.split(":")[0].split(".")[0]
            spec = importlib.util.find_spec(top)  # locates the package without importing it
            if spec is None or not spec.submodule_search_locations:
                continue
            for location in spec.submodule_search_locations:
                conf = Path(location) / "conf"
                if conf.is_dir() and conf not in dirs:
                    dirs.append(conf)
    return dirs


class ExternalStrategyConfigs(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for conf in external_config_dirs():
            search_path.append(provider="cl-bench-plugin", path=f"file://{conf}")
