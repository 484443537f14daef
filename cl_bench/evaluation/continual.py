"""Continual evaluation: accuracy on every seen task after the optimizer updates its schedule
names, plus once before the first update of each experience and
once after its last (De Lange et al., ICLR 2023; schedules in cl_bench/evaluation/schedule.py).

Cheap by construction: each task's evaluation subset is drawn once, kept on the training device
as one concatenated tensor with a task-id vector, evaluated in a few large forward passes, and
per-task accuracies come from one bincount. Results stay on the device until the experience
ends, so an evaluation does not even wait for the host. Evaluation draws no random numbers
from the global generators and restores every module's train/eval mode, so training is
identical with or without it.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from avalanche.models import MultiTaskModule
from avalanche.training.plugins import SupervisedPlugin

from cl_bench.evaluation import schedule as schedules
from cl_bench.evaluation.accuracy import count_correct
from cl_bench.evaluation.stability import Curves, continual_metrics
from cl_bench.rules import Rule, at_least, each, number_at_least
from cl_bench.schedules import planned_updates
from cl_bench.scenarios.base import Experience

# The `eval` group's keys (conf/eval/continual.yaml), checked before anything is built.
RULES = {
    "period": at_least(1),
    "samples_per_task": Rule(lambda v: isinstance(v, int) and (v == -1 or v >= 1),
                             "-1 (the full test split) or an integer >= 1"),
    "windows": each(at_least(1), "integers >= 1"),
    "lca_beta": at_least(1),
    "recovery_eps": number_at_least(0),
    **schedules.RULES,
}


class ContinualEvaluationPlugin(SupervisedPlugin):
    def __init__(
        self,
        experiences: list[Experience],
        device: torch.device,
        *,
        samples_per_task: int = 1000,
        schedule: schedules.Schedule = schedules.Schedule(),
        include_unseen: bool = False,
        resample_each_eval: bool = False,
        batch_size: int = 4096,
        seed: int = 0,
        all_tasks_seen: bool = False,
        curves_path=None,
    ):
        super().__init__()
        RULES["period"]("eval.period", schedule.period)
        RULES["samples_per_task"]("eval.samples_per_task", samples_per_task)
        self.schedule = schedule
        self.include_unseen = include_unseen
        self.resample_each_eval = resample_each_eval
        self.batch_size = batch_size
        self.all_tasks_seen = all_tasks_seen  # joint training sees every task from the start
        self.n_tasks = len(experiences)
        self.device = device
        self.evaluated_model: torch.nn.Module | None = None  # an add-on's view of the model (EMA, NCM); None: the model
        # A private generator: evaluation must not consume the training RNG streams.
        self.generator = torch.Generator().manual_seed(seed)
        self.sizes = [len(e.y_test) if samples_per_task == -1 else min(samples_per_task, len(e.y_test))
                      for e in experiences]
        self.experiences = experiences
        self._draw_subsets()
        self.updates = 0
        self.current = 0
        self.in_experience, self.span = 0, 1  # updates done and planned in the current experience
        self.last_evaluated = -1  # updates done at the latest evaluation
        self.seconds = 0.0  # host time spent evaluating (on GPU: launch time unless synced)
        self.task_end: list[int] = []
        self._pending: list[tuple[int, int, torch.Tensor]] = []  # (iteration, experience, accs on device)
        self.rows: list[tuple[int, int, np.ndarray]] = []
        # Appended at every experience end, so a crash keeps every finished experience's curves.
        self.curves_path = curves_path
        self._write_curves_header()

    def _write_curves_header(self) -> None:
        if self.curves_path is not None:
            with open(self.curves_path, "w") as f:
                f.write("iteration,experience,task,accuracy\n")

    def _draw_subsets(self) -> None:
        xs, ys, tasks = [], [], []
        for i, (e, n) in enumerate(zip(self.experiences, self.sizes)):
            idx = torch.randperm(len(e.y_test), generator=self.generator)[:n]
            xs.append(e.x_test[idx])
            ys.append(e.y_test[idx])
            tasks.append(torch.full((n,), i, dtype=torch.long))
        self.x = torch.cat(xs).to(self.device)
        self.y = torch.cat(ys).to(self.device)
        self.task_ids = torch.cat(tasks).to(self.device)
        self.offsets = [int(o) for o in np.cumsum([0, *self.sizes])]
        self.task_sizes = torch.tensor(self.sizes, dtype=torch.float32, device=self.device)

    # --- the evaluation itself ------------------------------------------------------------------

    def _n_evaluated_tasks(self) -> int:
        if self.include_unseen or self.all_tasks_seen:
            return self.n_tasks
        return self.current + 1

    def evaluate(self, model: torch.nn.Module) -> torch.Tensor:
        """Accuracy per evaluated task, as a tensor on the device (no host sync)."""
        if self.resample_each_eval:
            self._draw_subsets()
        n_tasks = self._n_evaluated_tasks()
        if isinstance(model, MultiTaskModule):
            # One pass per task with its label known on the host: given a label tensor, the
            # model's dispatch would read the labels back from the device (torch.unique, .item()).
            correct = torch.cat([
                count_correct(model, self.x[a:b], self.y[a:b], self.experiences[i].task_label, self.device, self.batch_size)
                for i, (a, b) in enumerate(zip(self.offsets[:n_tasks], self.offsets[1:n_tasks + 1]))])
        else:
            end = int(self.offsets[n_tasks])  # tasks are stored in order: the seen ones are a prefix
            correct = count_correct(model, self.x[:end], self.y[:end], 0, self.device, self.batch_size,
                                    groups=self.task_ids[:end], n_groups=n_tasks)
        return correct / self.task_sizes[:n_tasks]

    def _record(self, strategy) -> None:
        t0 = time.perf_counter()
        model = strategy.model if self.evaluated_model is None else self.evaluated_model
        self._pending.append((self.updates, self.current, self.evaluate(model)))
        self.last_evaluated = self.updates
        self.seconds += time.perf_counter() - t0

    # --- Avalanche callbacks --------------------------------------------------------------------

    def before_training_exp(self, strategy, **kwargs):
        self.current = len(self.task_end)
        self.in_experience = 0
        self.span = planned_updates(strategy)
        self._record(strategy)

    def after_training_iteration(self, strategy, **kwargs):
        self.updates += 1
        self.in_experience += 1
        if self.schedule.due(self.updates, self.in_experience, self.span):
            self._record(strategy)

    def after_training_exp(self, strategy, **kwargs):
        if self.last_evaluated != self.updates:  # the model after the experience's last update
            self._record(strategy)
        self.task_end.append(self.updates)
        self.flush()

    def flush(self) -> None:
        """Move pending results to the host: one sync for a whole experience."""
        if not self._pending:
            return
        accs = torch.nn.utils.rnn.pad_sequence([a for _, _, a in self._pending], batch_first=True,
                                               padding_value=float("nan")).cpu().numpy()
        new_rows = []
        for (iteration, exp, _), row in zip(self._pending, accs):
            full = np.full(self.n_tasks, np.nan)
            full[:len(row)] = row
            new_rows.append((iteration, exp, full))
        self._pending.clear()
        self.rows += new_rows
        self._append_to_curves_file(new_rows)

    def _append_to_curves_file(self, rows) -> None:
        if self.curves_path is not None:
            with open(self.curves_path, "a") as f:
                for iteration, exp, full in rows:
                    for task in np.nonzero(~np.isnan(full))[0]:
                        f.write(f"{iteration},{exp},{task},{full[task]:.6g}\n")

    # --- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        self.flush()
        return {
            "updates": self.updates, "current": self.current, "seconds": self.seconds, "task_end": list(self.task_end),
            "in_experience": self.in_experience, "last_evaluated": self.last_evaluated,  # inside an experience
            "generator": self.generator.get_state(),
            "iterations": [r[0] for r in self.rows], "experiences": [r[1] for r in self.rows],
            "accuracy": torch.from_numpy(np.stack([r[2] for r in self.rows])) if self.rows else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.updates, self.current, self.seconds = state["updates"], state["current"], state["seconds"]
        self.in_experience, self.last_evaluated = state["in_experience"], state["last_evaluated"]
        self.task_end = list(state["task_end"])
        self.generator.set_state(state["generator"].cpu())
        accuracy = [] if state["accuracy"] is None else state["accuracy"].cpu().numpy()
        self.rows = list(zip(state["iterations"], state["experiences"], accuracy))
        self._pending.clear()
        self._write_curves_header()
        self._append_to_curves_file(self.rows)  # the file starts over with the rows kept

    # --- results --------------------------------------------------------------------------------

    def curves(self) -> Curves:
        self.flush()
        return Curves(
            iteration=np.array([r[0] for r in self.rows], dtype=int),
            experience=np.array([r[1] for r in self.rows], dtype=int),
            accuracy=np.stack([r[2] for r in self.rows]) if self.rows else np.zeros((0, self.n_tasks)),
            task_end=list(self.task_end),
        )


def load_curves(path) -> Curves:
    """A run's curves.csv back as Curves; experience k ends at its last evaluation's update count
    (every schedule evaluates after an experience's last update)."""
    import csv

    with open(path) as f:
        rows = [(int(r["iteration"]), int(r["experience"]), int(r["task"]), float(r["accuracy"])) for r in csv.DictReader(f)]
    points = sorted({(it, exp) for it, exp, _, _ in rows})
    index = {p: r for r, p in enumerate(points)}
    n_experiences = max(exp for _, exp in points) + 1
    accuracy = np.full((len(points), max(n_experiences, max(t for _, _, t, _ in rows) + 1)), np.nan)
    for it, exp, task, acc in rows:
        accuracy[index[(it, exp)], task] = acc
    task_end = [max(it for it, exp in points if exp == k) for k in range(n_experiences)]
    return Curves(np.array([p[0] for p in points]), np.array([p[1] for p in points]), accuracy, task_end)


# --- the `eval` config group --------------------------------------------------------------------

def from_config(e, scenario, device, batch_size: int, curves_path, all_tasks_seen: bool):
    """The evaluator `eval=continual` asks for, or None for `eval=off`."""
    if e.name == "off":
        return None
    schedule = schedules.Schedule(str(e.schedule), int(e.period), int(e.dense_updates), int(e.sparse_period), int(e.budget))
    return ContinualEvaluationPlugin(
        scenario.evaluation_sets, device, samples_per_task=int(e.samples_per_task), schedule=schedule,
        include_unseen=bool(e.include_unseen), resample_each_eval=bool(e.resample_each_eval),
        batch_size=batch_size, seed=int(e.subset_seed), all_tasks_seen=all_tasks_seen, curves_path=curves_path,
    )


def summarize(e, plugin: ContinualEvaluationPlugin, follows_tasks: bool) -> tuple[dict, dict, Curves]:
    """(stability metrics, the protocol they depend on, the curves). The metrics follow one task
    from its training on; test sets that are not one per training experience (SCoLe's per-class
    sets) only get their curves recorded."""
    curves = plugin.curves()
    metrics = continual_metrics(curves, windows=tuple(int(w) for w in e.windows), beta=int(e.lca_beta),
                                eps=float(e.recovery_eps)) if follows_tasks else {}
    protocol = {
        "schedule": str(e.schedule), "period": int(e.period), "dense_updates": int(e.dense_updates),
        "sparse_period": int(e.sparse_period), "budget": int(e.budget), "samples_per_task": plugin.sizes, "subset_seed": int(e.subset_seed),
        "resample_each_eval": bool(e.resample_each_eval), "include_unseen": bool(e.include_unseen),
        "windows": [int(w) for w in e.windows], "lca_beta": int(e.lca_beta), "recovery_eps": float(e.recovery_eps),
        "indexing": "after the updates the schedule names, plus one before each experience's first update and one after "
                    "its last; windows and LCA counted in training steps (updates and experience switches)",
        "evaluations": len(curves.iteration), "eval_time_s": plugin.seconds,
    }
    return metrics, protocol, curves
