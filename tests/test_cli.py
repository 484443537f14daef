"""The command line as a user meets it: `cl-bench` (python -m cl_bench), sweeps, one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def cl_bench(*args, cwd):
    flags = [a for a in args if a.startswith("-")]  # argparse wants flags before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.run(
        [sys.executable, "-m", "cl_bench", *flags, "device=cpu", *overrides],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def test_default_run_prints_summary_and_writes_results(tmp_path):
    proc = cl_bench(f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "split_digits / replay / seed 0" in proc.stdout and "final accuracy" in proc.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["config"]["strategy"]["name"] == "replay"
    assert results["scenario"]["classes_per_experience"] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert len(results["acc_matrix"]) == 5 and results["metrics"]["acc"] > 0.6
    for key in ("acc", "forgetting", "bwt"):
        assert key in results["metrics"]
    for key in ("wall_time_s", "train_time_s", "peak_memory", "versions", "git_commit", "seed"):
        assert key in results
    assert results["versions"]["avalanche-lib"] == "0.6.0"
    progress = (tmp_path / "run" / "progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["experience"] for line in progress] == [0, 1, 2, 3, 4]


def test_multirun_sweeps_strategies_and_seeds(tmp_path):
    proc = cl_bench("-m", "strategy=naive,replay", "seed=0,1", "train.epochs=1",
                    f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    found = sorted(
        (r["strategy"], r["seed"]) for r in
        (json.loads(p.read_text()) for p in Path(tmp_path / "sweep").glob("*/results.json"))
    )
    assert found == [("naive", 0), ("naive", 1), ("replay", 0), ("replay", 1)]


def test_unknown_registered_name_is_one_line(tmp_path):
    proc = cl_bench("strategy.name=nope", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert proc.returncode == 2
    from cl_bench.registry import list_strategies

    assert proc.stderr.strip().splitlines() == [
        f"cl-bench: error: unknown strategy 'nope'; registered: {', '.join(list_strategies())}"
    ]
    assert ", naive, " in proc.stderr and ", replay, " in proc.stderr
    # a failed run is marked failed, never left looking complete
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "failed" and "metrics" not in results


def test_missing_data_is_one_line(tmp_path):
    proc = cl_bench("scenario=split_fmnist", "data.download=false", f"data.root={tmp_path}/empty",
                    f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "dataset 'fmnist' not found in" in lines[0] and "FashionMNIST" in lines[0]


def test_bad_device_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cl_bench", "device=tpu", f"hydra.run.dir={tmp_path}/run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["cl-bench: error: device must be auto, cpu, cuda or cuda:N, got 'tpu'"]


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "cl-bench"
    assert script.exists(), "pip install -e . should install the cl-bench console script"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0 and "scenario: " in proc.stdout


def test_list_prints_registered_names(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cl_bench", "list"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    lines = dict(line.split(": ", 1) for line in proc.stdout.strip().splitlines())
    assert set(lines) == {"scenarios", "strategies", "models", "addons", "loggers"}
    assert {"split_mnist", "fscil_digits", "power_law_rehearsal", "scole_mnist"} <= set(lines["scenarios"].split(", "))
    assert {"naive", "ewc", "replay"} <= set(lines["strategies"].split(", "))
    one = subprocess.run([sys.executable, "-m", "cl_bench", "list", "models"], cwd=tmp_path, capture_output=True, text=True)
    assert one.stdout.strip() == "models: convnet, mlp, resnet18_reduced"
    bad = subprocess.run([sys.executable, "-m", "cl_bench", "list", "optimizers"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "cl-bench: error: cannot list 'optimizers'; choose from scenarios, strategies, models, addons, loggers"


def test_no_progress_bars_or_warnings_when_output_is_not_a_terminal(tmp_path):
    proc = cl_bench(f"hydra.run.dir={tmp_path}/run", "train.epochs=1", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stderr == ""  # no bars, no third-party warnings
    assert "experience 1/5" not in proc.stdout


def test_diverging_run_exits_3_with_one_line(tmp_path):
    proc = cl_bench(f"hydra.run.dir={tmp_path}/run", "strategy=naive", "optimizer.lr=1e12", "train.epochs=1", cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.strip().startswith("cl-bench: diverged: non-finite training loss (nan) at experience 0")
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "diverged"


def test_a_bug_is_shown_as_a_bug_not_as_a_config_error(tmp_path):
    """An exception that is not a UserError (here a ValueError as torch would raise it) is one
    line naming it as an internal error, exit status 1, and the traceback with CL_BENCH_DEBUG=1."""
    script = (
        "import sys, cl_bench.run, cl_bench.cli\n"
        "def broken(cfg, output_dir): raise ValueError('Expected input batch_size (3) to match target batch_size (4)')\n"
        "cl_bench.run.run = broken\n"
        f"sys.argv = ['cl-bench', 'device=cpu', 'hydra.run.dir={tmp_path}/run']\n"
        "cl_bench.cli.main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "cl-bench: internal error: ValueError: Expected input batch_size (3) to match target batch_size (4) "
        "(a bug in cl-bench or a dependency; run with CL_BENCH_DEBUG=1 for the traceback)"]
    debug = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**__import__("os").environ, "CL_BENCH_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_another_config_in_a_finished_run_folder_leaves_it_untouched(tmp_path):
    first = cl_bench("train.epochs=1", "eval=off", "seed=1", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    recorded = {p.name: p.read_text() for p in (tmp_path / "run" / ".hydra").iterdir()}
    results = (tmp_path / "run" / "results.json").read_text()
    second = cl_bench("train.epochs=1", "eval=off", "seed=2", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "was written by a run with seed=1, this run has seed=2" in lines[0]
    assert {p.name: p.read_text() for p in (tmp_path / "run" / ".hydra").iterdir()} == recorded
    assert (tmp_path / "run" / "results.json").read_text() == results


def test_help_names_the_program_and_shows_examples(tmp_path):
    proc = cl_bench("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("cl-bench: continual-learning experiments")
    assert "powered by Hydra" not in proc.stdout
    for example in ("cl-bench strategy=ewc", "cl-bench -m strategy=naive,ewc,replay", "cl-bench-leaderboard"):
        assert example in proc.stdout
    assert any(line.startswith("strategy: ") and ", replay," in line for line in proc.stdout.splitlines())  # groups, options
