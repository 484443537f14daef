"""Config checks made before anything is built or trained, each failing with one line that
names the key, the value and what is allowed.

- Unknown group options (`strategy=nope`) are caught on the command line, before Hydra's own
  multi-line message.
- Unknown keys: the config is compared with the one the same group choices give without value
  overrides; a key only the user's `+key=...` added is unknown.
- Types follow the reference config's values (an int stays an int, a string a string; None
  admits anything), except keys that also accept a list or null.
- Ranges of the run's own keys (seed, batch sizes, optimizer) and the device's form. Components
  declare the ranges of their own keys where they register (one home per rule, plugins too).
"""
from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cl_bench.errors import ConfigError
from cl_bench.rules import at_least, between, number_at_least, one_of, positive


# Keys whose value may be a list although the default is a scalar (one value per experience).
LIST_OK = {"train.epochs", "strategy.alpha", "strategy.prune_proportion", "scenario.class_weights"}
# Keys that may be null although a default sets them: exactly-one-of choices, whose builder
# checks that one is set (a rehearsal schedule's budget: rehearsal_schedule.py).
NULL_OK = {"scenario.schedule.scale", "scenario.schedule.per_phase_budget", "scenario.schedule.total_budget"}

# The run's own keys. A component's keys (scenario.*, strategy.*, model.*, addons.*, logger.*)
# are checked by the rules it declares where it registers (cl_bench.registry), eval.* by the
# evaluator, train.epochs against the stream's length once it is known.
RUN_RULES = {
    "seed": at_least(0),
    "train.batch_size": at_least(1),
    "train.eval_batch_size": at_least(1),
    "train.precision": one_of("fp32", "bf16"),
    "checkpoint.every_updates": at_least(1),
    "checkpoint.every_seconds": positive(),
    "optimizer.lr": positive(),
    "optimizer.momentum": between(0, 1, high_open=True),
    "optimizer.weight_decay": number_at_least(0),
}
DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def _check_type(key: str, value, reference) -> None:
    if reference is None or (key in LIST_OK and isinstance(value, list)) or (key in NULL_OK and value is None):
        return
    if isinstance(reference, list):
        ok, expected = isinstance(value, list), "a list"
    else:
        # An int is a fine float; bool is its own type (True is not an acceptable batch size).
        ok = type(value) is type(reference) or (type(reference) is float and type(value) is int)
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[type(reference)]
    if not ok:
        raise ConfigError(f"{key} must be {expected}, got {value!r}")


