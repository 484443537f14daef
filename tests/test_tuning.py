"""Hyperparameter search: a real Optuna study on digits through `hydra/sweeper=optuna_resumable`;
failed and diverged trials are FAIL in the study (no value that steers the search); a study killed
in the middle of a trial resumes where it stopped; bad input fails before any trial trains."""
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from tests.conftest import compose_config, tiny
BASE = ["device=cpu", "eval=off", "logger=none", "train.epochs=1"]


def study_command(sweep_dir, *overrides):
    return [sys.executable, "-m", "cl_bench", "-m", *BASE, *overrides, f"hydra.sweep.dir={sweep_dir}"]


def load(sweep_dir):
    return optuna.load_study(study_name="cl-bench", storage=f"sqlite:///{sweep_dir}/optuna.db")


def results(sweep_dir, k):
    return json.loads((sweep_dir / str(k) / "results.json").read_text())


def test_an_optuna_study_on_digits_records_every_trial(tmp_path):
    sweep_dir = tmp_path / "study"
    proc = subprocess.run(study_command(sweep_dir, "hparams_search=ewc", "hydra.sweeper.n_trials=3"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    trials = load(sweep_dir).trials
    assert len(trials) == 3 and any(t.state.name == "COMPLETE" for t in trials)
    for t in trials:  # folder k holds trial k, run with the trial's values; a completed run returned its metric
        run = results(sweep_dir, t.number)
        assert run["config"]["optimizer"]["lr"] == pytest.approx(t.params["optimizer.lr"])
        assert run["config"]["strategy"]["ewc_lambda"] == pytest.approx(t.params["strategy.ewc_lambda"])
        if run["status"] == "completed":
            assert t.state.name == "COMPLETE" and t.value == pytest.approx(run["metrics"]["acc"])
        else:  # a large rate with a large penalty diverges: FAIL, no value
            assert run["status"] == "diverged" and t.state.name == "FAIL" and t.value is None
    assert 0.001 <= min(t.params["optimizer.lr"] for t in trials) and max(t.params["optimizer.lr"] for t in trials) <= 0.3
    assert len({t.params["optimizer.lr"] for t in trials}) == 3
    best = (sweep_dir / "optimization_results.yaml").read_text()
    assert f"best_value: {max(t.value for t in trials if t.value is not None)}" in best


@pytest.mark.slow
def test_the_optimized_metric_is_what_a_trial_returns(tmp_path):
    sweep_dir = tmp_path / "study"
    proc = subprocess.run(study_command(sweep_dir, "hparams_search=naive", "hydra.sweeper.n_trials=2",
                                        "eval=continual", "eval.plot=false", "optimized_metric=min_acc"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for t in load(sweep_dir).trials:
        assert t.value == pytest.approx(results(sweep_dir, t.number)["metrics"]["min_acc"])
        assert t.value != pytest.approx(results(sweep_dir, t.number)["metrics"]["acc"])


def test_diverged_trials_are_failed_in_the_study_not_zeros(tmp_path):
    sweep_dir = tmp_path / "study"
    proc = subprocess.run(study_command(sweep_dir, "hydra/sweeper=optuna_resumable", "hydra.sweeper.n_trials=2",
                                        "strategy=naive", "optimizer.lr=tag(log, interval(1e10, 1e12))"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr  # divergence is a result of the setting, reported as one
    trials = load(sweep_dir).trials
    assert [(t.state.name, t.value) for t in trials] == [("FAIL", None), ("FAIL", None)]
    assert [results(sweep_dir, k)["status"] for k in (0, 1)] == ["diverged", "diverged"]
    assert "2 finished (2 diverged: no metrics), 0 failed" in proc.stderr
    log = proc.stdout + proc.stderr  # Hydra's log lines go to stdout
    assert "Trial recorded as FAIL: its run failed or diverged" in log and "float-castable" not in log
    assert "no trial of the study completed" in log


@pytest.mark.slow
def test_a_killed_study_resumes_the_cut_off_trial_and_runs_only_the_missing_ones(tmp_path):
    sweep_dir = tmp_path / "study"
    command = study_command(sweep_dir, "hparams_search=naive", "hydra.sweeper.n_trials=3", "train.epochs=3")
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (sweep_dir / "1" / "checkpoint.pt").exists():  # trial 1 is past its first experience
        assert first.poll() is None and time.time() < deadline, "the study ended before trial 1 checkpointed"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert [t.state.name for t in load(sweep_dir).trials] == ["COMPLETE", "RUNNING"]

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    trials = load(sweep_dir).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3  # not 3 more: only the missing one ran
    assert results(sweep_dir, 1)["resumed_from"]  # the cut-off trial went on from its checkpoint
    for t in trials:
        assert t.value == pytest.approx(results(sweep_dir, t.number)["metrics"]["acc"])
    # A resumed sampler does not repeat the first process's draws.
    assert len({t.params["optimizer.lr"] for t in trials}) == 3


@pytest.mark.parametrize("overrides, message", [
    (["optimized_metric=min_acc"], "optimized_metric must be a metric this run produces (acc, forgetting, bwt, stream_acc), got 'min_acc'"),
    (["eval=continual", "optimized_metric=nope"],
     "optimized_metric must be a metric this run produces (acc, forgetting, bwt, stream_acc, min_acc,"),
    (["hydra/sweeper=optuna_resumable", "optimizer.lrr=interval(0.001, 0.1)"], "unknown key 'optimizer.lrr'"),
])
def test_bad_tuning_input_fails_before_any_trial(tmp_path, overrides, message):
    sweep_dir = tmp_path / "study"
    proc = subprocess.run(study_command(sweep_dir, *overrides), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    assert not sweep_dir.exists()  # nothing trained, no study opened


def test_an_unknown_sweeper_parameter_is_named():
    from omegaconf import OmegaConf

    from cl_bench.errors import ConfigError
    from cl_bench.validation import check_sweeper_params

    cfg = compose_config(["hparams_search=ewc"])
    OmegaConf.set_struct(cfg, False)
    cfg_with_hydra = OmegaConf.merge(cfg, {"hydra": {"sweeper": {"params": {"strategy.ewc_lamda": "interval(1, 2)",
                                                                            "optimizer.lr": "interval(0.1, 1)",
                                                                            "strategy": "choice(ewc, si)"}}}})
    with pytest.raises(ConfigError, match=r"unknown sweeper parameter 'hydra.sweeper.params.strategy.ewc_lamda'; "
                                          r"keys allowed under strategy: decay_factor, ewc_lambda, mode, name"):
        check_sweeper_params(cfg_with_hydra, {"strategy", "optimizer"})


@pytest.mark.parametrize("name", ["naive", "ewc", "si", "lwf", "replay", "der"])
def test_every_search_space_names_real_keys(name):
    from hydra import compose, initialize_config_dir

    from cl_bench.cli import CONFIG_DIR
    from cl_bench.validation import check_sweeper_params, config_dirs, group_options

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    assert cfg.strategy.name == name and cfg.hydra.sweeper._target_.endswith("ResumableOptunaSweeper")
    assert "optimizer.lr" in cfg.hydra.sweeper.params
    check_sweeper_params(cfg, set(group_options(config_dirs(CONFIG_DIR))))


@pytest.mark.parametrize("eval_choice", ["off", "continual"])
def test_produced_metrics_are_the_metrics_a_run_writes(eval_choice, run_job):
    from cl_bench.validation import produced_metrics

    overrides = tiny(["strategy=naive", f"eval={eval_choice}"])
    run = run_job(overrides)
    assert set(run["metrics"]) == set(produced_metrics(compose_config(overrides)))


def reality_check(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "cl_bench.reality_check", "--out", str(tmp_path / "rc"), *args],
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_reality_check_reports_the_score_of_values_chosen_on_the_other_stream(tmp_path):
    proc = reality_check(tmp_path, "--strategies", "naive", "--trials", "2", "--evaluate", "scenario=split_digits",
                         "--evaluate", "scenario.shuffle_classes=true", *BASE)
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads((tmp_path / "rc" / "reality_check.json").read_text())
    folder = tmp_path / "rc" / "naive"
    chosen = load(folder / "tune").best_trial
    evaluated = json.loads((folder / "evaluate" / "results.json").read_text())
    assert evaluated["config"]["optimizer"]["lr"] == pytest.approx(chosen.params["optimizer.lr"])
    assert evaluated["config"]["scenario"]["shuffle_classes"] is True  # trained on the evaluation stream
    assert row["reality_check"] == pytest.approx(evaluated["metrics"]["acc"])
    assert row["conventional"]["best_value"] == pytest.approx(load(folder / "conventional").best_value)
    assert "| naive | 2/2 | 2/2 |" in (tmp_path / "rc" / "reality_check.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--evaluate", "scenario=split_digits", "--evaluate", "scenario.n_experiences=2"],
     "must have the same shape"),
    (["--evaluate", "scenario=split_digits", "--evaluate", "train.epochs=2"],
     "--tune and --evaluate must differ only in the data: 'train' differs"),
    (["--strategies", "naive,gem"], "--strategies: no search space conf/hparams_search/gem.yaml"),
    (["--trials", "0"], "--trials must be an integer >= 1, got 0"),
])
def test_the_reality_check_refuses_streams_that_differ_in_more_than_data(tmp_path, args, message):
    proc = reality_check(tmp_path, "--strategies", "naive", *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "rc").exists()
