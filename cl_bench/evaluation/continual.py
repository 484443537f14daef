"""Continual evaluation: accuracy on every seen task after every `period` optimizer updates,
plus once before the first update of each experience (De Lange et al., ICLR 2023).

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

from cl_bench.evaluation.stability import Curves
from cl_bench.scenarios.base import Experience


class ContinualEvaluationPlugin(SupervisedPlugin):
    def __init__(
        self,
        experiences: list[Experience],
        device: torch.device,
        *,
        samples_per_task: int = 1000,
        period: int = 1,
        include_unseen: bool = False,
        resample_each_eval: bool = False,
        batch_size: int = 4096,
        seed: int = 0,
        all_tasks_seen: bool = False,
        curves_path=None,
    ):
        super().__init__()
        if period < 1:
            raise ValueError(f"eval.period must be >= 1, got {period}")
        if samples_per_task == 0 or samples_per_task < -1:
            raise ValueError(f"eval.samples_per_task must be -1 (full test split) or >= 1, got {samples_per_task}")
        self.period = period
        self.include_unseen = include_unseen
        self.resample_each_eval = resample_each_eval
        self.batch_size = batch_size
        self.all_tasks_seen = all_tasks_seen  # joint training sees every task from the start
        self.n_tasks = len(experiences)
        self.device = device
        # A private generator: evaluation must not consume the training RNG streams.
        self.generator = torch.Generator().manual_seed(seed)
        self.sizes = [len(e.y_test) if samples_per_task == -1 else min(samples_per_task, len(e.y_test))
                      for e in experiences]
        self.experiences = experiences
        self._draw_subsets()
        self.updates = 0
        self.current = 0
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
        xs, ys, tasks, labels = [], [], [], []
        for i, (e, n) in enumerate(zip(self.experiences, self.sizes)):
            idx = torch.randperm(len(e.y_test), generator=self.generator)[:n]
            xs.append(e.x_test[idx])
            ys.append(e.y_test[idx])
            tasks.append(torch.full((n,), i, dtype=torch.long))
            labels.append(torch.full((n,), e.task_label, dtype=torch.long))
        self.x = torch.cat(xs).to(self.device)
        self.y = torch.cat(ys).to(self.device)
        self.task_ids = torch.cat(tasks).to(self.device)
        self.task_labels = torch.cat(labels).to(self.device)
        self.offsets = np.cumsum([0, *self.sizes])
        self.task_sizes = torch.tensor(self.sizes, dtype=torch.float32, device=self.device)

    # --- the evaluation itself ------------------------------------------------------------------

    def _n_evaluated_tasks(self) -> int:
        if self.include_unseen or self.all_tasks_seen:
            return self.n_tasks
        return self.current + 1

    @torch.inference_mode()
    def evaluate(self, model: torch.nn.Module) -> torch.Tensor:
        """Accuracy per evaluated task, as a tensor on the device (no host sync)."""
        if self.resample_each_eval:
            self._draw_subsets()
        n_tasks = self._n_evaluated_tasks()
        end = int(self.offsets[n_tasks])  # tasks are stored in order: the seen ones are a prefix
        modes = [m.training for m in model.modules()]
        model.eval()
        try:
            correct = torch.zeros(n_tasks, device=self.device)
            multi_head = isinstance(model, MultiTaskModule)
            for start in range(0, end, self.batch_size):
                stop = min(start + self.batch_size, end)
                x = self.x[start:stop]
                logits = model(x, self.task_labels[start:stop]) if multi_head else model(x)
                hits = (logits.argmax(dim=1) == self.y[start:stop]).float()
                correct += torch.bincount(self.task_ids[start:stop], weights=hits, minlength=n_tasks)[:n_tasks]
        finally:
            for m, mode in zip(model.modules(), modes):
                m.training = mode
        return correct / self.task_sizes[:n_tasks]

    def _record(self, strategy) -> None:
        t0 = time.perf_counter()
        self._pending.append((self.updates, self.current, self.evaluate(strategy.model)))
        self.seconds += time.perf_counter() - t0

    # --- Avalanche callbacks --------------------------------------------------------------------

    def before_training_exp(self, strategy, **kwargs):
        self.current = len(self.task_end)
        self._record(strategy)

    def after_training_iteration(self, strategy, **kwargs):
        self.updates += 1
        if self.updates % self.period == 0:
            self._record(strategy)

    def after_training_exp(self, strategy, **kwargs):
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
            "generator": self.generator.get_state(),
            "iterations": [r[0] for r in self.rows], "experiences": [r[1] for r in self.rows],
            "accuracy": torch.from_numpy(np.stack([r[2] for r in self.rows])) if self.rows else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.updates, self.current, self.seconds = state["updates"], state["current"], state["seconds"]
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
