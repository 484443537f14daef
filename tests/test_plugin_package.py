"""A strategy from a separately installed package: examples/plugin is pip-installed into this
test environment, found through its entry point and its own conf/, and run from the CLI."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "cl_bench", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed_plugin():
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    already = subprocess.run([*pip, "show", "cl-bench-example-plugin"], capture_output=True).returncode == 0
    subprocess.run([*pip, "install", "--no-deps", str(REPO / "examples" / "plugin")], check=True, capture_output=True)
    yield
    if not already:  # leave the environment as we found it
        subprocess.run([*pip, "uninstall", "-y", "cl-bench-example-plugin"], check=True, capture_output=True)


def test_external_strategy_is_listed_and_runs_from_the_cli(installed_plugin, tmp_path):
    listed = cli("list", "strategies", cwd=tmp_path)
    assert listed.returncode == 0 and "label_smoothing" in listed.stdout.split(": ")[1].split(", ")
    proc = cli("device=cpu", "strategy=label_smoothing", "strategy.smoothing=0.2", "train.epochs=1",
               f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "completed" and results["config"]["strategy"] == {"name": "label_smoothing", "smoothing": 0.2}


def test_external_strategy_validates_its_config(installed_plugin, tmp_path):
    proc = cli("device=cpu", "strategy=label_smoothing", "strategy.smoothing=1.5", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "cl-bench: error: strategy.smoothing must be a number in [0, 1), got 1.5"
