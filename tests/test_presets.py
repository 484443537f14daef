"""Every experiment preset in conf/experiment/ composes, names registered components and passes
their declared rules: a preset whose header promises a result can at least start."""
from pathlib import Path

import pytest

from cl_bench.cli import CONFIG_DIR
from cl_bench.registry import check_components
from cl_bench.validation import validate
from tests.conftest import compose_config

PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_and_passes_its_components_rules(preset):
    cfg = compose_config([f"+experiment={preset}"])
    validate(cfg, compose_config([f"+experiment={preset}"]))
    check_components(cfg)
    header = (Path(CONFIG_DIR) / "experiment" / f"{preset}.yaml").read_text().split("defaults:")[0]
    assert "cl-bench" in header, "the header states the command that runs the preset"
