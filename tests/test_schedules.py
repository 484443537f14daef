"""Learning-rate schedules: each formula pinned at chosen updates, the restart at an experience
boundary, the stream scope, the record in lr.csv and the one-line errors."""
import csv
import math

import pytest
from omegaconf import OmegaConf

from cl_bench.schedules import factor
from tests.conftest import tiny

BASE = {"scope": "experience", "warmup_steps": 0, "min_lr": 0.0}


def s(name, **keys):
    return OmegaConf.create({**BASE, "name": name, **keys})


@pytest.mark.parametrize("sched, t, expected", [
    (s("constant"), 57, 1.0),
    (s("constant", warmup_steps=4), 0, 0.25),
    (s("constant", warmup_steps=4), 3, 1.0),
    (s("step", milestones=[0.5, 0.75], gamma=0.1), 49, 1.0),
    (s("step", milestones=[0.5, 0.75], gamma=0.1), 50, 0.1),
    (s("step", milestones=[0.5, 0.75], gamma=0.1), 80, 0.01),
    (s("linear"), 25, 0.75),
    (s("linear", min_lr=0.05), 100, 0.5),           # min_lr 0.05 of base 0.1: ends at half
    (s("cosine"), 50, 0.5),
    (s("cosine"), 100, 0.0),
    (s("cosine", warmup_steps=10), 55, 0.5),         # half way through the 90 updates after warmup
    (s("wsd", decay_fraction=0.2), 80, 1.0),
    (s("wsd", decay_fraction=0.2), 90, 0.5),
    (s("infinite", cooldown_fraction=0.2, constant_level=0.5, decay_fraction=0.1), 10, 0.75),
    (s("infinite", cooldown_fraction=0.2, constant_level=0.5, decay_fraction=0.1), 60, 0.5),
    (s("infinite", cooldown_fraction=0.2, constant_level=0.5, decay_fraction=0.1), 95, 0.25),
    (s("rex"), 50, 0.5 / 0.75),
    (s("rex"), 100, 0.0),
    (s("cosine"), 250, 0.0),                         # past the span it stays at the end value
])
def test_schedule_value_at_chosen_updates(sched, t, expected):
    assert math.isclose(factor(sched, t, 100, lr=0.1), expected, abs_tol=1e-12)


def read_lr(folder):
    with open(folder / "lr.csv") as f:
        return [(int(r["update"]), int(r["experience"]), float(r["lr"])) for r in csv.DictReader(f)]


def test_experience_scope_rewarms_and_redecays_at_every_boundary(run_job, tmp_path):
    run_job(tiny(["strategy=naive", "model.hidden_sizes=[16]", "eval=off", "optimizer.lr=0.1",
                  "schedule=cosine", "schedule.warmup_steps=2", "train.batch_size=16"]), name="r")
    rows = read_lr(tmp_path / "r")
    by_exp = {}
    for u, e, lr in rows:
        by_exp.setdefault(e, []).append(lr)
    assert len(by_exp) == 5 and [u for u, _, _ in rows] == list(range(len(rows)))
    for lrs in by_exp.values():
        assert math.isclose(lrs[0], 0.05) and math.isclose(lrs[1], 0.1)  # warmup 1/2, 2/2 after each switch
        assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] < 0.02  # then decays within the task


def test_stream_scope_runs_one_schedule_over_the_whole_stream(run_job, tmp_path):
    run_job(tiny(["strategy=naive", "model.hidden_sizes=[16]", "eval=off", "optimizer.lr=0.1",
                  "schedule=linear", "schedule.scope=stream"]), name="r")
    lrs = [lr for _, _, lr in read_lr(tmp_path / "r")]
    assert math.isclose(lrs[0], 0.1) and all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.1 / len(lrs) * 2


def test_constant_default_keeps_the_optimizer_rate_exactly(run_job, tmp_path):
    run_job(tiny(["strategy=replay", "model.hidden_sizes=[16]", "eval=off", "optimizer.lr=0.03"]), name="r")
    assert {lr for _, _, lr in read_lr(tmp_path / "r")} == {0.03}


def test_a_schedule_drives_strategies_with_their_own_optimizer(run_job, tmp_path):
    run_job(tiny(["strategy=classp", "model.hidden_sizes=[16]", "eval=off", "schedule=step",
                  "schedule.milestones=[0.5]", "schedule.gamma=0.5"]), name="r")
    lrs = {lr for _, _, lr in read_lr(tmp_path / "r")}
    assert lrs == {0.2, 0.1}  # CLASSP's own lr 0.2, halved half way through each experience


@pytest.mark.parametrize("override, message", [
    ("schedule.warmup_steps=-1", "schedule.warmup_steps must be"),
    ("schedule.scope=task", "schedule.scope must be one of experience, stream"),
    ("schedule.min_lr=-0.1", "schedule.min_lr must be"),
])
def test_bad_schedule_values_fail_in_one_line(override, message, run_job):
    from cl_bench.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        run_job(tiny(["strategy=naive", "eval=off", "schedule=cosine", override]))


@pytest.mark.parametrize("value", ["0", "1.5"])
def test_a_decay_fraction_outside_zero_one_fails(value, run_job):
    from cl_bench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"schedule.decay_fraction must be a number in \(0, 1\], got"):
        run_job(tiny(["strategy=naive", "eval=off", "schedule=wsd", f"schedule.decay_fraction={value}"]))


def test_bad_milestones_name_the_key(run_job):
    from cl_bench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"schedule.milestones must be a non-empty list of fractions"):
        run_job(tiny(["strategy=naive", "eval=off", "schedule=step", "schedule.milestones=[0.5,1.5]"]))