def validate(cfg: DictConfig, reference: DictConfig | None = None) -> None:
    """Raise ConfigError for the first problem found."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    ref = OmegaConf.to_container(reference, resolve=True) if reference is not None else None

    def walk(node, ref_node, prefix):
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if ref_node is not None and key not in ref_node:
                allowed = ", ".join(sorted(ref_node)) or "none"
                raise ConfigError(f"unknown key '{dotted}'; keys allowed {'under ' + prefix[:-1] if prefix else 'at the top'}: {allowed}")
            ref_value = ref_node.get(key) if ref_node is not None else None
            if isinstance(value, dict):
                walk(value, ref_value if isinstance(ref_value, dict) else None, f"{dotted}.")
                continue
            if ref_node is not None:
                _check_type(dotted, value, ref_value)
            rule = RUN_RULES.get(dotted)
            if rule and value is not None:
                rule(dotted, value)

    walk(plain, ref, "")
    if not DEVICE.match(str(plain.get("device"))):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {plain.get('device')!r}")


# --- config groups on the command line ----------------------------------------------------------

def config_dirs(main_dir: str) -> list[Path]:
    from hydra_plugins.cl_bench_plugins.searchpath import external_config_dirs

    return [Path(main_dir), *external_config_dirs()]


def group_options(dirs: list[Path]) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    for d in dirs:
        for sub in d.iterdir():
            if sub.is_dir() and sub.name != "hydra":
                groups.setdefault(sub.name, set()).update(p.stem for p in sub.glob("*.yaml"))
    return groups


def check_group_choices(args: list[str], dirs: list[Path]) -> None:
    """`strategy=nope`, `+addons=[refresh,nope]`, `-m scenario=a,b` -> one line naming the bad option."""
    groups = group_options(dirs)
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~").split("@")[0]
        if group not in groups or "." in group:
            continue
        for option in re.split(r"[,\[\]\s]+", value):
            if option and option not in groups[group] and not option.startswith(("range(", "choice(", "glob(")):
                raise ConfigError(f"unknown {group} '{option}'; available: {', '.join(sorted(groups[group]))}")


def group_overrides(overrides: list[str], dirs: list[Path]) -> list[str]:
    """The overrides that choose group options (no value overrides): they rebuild the reference."""
    groups = group_options(dirs)
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~").split("@")[0] in groups]


# Hydra flags that take the next argument as their value.
_FLAGS_WITH_VALUE = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "-c", "--cfg",
                     "-p", "--package", "--experimental-rerun"}


def _overrides_in(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _FLAGS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-") and not arg.lstrip("+~").startswith("hydra"):
            out.append(arg)
    return out


def check_composition(argv: list[str], main_dir: str) -> None:
    """Compose the config the command line asks for (the first value of every sweep) and turn
    Hydra's multi-line composition errors into one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    overrides = _overrides_in(argv)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"cannot parse the command line ({first}); see https://hydra.cc/docs/advanced/override_grammar/basic") from None
    first_job = [f"{o.input_line.split('=', 1)[0]}={_first_value(o)}" if o.is_sweep_override()
                 else o.input_line for o in parsed]
    sweeper = [a for a in argv if a.startswith(("hydra/sweeper=", "hydra.sweeper."))]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=main_dir, version_base="1.3"):
            try:
                cfg = compose(config_name="config", overrides=first_job + sweeper, return_hydra_config=True)
            except HydraException as exc:
                cause = exc.__cause__ or exc.__context__
                missing_key = getattr(cause, "full_key", None) if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) else None
                failing = next((o for o in parsed if missing_key and o.key_or_group == missing_key), None)
                if failing is not None:
                    parent, _, _ = failing.key_or_group.rpartition(".")
                    reference = compose(config_name="config", overrides=group_overrides(first_job, config_dirs(main_dir)))
                    node = OmegaConf.select(reference, parent) if parent else reference
                    allowed = ", ".join(sorted(node.keys())) if isinstance(node, DictConfig) else "none"
                    raise ConfigError(f"unknown key '{failing.key_or_group}' (set to {failing.value()!r}); keys allowed "
                                      f"{'under ' + parent if parent else 'at the top'}: {allowed}") from None
                lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
                raise ConfigError(" ".join(lines[:2])) from None
    finally:
        GlobalHydra.instance().clear()
    check_optimized_metric(cfg)
    if OmegaConf.select(cfg, "hydra.sweeper.params"):  # an Optuna sweep: only then are the groups needed
        check_sweeper_params(cfg, set(group_options(config_dirs(main_dir))))


def _first_value(override) -> str:
    """The first job's value of a sweep: its first item, or an interval's lower end (Optuna's
    `interval(a, b)` has no items)."""
    if override.is_interval_sweep():
        return str(override.value().start)
    return next(iter(override.sweep_string_iterator()))


def produced_metrics(cfg: DictConfig) -> tuple[str, ...]:
    """The metrics a run of this config writes to results.json (and can return to a sweeper)."""
    from cl_bench.evaluation.stability import continual_metric_names
    from cl_bench.evaluation.task_end import METRICS

    if cfg.eval.name == "off":
        return METRICS
    return METRICS + continual_metric_names(tuple(int(w) for w in cfg.eval.windows), int(cfg.eval.lca_beta))


def check_optimized_metric(cfg: DictConfig) -> None:
    try:
        allowed = produced_metrics(cfg)
    except (TypeError, ValueError):
        return  # malformed eval.windows: the type check that follows names it
    if cfg.optimized_metric not in allowed:
        raise ConfigError(f"optimized_metric must be a metric this run produces ({', '.join(allowed)}), "
                          f"got {cfg.optimized_metric!r}")


def check_sweeper_params(cfg: DictConfig, groups: set[str]) -> None:
    """Every key an Optuna sweep varies (`hydra.sweeper.params`) names a config group or an
    existing key of the run's config, or every trial would fail on it."""
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    for key in params:
        key = str(key).lstrip("+~")
        if key in groups:
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if not isinstance(node, DictConfig) or leaf not in node:
            allowed = ", ".join(sorted(k for k in node.keys() if k != "hydra")) if isinstance(node, DictConfig) else "none"
            raise ConfigError(f"unknown sweeper parameter 'hydra.sweeper.params.{key}'; keys allowed "
                              f"{'under ' + parent if parent else 'at the top'}: {allowed}")
