"""Bad input through the real CLI: every case exits non-zero with exactly one line on stderr that
names the offending key or option, the value and what is allowed, before any training starts."""
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cl_bench.validation import group_options

STRATEGY_OPTIONS = sorted(group_options([Path(__file__).resolve().parents[1] / "conf"])["strategy"])

# (command-line arguments, exit status, text the one line must contain)
CASES = [
    # The whole list, from the function the CLI reads it with, so a new strategy cannot break this.
    (["strategy=nope"], 2, "unknown strategy 'nope'; available: " + ", ".join(STRATEGY_OPTIONS)),
    (["scenario=nope"], 2, "unknown scenario 'nope'; available:"),
    (["model=transformer"], 2, "unknown model 'transformer'; available: convnet, mlp, resnet18_reduced"),
    (["optimizer=lion"], 2, "unknown optimizer 'lion'; available: adam, sgd"),
    (["+addons=[refresh,nope]"], 2, "unknown addons 'nope'; available: ema, group_mask, ncm_eval, refresh, view_batch"),
    (["logger=tensorboard"], 2, "unknown logger 'tensorboard'; available: csv, none, wandb"),
    (["+experiment=nope"], 2, "unknown experiment 'nope'"),
    (["-m", "strategy=naive,nope"], 2, "unknown strategy 'nope'"),
    (["strategy.ewc_lambda=5"], 2, "unknown key 'strategy.ewc_lambda' (set to 5); keys allowed under strategy: batch_size_mem, mem_size"),
    (["strategy=classp", "strategy.rule=released"], 2, "strategy.rule must be one of paper, safe_first_step, code, got 'released'"),
    (["+strategy.foo=1"], 2, "unknown key 'strategy.foo'; keys allowed under strategy:"),
    (["foo=3"], 2, "unknown key 'foo' (set to 3); keys allowed at the top: addons, checkpoint, data, deterministic, device"),
    (["train.batch_size=["], 2, "cannot parse the command line"),
    (["train.batch_size=abc"], 2, "train.batch_size must be an integer, got 'abc'"),
    (["train.batch_size=1.5"], 2, "train.batch_size must be an integer, got 1.5"),
    (["train.batch_size=0"], 2, "train.batch_size must be an integer >= 1, got 0"),
    (["train.epochs=0"], 2, "train.epochs must be an int >= 1 or a list of 5 of them, got 0"),
    (["train.epochs=[1,2]"], 2, "train.epochs must be an int >= 1 or a list of 5 of them, got [1, 2]"),
    (["optimizer.lr=-0.1"], 2, "optimizer.lr must be a number > 0, got -0.1"),
    (["optimizer.lr=fast"], 2, "optimizer.lr must be a number, got 'fast'"),
    (["optimizer.momentum=1.5"], 2, "optimizer.momentum must be a number in [0, 1), got 1.5"),
    # The Split-MNIST presets set SGD's momentum; switching the optimizer keeps the key.
    (["+experiment=stability_gap_split_mnist", "scenario=split_digits", "optimizer=adam"], 2,
     "optimizer.momentum is not an argument of torch.optim.Adam; remove it with ~optimizer.momentum"),
    (["optimized_metric=min_acc", "eval=off"], 2, "optimized_metric must be a metric this run produces"),
    (["schedule=wsd", "schedule.decay_fraction=0"], 2, "schedule.decay_fraction must be a number in (0, 1], got 0"),
    (["schedule=cosine", "schedule.warmup_steps=-1"], 2, "schedule.warmup_steps must be an integer >= 0, got -1"),
    (["seed=-1"], 2, "seed must be an integer >= 0, got -1"),
    (["seed=abc"], 2, "seed must be an integer, got 'abc'"),
    (["device=tpu"], 2, "device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    (["scenario.n_experiences=0"], 2, "scenario.n_experiences must be an integer >= 1, got 0"),
    (["scenario.n_experiences=3"], 2, "scenario.n_experiences must divide the 10 classes of digits, got 3"),
    (["scenario.class_order=[0,1,2]"], 2, "scenario.class_order must be a permutation of 0..9"),
    (["scenario.task_labels=maybe"], 2, "scenario.task_labels must be true or false, got 'maybe'"),
    (["strategy.mem_size=-5"], 2, "strategy.mem_size must be an integer >= 1, got -5"),
    (["strategy.storage_policy=fifo"], 2, "strategy.storage_policy must be one of experience_balanced"),
    (["strategy=ewc", "strategy.mode=offline"], 2, "strategy.mode must be one of separate, online"),
    (["strategy=ewc", "strategy.ewc_lambda=-1"], 2, "strategy.ewc_lambda must be a number >= 0, got -1"),
    (["eval.period=0"], 2, "eval.period must be an integer >= 1, got 0"),
    (["eval.samples_per_task=0"], 2, "eval.samples_per_task must be -1 (the full test split) or an integer >= 1, got 0"),
    (["eval.windows=abc"], 2, "eval.windows must be a list, got 'abc'"),
    (["train.precision=fp16"], 2, "train.precision must be one of fp32, bf16, got 'fp16'"),
    (["checkpoint.every_updates=0"], 2, "checkpoint.every_updates must be an integer >= 1, got 0"),
    (["checkpoint.every_seconds=-5"], 2, "checkpoint.every_seconds must be a number > 0, got -5"),
    (["strategy=lamaml", "checkpoint.every_updates=100"], 2,
     "strategy 'lamaml' resumes only from experience boundaries (its state inside an experience is not checkpointed); "
     "remove checkpoint.every_updates"),
    (["eval.schedule=sparse"], 2, "eval.schedule must be one of every, boundary_dense, budget, got 'sparse'"),
    (["eval.schedule=boundary_dense", "eval.dense_updates=0"], 2, "eval.dense_updates must be an integer >= 1, got 0"),
    (["eval.schedule=budget", "eval.budget=0"], 2, "eval.budget must be an integer >= 1, got 0"),
    (["model.hidden_sizes=[]"], 2, "model.hidden_sizes must be a non-empty list of integers >= 1, got []"),
    (["logger=wandb", "logger.wandb.mode=cloud"], 2, "logger.wandb.mode must be one of online, offline, disabled, got 'cloud'"),
    (["scenario=split_mnist", "data.download=false", "data.root=/nonexistent"], 2,
     "dataset 'mnist' not found in /nonexistent/MNIST/raw"),
    (["scenario=power_law_rehearsal", "scenario@scenario.base=split_digits", "scenario.schedule.scale=5"], 2,
     "scenario.schedule: set exactly one of scale, per_phase_budget, total_budget"),
    (["scenario=scole_digits", "scenario.class_weights=skewed"], 2, "scenario.class_weights must be uniform, zipf or a list"),
    (["scenario=fscil_digits", "scenario.n_sessions=9"], 2, "base_classes + n_way * n_sessions = 24 exceeds the 10 classes"),
    (["scenario=split_mnist", "data.download=false", "data.root={damaged}"], 2,
     "MNIST/raw/train-labels-idx1-ubyte.gz: md5"),
]


def run_cli(case, cwd, paths: dict):
    args, _, _ = case
    cwd.mkdir()
    args = [a.format(**paths) for a in args]
    return subprocess.run([sys.executable, "-m", "cl_bench", *args, f"hydra.run.dir={cwd}/run", "hydra.sweep.dir=" + f"{cwd}/sweep"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def damaged_mnist(root: Path, shared_mnist_root: Path) -> Path:
    """Real MNIST with one byte of the training labels' archive changed."""
    shutil.copytree(shared_mnist_root / "MNIST", root / "MNIST")
    labels = root / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    labels.chmod(0o644)
    payload = bytearray(labels.read_bytes())
    payload[-100] ^= 0xFF
    labels.write_bytes(bytes(payload))
    return root


def test_every_bad_input_is_one_clear_line_and_a_nonzero_exit(tmp_path, shared_mnist_root):
    assert len(CASES) >= 25
    paths = {"damaged": damaged_mnist(tmp_path / "damaged", shared_mnist_root)}
    with ThreadPoolExecutor(max_workers=2) as pool:  # one process per case, two at a time
        procs = list(pool.map(lambda ic: run_cli(ic[1], tmp_path / str(ic[0]), paths), enumerate(CASES)))
    problems = []
    for (args, status, text), proc in zip(CASES, procs):
        lines = proc.stderr.strip().splitlines()
        if proc.returncode != status or len(lines) != 1 or not lines[0].startswith("cl-bench: error: ") or text not in lines[0]:
            problems.append(f"{args}: exit {proc.returncode}, stderr {proc.stderr.strip()!r}")
        if "Traceback" in proc.stderr + proc.stdout:
            problems.append(f"{args}: traceback shown")
    assert not problems, "\n".join(problems)
    # nothing trained: no run folder holds a finished result or a model
    assert not list(tmp_path.rglob("model.pt"))


def test_debug_flag_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cl_bench", "seed=-1", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "CL_BENCH_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "seed must be an integer >= 0" in proc.stderr

