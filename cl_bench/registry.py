"""One registry per kind of component, timm-style: a component registers itself with a decorator
and the run looks it up by the name its config uses.

    @register_strategy("replay", rules={"mem_size": at_least(1)})
    def build(cfg, model, optimizer, criterion, plugins=(), **common): ...

Every kind also loads from other installed packages through an entry-point group
(`cl_bench.<kind plural>`, e.g. `cl_bench.strategies`, `cl_bench.scenarios`), so a new method,
scenario, model, add-on or logger can live outside this repo.

What a component declares where it registers, so that the run checks it before building anything
(Mammoth-style), for plugins as for our own code:
- `rules`: constraints on its own config keys (`cl_bench.rules`);
- strategies only: the `settings` they run in (class-, domain-, task-incremental), whether they
  train `offline` (once, on the whole stream, like joint training), and whether they
  `resume_midway`: their state inside an experience (running sums, positions of iterators over a
  memory) is in their `state_dict`, so a run resumes from a checkpoint inside an experience
  (cl_bench/midway.py). Off unless declared: the others resume, exactly, from the experience's
  start.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable

from cl_bench.errors import ConfigError, UnknownNameError
from cl_bench.rules import Rule, check

# van de Ven et al.'s three scenarios; every scenario says which one it is (Scenario.setting).
SETTINGS = ("class_incremental", "domain_incremental", "task_incremental")


@dataclass(frozen=True)
class Entry:
    builder: Callable
    rules: dict[str, Rule] = field(default_factory=dict)
    settings: tuple[str, ...] = SETTINGS
    offline: bool = False
    resume_midway: bool = False  # a strategy says so once the test matrix proves it (tests/test_checkpoint.py)


class Registry:
    def __init__(self, kind: str, modules: tuple[str, ...] = (), entry_point_group: str | None = None):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        # Packages whose submodules register into this registry when imported.
        self._modules = modules
        self._entry_point_group = entry_point_group
        self._loaded = False

    def register(self, name: str, *, rules: dict[str, Rule] | None = None, **traits) -> Callable[[Callable], Callable]:
        unknown = set(traits) - {"settings", "offline", "resume_midway"}
        if unknown:
            raise TypeError(f"{self.kind} '{name}': unknown registration argument(s) {', '.join(sorted(unknown))}")
        bad = set(traits.get("settings", ())) - set(SETTINGS)
        if bad:
            raise TypeError(f"{self.kind} '{name}': settings must be among {', '.join(SETTINGS)}, got {sorted(bad)}")

        def decorator(builder: Callable) -> Callable:
            existing = self._entries.get(name)
            if existing is not None and existing.builder is not builder:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(builder, dict(rules or {}), **traits)
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
        return sorted(self._entries)

    def entry(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} '{name}'; registered: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str) -> Callable:
        return self.entry(name).builder

    def check(self, name: str, cfg, key: str) -> None:
        """The component's declared rules on its config node, named `key` in messages."""
        check(self.entry(name).rules, cfg, key)

    def build(self, name: str, *args, **kwargs):
        return self.get(name)(*args, **kwargs)


SCENARIOS = Registry("scenario", modules=("cl_bench.scenarios",), entry_point_group="cl_bench.scenarios")
MODELS = Registry("model", modules=("cl_bench.models",), entry_point_group="cl_bench.models")
STRATEGIES = Registry("strategy", modules=("strategies",), entry_point_group="cl_bench.strategies")
# Add-ons are plugins that compose with any strategy (`+addons=refresh`): they live beside the
# strategies and register with `@register_addon(name)`: build(cfg, seed) -> Avalanche plugin.
ADDONS = Registry("addon", modules=("strategies",), entry_point_group="cl_bench.addons")
# Experiment trackers (`logger=[wandb,csv]`): build(cfg) -> cl_bench.tracking.base.Tracker.
LOGGERS = Registry("logger", modules=("cl_bench.tracking",), entry_point_group="cl_bench.loggers")

# Where other packages register: the Hydra search-path plugin adds the conf/ folder of each.
ENTRY_POINT_GROUPS = tuple(r._entry_point_group for r in (SCENARIOS, MODELS, STRATEGIES, ADDONS, LOGGERS))

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


def check_components(cfg) -> None:
    """Every chosen component's declared rules, before anything is built."""
    SCENARIOS.check(cfg.scenario.name, cfg.scenario, "scenario")
    MODELS.check(cfg.model.name, cfg.model, "model")
    STRATEGIES.check(cfg.strategy.name, cfg.strategy, "strategy")
    for name, addon_cfg in (cfg.get("addons") or {}).items():
        ADDONS.check(name, addon_cfg, f"addons.{name}")
    for name, logger_cfg in (cfg.get("logger") or {}).items():
        LOGGERS.check(name, logger_cfg, f"logger.{name}")


def check_midway(strategy: str, every_updates) -> None:
    """Checkpoints by update count ask for resuming inside an experience: a strategy that cannot
    says so before training instead of quietly resuming from the experience's start."""
    if every_updates is not None and not STRATEGIES.entry(strategy).resume_midway:
        raise ConfigError(f"strategy '{strategy}' resumes only from experience boundaries (its state inside an experience "
                          f"is not checkpointed); remove checkpoint.every_updates")


def check_pairing(strategy: str, scenario: str, setting: str) -> None:
    """A strategy on a scenario setting it does not support fails before training."""
    supported = STRATEGIES.entry(strategy).settings
    if setting not in supported:
        raise ConfigError(f"strategy '{strategy}' runs {' or '.join(supported)} only; scenario '{scenario}' is {setting}")
