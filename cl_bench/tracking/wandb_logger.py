"""`logger=wandb`: Weights & Biases through its own API (Avalanche's WandBLogger is broken with
current wandb). Offline by default: runs land in <run dir>/wandb and `wandb sync` uploads them.

What a run holds: the resolved config (plus `setting`, the overrides without seed, to group
seeds), one chart per task of continual accuracy against training iteration
(`continual/task_i`, x = `iteration`), task-end accuracies (`task_end/task_i`, x = `experience`),
the learning rate of every update (`train/lr`, x = `update`, the update's 0-based index: lr.csv),
the summary metrics, and the stability-gap plot. Runs of one sweep share a W&B group. A run
resumed from a checkpoint continues the same W&B run (its id is in the checkpoint,
`resume="allow"`), so its charts hold each point once: online, it logs only what follows the
checkpoint; offline, its folder holds the whole history again (`wandb sync` of the latest folder
of a run id replaces the earlier ones).
"""
from __future__ import annotations

import numpy as np

from cl_bench.registry import register_logger
from cl_bench.rules import number_at_least, one_of
from cl_bench.tracking.base import RunInfo, Tracker

MODES = ("online", "offline", "disabled")


class WandbTracker(Tracker):
    name = "wandb"

    def __init__(self, mode: str = "offline", project: str = "cl-bench", entity: str | None = None,
                 group: str | None = None, tags=(), init_timeout: float = 30.0):
        self.mode, self.project, self.entity, self.group = mode, project, entity, group
        self.tags, self.init_timeout = list(tags), init_timeout
        self.run = None
        self.resume_id: str | None = None

    def state_dict(self) -> dict:
        return {"id": self.run.id} if self.run is not None else {}

    def resume(self, state: dict) -> bool:
        self.resume_id = state.get("id")
        # Online, W&B holds what the run logged before the checkpoint: the run continues there.
        # Offline, each attempt writes its own folder, and syncing a later folder of the same id
        # replaces what an earlier one sent (wandb/wandb#3841): the later folder gets it all again.
        return self.resume_id is not None and self.mode == "online"

    def start(self, config: dict, info: RunInfo) -> None:
        import wandb

        self.run = wandb.init(
            id=self.resume_id, resume="allow" if self.resume_id else None,
            project=self.project, entity=self.entity, group=self.group or info.group, name=info.name,
            tags=self.tags, config={**config, "setting": info.setting}, dir=str(info.output_dir), mode=self.mode,
            reinit="finish_previous",  # Hydra runs sweep jobs in one process: never reuse a run
            settings=wandb.Settings(init_timeout=self.init_timeout, silent=True, console="off",
                                    x_disable_stats=True, disable_git=True),
        )
        self.run.define_metric("iteration")
        self.run.define_metric("continual/*", step_metric="iteration")
        self.run.define_metric("experience")
        self.run.define_metric("task_end/*", step_metric="experience")
        self.run.define_metric("update")
        self.run.define_metric("train/*", step_metric="update")

    def log_experience(self, experience, curve_rows, task_end) -> None:
        for iteration, _, accuracy in curve_rows:
            seen = {f"continual/task_{t}": float(a) for t, a in enumerate(accuracy) if not np.isnan(a)}
            self.run.log({"iteration": int(iteration), **seen})
        self.run.log({"experience": experience, **{f"task_end/task_{t}": a for t, a in enumerate(task_end)}})

    def log_learning_rates(self, rows) -> None:
        for update, experience, lr in rows:
            self.run.log({"update": int(update), "train/lr": float(lr), "train/experience": int(experience)})

    def log_summary(self, results, files) -> None:
        import wandb

        for key, value in results["metrics"].items():
            if isinstance(value, (int, float)):
                self.run.summary[key] = value
        for key in ("status", "train_time_s", "wall_time_s", "held_memory_bytes"):
            if key in results:
                self.run.summary[key] = results[key]
        if "curves_plot" in files and files["curves_plot"].is_file():
            self.run.log({"plots/stability_gap": wandb.Image(str(files["curves_plot"]))})

    def finish(self, failed: bool) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None


@register_logger("wandb", rules={"mode": one_of(*MODES), "init_timeout": number_at_least(0)})
def build(cfg) -> WandbTracker:
    return WandbTracker(mode=str(cfg.mode), project=cfg.project, entity=cfg.get("entity"), group=cfg.get("group"),
                        tags=list(cfg.get("tags") or []), init_timeout=float(cfg.get("init_timeout", 30)))
