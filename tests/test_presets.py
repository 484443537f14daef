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


# Presets for rows that need a GPU machine and a dataset not in ../shared/data: each runs end to end
# here on fake files in the real on-disk format, narrowed (1 epoch, a narrow model of its kind); slow
# (GEM and A-GEM on 20 tasks take ~30 s each), so they run in .ci/run's second step.
GPU_PRESETS = [p for p in PRESETS if p.startswith(("baseline_", "view_batch_")) and ("cifar" in p or "tinyimagenet" in p)]
NARROW_MODEL = {"resnet18_reduced": "model.nf=4", "convnet": "model.channels=[4,4]", "mlp": "model.hidden_sizes=[16]"}


@pytest.mark.slow
@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_gpu_baseline_preset_runs_end_to_end_on_fake_data(preset, fake_data_root, run_job):
    model = compose_config([f"+experiment={preset}"]).model.name
    results = run_job([f"+experiment={preset}", f"data.root={fake_data_root}", "data.verify_checksums=false",
                       "train.epochs=1", NARROW_MODEL[model], "device=cpu"])
    assert results["status"] == "completed"
    assert len(results["acc_matrix"]) == results["scenario"]["n_experiences"]
    assert 0.0 <= results["metrics"]["stream_acc"] <= 1.0
