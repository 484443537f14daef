"""One registry per kind of component (scenarios, strategies, models), timm-style.

A component registers itself with a decorator; the CLI looks it up by the name used in the
config. Strategies also load from other installed packages through the `cl_bench.strategies`
entry-point group, so a new method can live outside this repo.
"""
from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Callable


class UnknownNameError(ValueError):
    """A config named a component that is not registered."""


class Registry:
    def __init__(self, kind: str, modules: tuple[str, ...] = (), entry_point_group: str | None = None):
        self.kind = kind
        self._builders: dict[str, Callable] = {}
        # Packages whose submodules register into this registry when imported.
        self._modules = modules
        self._entry_point_group = entry_point_group
        self._loaded = False

    def register(self, name: str) -> Callable[[Callable], Callable]:
        def decorator(builder: Callable) -> Callable:
            existing = self._builders.get(name)
            if existing is not None and existing is not builder:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._builders[name] = builder
            return builder

        return decorator

    def _load(self) -> None:
        # Imported lazily: registering modules import torch and avalanche, which is slow.
        if self._loaded:
            return
        self._loaded = True
        for package_name in self._modules:
            package = importlib.import_module(package_name)
            for info in pkgutil.iter_modules(package.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{package_name}.{info.name}")
        if self._entry_point_group:
            for ep in entry_points(group=self._entry_point_group):
                ep.load()

    def names(self) -> list[str]:
        self._load()
        return sorted(self._builders)

    def get(self, name: str) -> Callable:
        self._load()
        if name not in self._builders:
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'; registered: {', '.join(self.names())}"
            )
        return self._builders[name]

    def build(self, name: str, *args, **kwargs):
        return self.get(name)(*args, **kwargs)


SCENARIOS = Registry("scenario", modules=("cl_bench.scenarios",))
MODELS = Registry("model", modules=("cl_bench.models",))
STRATEGIES = Registry("strategy", modules=("strategies",), entry_point_group="cl_bench.strategies")
# Add-ons are plugins that compose with any strategy (`+addons=refresh`): they live beside the
# strategies and register with `@register_addon(name)`: build(cfg, seed) -> Avalanche plugin.
ADDONS = Registry("addon", modules=("strategies",), entry_point_group="cl_bench.addons")
# Experiment trackers (`logger=[wandb,csv]`): build(cfg) -> cl_bench.tracking.base.Tracker.
LOGGERS = Registry("logger", modules=("cl_bench.tracking",))

register_scenario = SCENARIOS.register
register_model = MODELS.register
register_strategy = STRATEGIES.register
register_addon = ADDONS.register
register_logger = LOGGERS.register

list_scenarios = SCENARIOS.names
list_models = MODELS.names
list_strategies = STRATEGIES.names
list_addons = ADDONS.names
list_loggers = LOGGERS.names
