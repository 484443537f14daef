"""Scenario builders, one module per family, each registering with `@register_scenario(name)`.

Builder contract:

    @register_scenario("my_stream", rules={"n_experiences": at_least(1)})
    def build(cfg, source: DataSource, seed: int) -> Scenario: ...

`cfg` is the scenario's config node (`conf/scenario/<name>.yaml`), `source.load("mnist")` gives a
dataset as tensors from the run's `data` config (root, download, checksum checks), and `seed` is
the run's seed (class orders, permutations, sampled shots). The Scenario says which setting it is
(`class_incremental`, `domain_incremental`, or `task_incremental` when multi-head); checks that
need the data raise `cl_bench.errors.ConfigError` naming the key. Another package registers a
scenario the same way through the `cl_bench.scenarios` entry-point group.
"""
from cl_bench.scenarios.base import Scenario

__all__ = ["Scenario"]
