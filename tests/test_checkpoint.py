"""Checkpoints and resume: a run interrupted mid-experience and started again in the same folder
ends with exactly the results of an uninterrupted run, for every strategy and add-on, whether it
resumes from the experience's start or from a checkpoint inside it; a crafted checkpoint never
runs code; a checkpoint from another config is refused."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cl_bench.errors import CheckpointError
from cl_bench.results.run_folder import CHECKPOINT as CHECKPOINT_FILE
from cl_bench.results.run_folder import MIDWAY_CHECKPOINT as MIDWAY_FILE
from cl_bench.divergence import DivergenceGuard
from cl_bench.errors import ConfigError
from cl_bench.evaluation.continual import load_curves
from cl_bench.registry import STRATEGIES, list_strategies
from tests.conftest import REPO, on_default_stream, tiny
from tests.test_tracking import wandb_file_records, wandb_records

STABLE = ("acc_matrix", "metrics")
KILL_AT = 12  # total training iterations: split_digits has ~5 per experience at batch 64
MIDWAY_EVERY = 2  # updates between checkpoints inside an experience, where a test asks for them


class Killed(BaseException):
    """Stands in for a kill: not an Exception, so nothing in the run may swallow it."""


@pytest.fixture
def interrupt_at(monkeypatch):
    """Make the next run stop abruptly before its n-th training update."""
    def arm(n: int):
        original = DivergenceGuard.before_backward

        def before_backward(self, strategy, **kwargs):
            if strategy.clock.train_iterations == n:
                monkeypatch.setattr(DivergenceGuard, "before_backward", original)  # once
                raise Killed
            original(self, strategy, **kwargs)

        monkeypatch.setattr(DivergenceGuard, "before_backward", before_backward)

    return arm


@pytest.fixture
def count_updates(monkeypatch):
    """Count the training updates of the next run."""
    counter = {"updates": 0}
    original = DivergenceGuard.before_backward

    def before_backward(self, strategy, **kwargs):
        counter["updates"] += 1
        original(self, strategy, **kwargs)

    monkeypatch.setattr(DivergenceGuard, "before_backward", before_backward)
    yield counter
    monkeypatch.setattr(DivergenceGuard, "before_backward", original)


def interrupted_then_resumed(run_job, interrupt_at, overrides, tmp_path, kill_at: int):
    interrupt_at(kill_at)
    with pytest.raises(Killed):
        run_job(overrides, name="b")
    had = {name: (tmp_path / "b" / name).exists() for name in (CHECKPOINT_FILE, MIDWAY_FILE)}
    return run_job(overrides, name="b"), had


CASES = [
    *[on_default_stream(s) for s in list_strategies()],
    ["strategy=replay", "strategy.storage_policy=class_balanced"],
    ["strategy=replay", "strategy.storage_policy=reservoir"],
    ["strategy=replay", "strategy.new_data_weight=0.3"],
    ["strategy=ewc", "strategy.mode=online"],
    ["strategy=lwf", "scenario.task_labels=true"],
    ["strategy=classp", "strategy.phase_switch=true"],
    ["strategy=replay", "+addons=refresh", "addons.refresh.rate=0.01"],
    ["strategy=naive", "+addons=refresh", "addons.refresh.variant=code", "addons.refresh.rate=0.01"],
    ["strategy=replay", "+addons=view_batch", "addons.view_batch.shift=1", "addons.view_batch.warmup_epochs=0"],
    ["strategy=naive", "+addons=group_mask"],
    ["strategy=replay", "+addons=ema"],
    ["strategy=replay", "+addons=ncm_eval"],
    ["strategy=replay", "eval=off"],
    ["strategy=replay", "eval.resample_each_eval=true", "eval.samples_per_task=50"],
    ["strategy=replay", "scenario=power_law_rehearsal", "scenario@scenario.base=split_digits",
     "scenario.schedule.total_budget=200"],
    ["strategy=replay", "scenario=cfsl_digits", "scenario.repeat_classes=true"],
    ["strategy=naive", "scenario=scole_digits", "scenario.n_tasks=6"],
    ["strategy=replay", "schedule=cosine", "schedule.warmup_steps=3"],
    ["strategy=naive", "schedule=infinite", "schedule.scope=stream"],
]


# Resuming inside an experience, in the default run: one case per mechanism it must get right (a
# replay loader, joint training's one step, a distilled old model, exemplar means, a per-update
# learning rate, per-epoch loaders of an add-on, running sums of the experience, an iterator over
# a memory, a strategy that resumes only at boundaries); every case in `-m slow`.
MIDWAY_DEFAULT = {("strategy=replay",), ("strategy=joint",), ("strategy=lwf",), ("strategy=icarl",),
                  ("strategy=replay", "schedule=cosine", "schedule.warmup_steps=3"),
                  ("strategy=replay", "+addons=view_batch", "addons.view_batch.shift=1", "addons.view_batch.warmup_epochs=0"),
                  ("strategy=si",), ("strategy=agem",), ("strategy=packnet", "scenario.task_labels=true")}
RESUME_CASES = [pytest.param(case, midway, id=f"{' '.join(case)}-{'inside the experience' if midway else 'experience start'}",
                             marks=[pytest.mark.slow] if midway and tuple(case) not in MIDWAY_DEFAULT else [])
                for case in CASES for midway in (False, True)]


@pytest.mark.parametrize("overrides,midway", RESUME_CASES)
def test_interrupted_run_resumes_to_identical_results(overrides, midway, run_job, interrupt_at, count_updates, tmp_path):
    overrides = tiny(["model.hidden_sizes=[32]", "seed=3", *overrides])
    a = run_job(overrides, name="a")  # no checkpoint inside an experience: runs this short take none by time
    halfway = count_updates["updates"] // 2  # stop before the update halfway through the run
    strategy = next(o for o in overrides if o.startswith("strategy=")).split("=")[1]
    if midway and not STRATEGIES.entry(strategy).resume_midway:
        with pytest.raises(ConfigError, match=f"strategy '{strategy}' resumes only from experience boundaries"):
            run_job([*overrides, f"checkpoint.every_updates={MIDWAY_EVERY}"], name="refused")
        midway = False  # by time or on preemption it resumes from the experience's start
    resumed = [*overrides, f"checkpoint.every_updates={MIDWAY_EVERY}"] if midway else overrides
    b, had = interrupted_then_resumed(run_job, interrupt_at, resumed, tmp_path, kill_at=halfway)
    assert b["status"] == "completed"
    assert {k: b[k] for k in STABLE} == {k: a[k] for k in STABLE}
    for name in ("curves.csv", "lr.csv", "task_end.csv", "summary.csv"):  # the CSV logger's files are whole again
        if (tmp_path / "a" / name).exists() or name != "curves.csv":
            assert (tmp_path / "b" / name).read_text() == (tmp_path / "a" / name).read_text()
    progress = (tmp_path / "b" / "progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["accuracy"] for line in progress] == a["acc_matrix"]
    n = len(a["acc_matrix"])
    if midway and had[MIDWAY_FILE]:  # from inside the experience, where the last checkpoint before the kill was
        assert 0 < b["resumed_at_update"][0] <= halfway and b["resumed_from"][0] < n
    elif midway:  # few-shot experiences (MIDWAY_EVERY updates or fewer) have no inside: resumed at a boundary
        assert any(o.startswith("scenario=") for o in overrides) and had[CHECKPOINT_FILE]
    elif "strategy=joint" in overrides:  # one step, no boundary inside: it starts over
        assert not any(had.values()) and "resumed_from" not in b
    else:
        assert had[CHECKPOINT_FILE] and b["resumed_from"] == [b["resumed_from"][0]] and 1 <= b["resumed_from"][0] < n
    for name in (CHECKPOINT_FILE, MIDWAY_FILE):  # a finished run leaves none behind
        assert not (tmp_path / "b" / name).exists()


def test_a_run_resumes_more_than_once(run_job, interrupt_at, tmp_path):
    overrides = tiny(["strategy=ewc", "seed=4"])
    a = run_job(overrides, name="a")
    for n in (7, 18):
        interrupt_at(n)
        with pytest.raises(Killed):
            run_job(overrides, name="b")
    b = run_job(overrides, name="b")
    assert {k: b[k] for k in STABLE} == {k: a[k] for k in STABLE}
    first, second = b["resumed_from"]  # experiences done at each resumption
    assert 1 <= first < second < 5


def test_checkpoint_from_another_config_is_refused(run_job, interrupt_at, tmp_path):
    interrupt_at(KILL_AT)
    with pytest.raises(Killed):
        run_job(tiny(["optimizer.lr=0.05"]), name="b")
    with pytest.raises(CheckpointError, match=r"optimizer\.lr=0\.05, this run has optimizer\.lr=0\.1"):
        run_job(tiny(["optimizer.lr=0.1"]), name="b")
    assert (tmp_path / "b" / CHECKPOINT_FILE).exists()  # still there for the right command
    assert run_job(tiny(["optimizer.lr=0.05", "logger=none"]), name="b")["resumed_from"]  # loggers may change


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_checkpoint_is_refused_without_running_code(run_job, tmp_path):
    marker = tmp_path / "code-ran"
    (tmp_path / "b").mkdir()
    with open(tmp_path / "b" / CHECKPOINT_FILE, "wb") as f:
        pickle.dump({"format": 1, "model": _Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="refused"):
        run_job(tiny([]), name="b")
    assert not marker.exists()


def test_corrupt_checkpoint_names_the_file(run_job, interrupt_at, tmp_path):
    interrupt_at(KILL_AT)
    with pytest.raises(Killed):
        run_job(tiny([]), name="b")
    path = tmp_path / "b" / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=f"{path}: unreadable checkpoint"):
        run_job(tiny([]), name="b")


# --- a real process, really killed ---------------------------------------------------------------

def cli(run_dir: Path, *overrides: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "cl_bench", f"hydra.run.dir={run_dir}", "device=cpu", "logger=none", *overrides]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_lines(path: Path, n: int, process: subprocess.Popen, timeout: float = 120) -> list[float]:
    """When each of the first n lines appeared (monotonic seconds, polled every 20 ms)."""
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        ended = process.poll() is not None  # before the read: a run that wrote n lines and ended is seen
        lines = len(path.read_text().splitlines()) if path.exists() else 0
        seen += [time.monotonic()] * (min(lines, n) - len(seen))
        if len(seen) >= n:
            return seen
        assert not ended, f"the run ended before {n} experiences:\n{process.stdout.read()}"
        time.sleep(0.02)
    raise AssertionError(f"no {n} experiences in {timeout} s")


def test_killed_or_preempted_processes_resume_with_the_same_command_to_the_same_results(tmp_path):
    """A real process: SIGKILL (no warning: it resumes from the last boundary), then SIGUSR2
    (SLURM's warning, submitit's signal) and SIGTERM (scancel, kill), after which the run stops
    after the update in progress with a checkpoint, exits as the signal would and resumes there."""
    # Epochs long enough (about 1 s per experience on an idle machine) that a signal sent a
    # fraction of an experience after one ends lands inside the next; the fraction is measured on
    # the reference run's experiences, so a loaded machine (slower experiences) waits longer. Not
    # on its whole run: a slow start-up made that "quarter" longer than an experience.
    overrides = ["strategy=replay", "train.epochs=40", "seed=7"]
    reference = cli(tmp_path / "a", *overrides)
    ends = wait_for_lines(tmp_path / "a" / "progress.jsonl", 5, reference, timeout=300)
    assert reference.wait(timeout=300) == 0, reference.stdout.read()
    delay = 0.25 * min(b - a for a, b in zip(ends, ends[1:]))  # a quarter of the shortest experience
    for done, signum in ((1, signal.SIGKILL), (2, signal.SIGUSR2), (3, signal.SIGTERM)):
        process = cli(tmp_path / "b", *overrides)
        wait_for_lines(tmp_path / "b" / "progress.jsonl", done, process)
        time.sleep(delay)
        process.send_signal(signum)
        out, _ = process.communicate(timeout=60)
        assert len((tmp_path / "b" / "progress.jsonl").read_text().splitlines()) == done  # stopped inside the next one
        if signum == signal.SIGKILL:
            assert not (tmp_path / "b" / "results.json").exists()
            continue
        assert process.returncode == 128 + signum, out
        assert f"stopped by {signal.Signals(signum).name} after writing a checkpoint" in out
        stopped = json.loads((tmp_path / "b" / "results.json").read_text())
        assert stopped["status"] == "preempted" and (tmp_path / "b" / MIDWAY_FILE).exists()
    final = cli(tmp_path / "b", *overrides)
    out, _ = final.communicate(timeout=300)
    assert final.returncode == 0, out
    assert "inside experience 3" in out
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert b["status"] == "completed" and b["resumed_from"] == [1, 2, 3]
    boundaries = load_curves(tmp_path / "a" / "curves.csv").task_end
    killed, usr2, term = b["resumed_at_update"]  # from the boundary, then from inside experiences
    assert killed == boundaries[0] and usr2 not in boundaries and term not in boundaries and boundaries[1] < usr2 < boundaries[2]
    assert {k: b[k] for k in STABLE} == {k: a[k] for k in STABLE}
    assert (tmp_path / "b" / "curves.csv").read_text() == (tmp_path / "a" / "curves.csv").read_text()


def test_a_finished_run_is_not_trained_again_in_its_folder(run_job, tmp_path, capsys):
    first = run_job(tiny([]), name="b")
    model_written = (tmp_path / "b" / "model.pt").stat().st_mtime_ns
    again = run_job(tiny([]), name="b")
    assert again == json.loads((tmp_path / "b" / "results.json").read_text())
    assert again["metrics"] == first["metrics"] and "already holds this run" in capsys.readouterr().out
    assert (tmp_path / "b" / "model.pt").stat().st_mtime_ns == model_written


def test_another_config_never_overwrites_a_finished_run(run_job, tmp_path):
    run_job(tiny(["seed=1"]), name="b")
    before = (tmp_path / "b" / "results.json").read_text()
    with pytest.raises(CheckpointError, match=r"results\.json was written by a run with seed=1, this run has seed=2"):
        run_job(tiny(["seed=2"]), name="b")
    assert (tmp_path / "b" / "results.json").read_text() == before


def test_crafted_checkpoint_through_the_cli_is_one_line_and_exit_2(tmp_path):
    marker = tmp_path / "code-ran"
    (tmp_path / "b").mkdir()
    with open(tmp_path / "b" / CHECKPOINT_FILE, "wb") as f:
        pickle.dump({"format": 1, "model": _Payload(marker)}, f)
    process = cli(tmp_path / "b", "train.epochs=1")
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 2
    lines = [line for line in out.splitlines() if line.startswith("cl-bench: error:")]
    assert len(lines) == 1 and f"{tmp_path / 'b' / CHECKPOINT_FILE}: refused" in lines[0] and "Traceback" not in out
    assert "Warning" not in out  # the refusal is the only thing said
    assert not marker.exists() and not (tmp_path / "b" / "model.pt").exists()


def test_resuming_under_another_commit_is_recorded(run_job, interrupt_at, tmp_path, monkeypatch, capsys):
    import cl_bench.run

    interrupt_at(KILL_AT)
    monkeypatch.setattr(cl_bench.run, "git_commit", lambda: "1111111")
    with pytest.raises(Killed):
        run_job(tiny([]), name="b")
    monkeypatch.setattr(cl_bench.run, "git_commit", lambda: "2222222")
    b = run_job(tiny([]), name="b")
    assert b["git_commit"] == "2222222" and b["git_commits"] == ["1111111", "2222222"]
    assert "started at commit 1111111 and resumes at 2222222" in capsys.readouterr().out


def test_a_resumed_run_continues_its_wandb_run_with_each_point_once(run_job, interrupt_at, tmp_path):
    overrides = tiny(["logger=wandb", "seed=5", "checkpoint.every_updates=2"])
    run_job(overrides, name="a")
    interrupt_at(KILL_AT)  # inside an experience, after a checkpoint inside it
    with pytest.raises(Killed):
        run_job(overrides, name="b")
    b = run_job(overrides, name="b")
    assert b["resumed_at_update"] == [KILL_AT]
    first, second = (wandb_file_records(f) for f in sorted((tmp_path / "b").glob("wandb/offline-run-*/run-*.wandb")))
    assert first["run"].run_id == second["run"].run_id  # one W&B run, two attempts
    reference = wandb_records(tmp_path / "a")

    def points(records, key):
        return [h[key] for h in records["history"] if key in h]

    # Offline, syncing the later folder replaces the earlier one (wandb/wandb#3841): it holds the
    # whole history, each point once. (Online, the run continues and logs only what follows.)
    assert points(first, "experience") == list(range(b["resumed_from"][0]))  # what the killed attempt finished
    for key in ("iteration", "experience", "update"):  # curves, task-end rows, learning rates
        assert points(second, key) == points(reference, key)
    assert second["summary"]["acc"] == reference["summary"]["acc"]


# A second training stage after an experience's last update, with no checkpoint of its own:
# (strategy, the method that runs it, its call in the second experience).
SECOND_STAGES = [("generative_replay", "strategies.generative_replay.GenerativeReplayPlugin", "after_training_exp", 2),
                 ("bic", "strategies.bic.BiCPlugin", "bias_correction_step", 1)]  # BiC's stage starts there


@pytest.mark.parametrize("strategy, owner, stage, call", SECOND_STAGES, ids=[s[0] for s in SECOND_STAGES])
def test_a_signal_during_a_second_training_stage_stops_it_at_once(strategy, owner, stage, call, run_job, monkeypatch,
                                                                  tmp_path):
    """Generative replay's generator and BiC's bias layer train after the solver's last update of an
    experience: SIGTERM there stops the run before that stage ends (not after it, minutes later),
    and the same command resumes from the last boundary to the uninterrupted run's results."""
    import importlib

    overrides = tiny(["model.hidden_sizes=[32]", "seed=3", f"strategy={strategy}"])
    a = run_job(overrides, name="a")
    module, name = owner.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    original, calls = getattr(cls, stage), []

    def signal_as_the_stage_starts(self, strategy, **kwargs):
        calls.append(1)
        if len(calls) == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, strategy, **kwargs)

    monkeypatch.setattr(cls, stage, signal_as_the_stage_starts)
    with pytest.raises(SystemExit) as stopped:
        run_job(overrides, name="b")
    assert stopped.value.code == 128 + signal.SIGTERM
    stopped = json.loads((tmp_path / "b" / "results.json").read_text())
    assert stopped["status"] == "preempted" and "resumes from the last checkpoint" in stopped["error"]
    assert "after writing a checkpoint" not in stopped["error"]  # it wrote none
    # the second experience is not recorded (its stage did not end): it is trained again on resumption
    assert len((tmp_path / "b" / "progress.jsonl").read_text().splitlines()) == 1
    monkeypatch.setattr(cls, stage, original)
    b = run_job(overrides, name="b")
    assert b["status"] == "completed" and b["resumed_from"] == [1]
    assert {k: b[k] for k in STABLE} == {k: a[k] for k in STABLE}


def test_a_signal_arriving_after_an_update_checked_for_one_is_answered_after_the_next(monkeypatch):
    """The stop is decided on the signal read before the checkpoint decision: a signal that lands
    between that read and the stop waits one update, then a checkpoint is written and the run stops
    saying so (never 'after writing a checkpoint' with none written)."""
    from types import SimpleNamespace

    from cl_bench import midway, preemption

    written = []
    plugin = midway.MidwayCheckpoints(every_updates=None, every_seconds=None, device="cpu",
                                      write=lambda strategy, position: written.append(position))
    strategy = SimpleNamespace(plugins=[], clock=SimpleNamespace(train_exp_epochs=0))
    reads = iter([None])  # the first read happens just before the signal lands
    monkeypatch.setattr(preemption, "_requested", signal.SIGUSR2)
    monkeypatch.setattr(preemption, "requested", lambda: next(reads, signal.SIGUSR2))
    plugin.after_training_iteration(strategy)
    assert written == []
    with pytest.raises(preemption.Preempted, match="SIGUSR2 after writing a checkpoint"):
        plugin.after_training_iteration(strategy)
    assert len(written) == 1
