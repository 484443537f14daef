"""Scenario builders. Each module registers builders with `@register_scenario(name)`."""
from cl_bench.scenarios.base import Scenario

__all__ = ["Scenario"]
