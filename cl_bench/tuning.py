"""Hyperparameter search that a killed job does not waste: Hydra's Optuna sweeper with its study
in SQLite in the sweep folder (`hydra/sweeper=optuna_resumable`, conf/hydra/sweeper/).

What this adds to hydra-optuna-sweeper 1.3's OptunaSweeperImpl, and why:
- Resume. The plugin reopens an existing study (load_if_exists) but then runs n_trials more,
  numbers its job folders from 0 again (onto the finished trials' folders), and leaves the trial
  that was running when the process died RUNNING forever. Here the cut-off trial is launched again
  with its own parameters in its own folder (where cl-bench resumes it from its checkpoint) and
  told to the study, job folder k always holds trial k, only the missing trials are run, and the
  sampler is seeded anew (the first process's seed would repeat its random start-up trials).
- Failed and diverged trials: cl-bench's task returns None for them (cl_bench/cli.py) and the
  plugin records such a trial as FAIL, without a value, so it never reads as a zero that steers
  the sampler; the sweep report lists them at the end (cl_bench/sweeps.py).
- SQLite needs the sweep folder to exist before the study is opened; Hydra makes it later.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)  # Hydra's log lines say what the study does


class _NamesFailedTrials(logging.Filter):
    """The plugin logs a trial without a value as "Return value must be float-castable. Got 'None'";
    for cl-bench that means the run failed or diverged, and the sweep report lists which."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "Got 'None'" in str(record.msg):
            record.msg, record.args = "Trial recorded as FAIL: its run failed or diverged (see the sweep report)", ()
        return True


logging.getLogger("hydra_plugins.hydra_optuna_sweeper._impl").addFilter(_NamesFailedTrials())
RESULTS = "optimization_results.yaml"  # the plugin's summary of the best trial, in the sweep folder


def open_study(storage: str, study_name: str, sampler=None, directions=("maximize",)) -> optuna.Study:
    return optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                               directions=list(directions), load_if_exists=True)


def trial_overrides(trial: optuna.trial.FrozenTrial) -> list[str]:
    """The command-line overrides a trial ran with: its sampled values and the sweep's fixed ones
    (the plugin stores those as user attributes)."""
    return [f"{name}={value}" for name, value in {**trial.params, **trial.user_attrs}.items()]


class ResumableStudy(OptunaSweeperImpl):
    def sweep(self, arguments: list[str]) -> None:
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        study = open_study(self.storage, self.study_name, self.sampler, self._get_directions())
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            self._finish_cut_off(study, trial)
        done = len(study.get_trials(deepcopy=False))
        self.job_idx = done  # the plugin's next trial is number `done`: its folder is `done` too
        if done:
            self._reseed_sampler(done)
            log.info(f"Study {study.study_name}: {done} trials already done, {max(0, self.n_trials - done)} to run")
        if done >= self.n_trials:
            self._write_results(study)
            return
        self.n_trials -= done
        try:
            super().sweep(arguments)
        except ValueError:
            if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
                raise
            log.error("no trial of the study completed; the sweep report below says why")

    def _reseed_sampler(self, done: int) -> None:
        """A resumed study must not draw again what its first process drew: the same seed would
        repeat the random start-up trials. seed + trials done keeps a resumed study repeatable."""
        from hydra.utils import instantiate

        sampler_cfg = self.config.hydra.sweeper.sampler
        if sampler_cfg.get("seed") is not None:
            self.sampler = instantiate(sampler_cfg, seed=int(sampler_cfg.seed) + done)

    def _finish_cut_off(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        log.info(f"Trial {trial.number} was cut off: running it again in its folder")
        value = None
        try:
            value = self.launcher.launch([tuple(trial_overrides(trial))], initial_job_idx=trial.number)[0].return_value
        except Exception as exc:  # the job's own error is in its results.json and the sweep report
            log.error(f"Trial {trial.number} failed: {exc}")
        if value is None or not math.isfinite(float(value)):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial.number, float(value))

    def _write_results(self, study: optuna.Study) -> None:
        completed = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
        if completed:
            best = study.best_trial
            OmegaConf.save(OmegaConf.create({"name": "optuna", "best_params": best.params, "best_value": best.value}),
                           Path(str(self.config.hydra.sweep.dir)) / RESULTS)
