"""Constraints a component declares on its own config keys, where it is registered:

    @register_strategy("replay", rules={"mem_size": at_least(1), "storage_policy": one_of(*POLICIES)})

The run checks them for every chosen component before anything is built, and a plugin package
declares its own the same way. A rule is a predicate plus the words for what it allows; the
message names the full key (`strategy.mem_size must be an integer >= 1, got 0`). Checks that
need the data (a class count to divide, a schedule to fit) stay in the builder, raising
`ConfigError` with the same shape of message.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from cl_bench.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    check: Callable[[Any], bool]
    allowed: str  # completes "<key> must be ..."

    def __call__(self, key: str, value) -> None:
        try:
            good = self.check(value)
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ConfigError(f"{key} must be {self.allowed}, got {value!r}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def at_least(minimum: int) -> Rule:
    """An integer >= minimum."""
    return Rule(lambda v: _integer(v) and v >= minimum, f"an integer >= {minimum}")


def number_at_least(minimum: float) -> Rule:
    return Rule(lambda v: _number(v) and v >= minimum, f"a number >= {minimum:g}")


def positive() -> Rule:
    return Rule(lambda v: _number(v) and v > 0, "a number > 0")


def between(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Rule:
    opening, close = "(" if low_open else "[", ")" if high_open else "]"
    return Rule(lambda v: _number(v) and (low < v if low_open else low <= v) and (v < high if high_open else v <= high),
                f"a number in {opening}{low:g}, {high:g}{close}")


def one_of(*options: str) -> Rule:
    return Rule(lambda v: v in options, f"one of {', '.join(options)}")


def optional(rule: Rule) -> Rule:
    """None (the key's "off" value) or what `rule` allows."""
    return Rule(lambda v: v is None or rule.check(v), f"null or {rule.allowed}")


def each(rule: Rule, plural: str) -> Rule:
    """A non-empty list whose every item satisfies `rule`; `plural` names the items ("integers >= 1")."""
    return Rule(lambda v: isinstance(v, list) and len(v) > 0 and all(rule.check(x) for x in v),
                f"a non-empty list of {plural}")


def scalar_or_each(rule: Rule) -> Rule:
    """One value, or a list with one value per experience."""
    return Rule(lambda v: rule.check(v) or (isinstance(v, list) and len(v) > 0 and all(rule.check(x) for x in v)),
                f"{rule.allowed} or a list of them")


def check(rules: dict[str, Rule], node, prefix: str) -> None:
    """Apply `rules` to the keys of a config node (a dict or DictConfig); missing keys are skipped
    (the generic validation has already refused keys the component does not have)."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    for key, rule in rules.items():  # a key may be dotted: "schedule.offset"
        value, found = plain, True
        for part in key.split("."):
            found = isinstance(value, dict) and part in value
            if not found:
                break
            value = value[part]
        if found:
            rule(f"{prefix}.{key}", value)
