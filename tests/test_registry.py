import sys
import textwrap

import pytest

from cl_bench.registry import (
    Registry,
    UnknownNameError,
    list_models,
    list_scenarios,
    list_strategies,
)


def test_everything_the_issue_names_is_registered():
    assert {"naive", "joint", "cumulative", "ewc", "replay", "lwf"} <= set(list_strategies())
    assert {"mlp", "convnet", "resnet18_reduced"} <= set(list_models())
    assert {
        "split_digits", "split_mnist", "split_fmnist", "split_cifar10", "split_cifar100",
        "permuted_mnist", "rotated_mnist", "permuted_digits", "rotated_digits",
    } <= set(list_scenarios())


def test_every_registered_strategy_has_a_config_file():
    from pathlib import Path

    from cl_bench.cli import CONFIG_DIR
    from hydra_plugins.cl_bench_plugins.searchpath import external_config_dirs

    # In this repo's conf/, or in the conf/ of an installed plugin package (examples/plugin).
    config_dirs = [Path(CONFIG_DIR), *external_config_dirs()]
    for name in list_strategies():
        assert any((d / "strategy" / f"{name}.yaml").is_file() for d in config_dirs), name


def test_unknown_name_is_one_line_listing_registered_names():
    registry = Registry("widget")
    registry.register("a")(lambda: 1)
    registry.register("b")(lambda: 2)
    with pytest.raises(UnknownNameError) as err:
        registry.get("c")
    assert str(err.value) == "unknown widget 'c'; registered: a, b"
    assert registry.build("b") == 2


def test_registering_a_name_twice_fails():
    registry = Registry("widget")
    registry.register("a")(lambda: 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a")(lambda: 2)


def test_strategy_from_an_external_package_via_entry_point(tmp_path, monkeypatch):
    # A minimal installed distribution: a module plus dist-info naming it in our entry-point group.
    (tmp_path / "ext_cl_method.py").write_text(textwrap.dedent("""
        from cl_bench.registry import register_strategy

        @register_strategy("external_demo")
        def build(cfg, model, optimizer, criterion, **common):
            return "built externally"
    """))
    dist = tmp_path / "ext_cl_method-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ext-cl-method\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cl_bench.strategies]\nexternal_demo = ext_cl_method\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    from cl_bench.registry import STRATEGIES

    STRATEGIES.names()  # in-repo strategies first
    monkeypatch.setattr(STRATEGIES, "_entries", dict(STRATEGIES._entries))  # undone after the test
    monkeypatch.setattr(STRATEGIES, "_loaded", False)  # look at entry points again
    sys.modules.pop("ext_cl_method", None)
    assert "external_demo" in STRATEGIES.names()
    assert STRATEGIES.build("external_demo", None, None, None, None) == "built externally"


def test_a_scenario_from_another_package_runs_through_its_entry_point(tmp_path, monkeypatch, run_job):
    """Every kind has an entry-point group, not only strategies: an installed package's scenario
    (module + conf/scenario/<name>.yaml beside it) is listed, composed and run like ours."""
    package = tmp_path / "ext_cl_stream"
    (package / "conf" / "scenario").mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent("""
        from cl_bench.registry import register_scenario
        from cl_bench.rules import at_least
        from cl_bench.scenarios.class_incremental import split_by_class

        @register_scenario("external_stream", rules={"n_experiences": at_least(1)})
        def build(cfg, source, seed):
            data = source.load("digits")
            return split_by_class(data, int(cfg.n_experiences), list(range(10)), False, "external_stream")
    """))
    (package / "conf" / "scenario" / "external_stream.yaml").write_text("name: external_stream\nn_experiences: 2\n")
    dist = tmp_path / "ext_cl_stream-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ext-cl-stream\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cl_bench.scenarios]\nexternal_stream = ext_cl_stream\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    from cl_bench.registry import SCENARIOS

    SCENARIOS.names()
    monkeypatch.setattr(SCENARIOS, "_entries", dict(SCENARIOS._entries))
    monkeypatch.setattr(SCENARIOS, "_loaded", False)
    sys.modules.pop("ext_cl_stream", None)
    assert "external_stream" in SCENARIOS.names()
    results = run_job(["scenario=external_stream", "strategy=naive", "train.epochs=1", "eval=off"])
    assert results["status"] == "completed" and results["scenario"]["n_experiences"] == 2
    with pytest.raises(ValueError, match="scenario.n_experiences must be an integer >= 1, got 0"):
        run_job(["scenario=external_stream", "scenario.n_experiences=0"], name="bad")
