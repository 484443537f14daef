"""Learning-rate schedules for continual training: the factor f(t) that multiplies each parameter
group's base learning rate at update t of a span of T updates.

With W warmup updates, p = (t - W) / (T - W) is the progress after warmup and m = min_lr / lr:

    warmup    f = (t + 1) / W for t < W (linear, to the base rate)
    constant  f = 1
    step      f = gamma ** (number of milestones <= p); milestones are fractions of the span
              (iCaRL's schedule, Rebuffi et al. 2017: 49/70 and 63/70 of the epochs, gamma 1/5)
    linear    f = 1 - (1 - m) p                     (linear decay; Defazio et al. 2023 refine it)
    cosine    f = m + (1 - m) (1 + cos(pi p)) / 2   (Loshchilov & Hutter 2017)
    wsd       f = 1 until p = 1 - decay_fraction, then linear to m
              (warmup-stable-decay: Hu et al. 2024; Wen et al. 2024, the river-valley view)
    infinite  cosine cool-down from 1 to `constant_level` over the first `cooldown_fraction`,
              constant, then a linear anneal to m over the last `decay_fraction`
              (Ibrahim et al. 2024, "Simple and scalable strategies to continually pre-train LLMs")
    rex       f = m + (1 - m) (1 - p) / (1/2 + (1 - p) / 2)   (REX; Chen et al. 2022)

`scope`: `experience` restarts the schedule at every experience (re-warm and re-decay, Gupta et
al. 2023, "How to (re)warm your model?"), T = that experience's updates; `stream` runs one
schedule over the whole stream, T = the stream's updates. Past T the factor stays at f(T).
The default (`constant`, no warmup) multiplies by exactly 1.0: runs are bit-identical to a run
without schedules.
"""
from __future__ import annotations

import math
from pathlib import Path

from avalanche.core import SupervisedPlugin

from cl_bench.rules import at_least, between, each, number_at_least, one_of, positive

SCHEDULES = ("constant", "step", "linear", "cosine", "wsd", "infinite", "rex")
SCOPES = ("experience", "stream")
RULES = {
    "name": one_of(*SCHEDULES),
    "scope": one_of(*SCOPES),
    "warmup_steps": at_least(0),
    "min_lr": number_at_least(0),
    "milestones": each(between(0, 1), "fractions of the span in [0, 1]"),
    "gamma": positive(),
    "decay_fraction": between(0, 1, low_open=True),  # a decay over no updates would be a jump
    "cooldown_fraction": between(0, 1),
    "constant_level": between(0, 1),
}


def factor(s, t: int, total: int, lr: float) -> float:
    """f(t) for the schedule config `s` over a span of `total` updates, base learning rate `lr`."""
    warmup = int(s.warmup_steps)
    if t < warmup:
        return (t + 1) / warmup
    p = min(1.0, (t - warmup) / max(1, total - warmup))
    m = float(s.min_lr) / lr
    name = s.name
    if name == "constant":
        return 1.0
    if name == "step":
        return float(s.gamma) ** sum(p >= float(x) for x in s.milestones)
    if name == "linear":
        return 1.0 - (1.0 - m) * p
    if name == "cosine":
        return m + (1.0 - m) * (1.0 + math.cos(math.pi * p)) / 2.0
    if name == "wsd":
        start = 1.0 - float(s.decay_fraction)
        return 1.0 if p <= start else 1.0 - (1.0 - m) * (p - start) / max(1e-12, 1.0 - start)
    if name == "infinite":
        cool, level, start = float(s.cooldown_fraction), float(s.constant_level), 1.0 - float(s.decay_fraction)
        if p < cool:
            return level + (1.0 - level) * (1.0 + math.cos(math.pi * p / cool)) / 2.0
        return level if p <= start else level - (level - m) * (p - start) / max(1e-12, 1.0 - start)
    if name == "rex":
        return m + (1.0 - m) * (1.0 - p) / (0.5 + 0.5 * (1.0 - p))
    raise ValueError(f"unknown schedule {name!r}")  # RULES rejects it first


def planned_updates(strategy) -> int:
    """Updates the strategy will make in the experience it starts: its own loader knows its length
    (replay loaders, memory-only training included)."""
    return len(strategy.dataloader) * int(strategy.train_epochs)


class LearningRateSchedule(SupervisedPlugin):
    """Sets every parameter group's learning rate before each update and records it.

    The base rate is kept in each group as `base_lr` (it survives Avalanche's optimizer resets and
    checkpoints). Rows (update, experience, lr) go to lr.csv at each experience end, so a crash
    keeps every finished experience's record, as curves.csv does."""

    def __init__(self, s, stream_updates: int, path: Path | None = None):
        super().__init__()
        self.s, self.stream_updates, self.path = s, stream_updates, path
        self.update, self.in_experience, self.span = 0, 0, 1
        self.experience = 0
        self.rows: list[tuple[int, int, float]] = []
        self._written = 0
        if path is not None:
            path.write_text("update,experience,lr\n")

    def before_training_exp(self, strategy, **kwargs):
        self.experience = int(strategy.experience.current_experience)
        self.in_experience = 0
        self.span = planned_updates(strategy)

    def before_training_iteration(self, strategy, **kwargs):
        per_experience = self.s.scope == "experience"
        t, total = (self.in_experience, self.span) if per_experience else (self.update, self.stream_updates)
        for group in strategy.optimizer.param_groups:
            base = group.setdefault("base_lr", group["lr"])
            group["lr"] = base * factor(self.s, t, total, base)
        self.rows.append((self.update, self.experience, float(strategy.optimizer.param_groups[0]["lr"])))

    def after_training_iteration(self, strategy, **kwargs):
        self.update += 1
        self.in_experience += 1

    def after_training_exp(self, strategy, **kwargs):
        if self.path is not None:
            with open(self.path, "a") as f:
                f.writelines(f"{u},{e},{lr:.8g}\n" for u, e, lr in self.rows[self._written:])
        self._written = len(self.rows)

    def state_dict(self) -> dict:
        return {"update": self.update, "in_experience": self.in_experience, "rows": [list(r) for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.update, self.in_experience = int(state["update"]), int(state["in_experience"])
        self.rows = [(int(u), int(e), float(lr)) for u, e, lr in state["rows"]]
        self._written = 0
        if self.path is not None:
            self.path.write_text("update,experience,lr\n")
        self.after_training_exp(None)  # the file starts over with the rows kept

    @property
    def varies(self) -> bool:
        return len({lr for _, _, lr in self.rows}) > 1
