"""leaderboards/zoo.md: every registered strategy on the three scenarios of van de Ven et al.
(Split-MNIST class- and task-incremental, Permuted-MNIST domain-incremental) with continual
evaluation, under one set of common settings.

    python leaderboards/zoo.py run --out RUNS [--seeds 0,1,2] [--scenarios class_il,task_il,domain_il] [--jobs 2]
                                  [--skip mer,...]
    python leaderboards/zoo.py table [RUNS] --out leaderboards/zoo.md   # and leaderboards/zoo_<scenario>.png

`table` first adds RUNS' finished runs to leaderboards/zoo_runs/<scenario>.jsonl (one line per run,
replacing a line of the same strategy and seed), then builds every table and figure from those
records: they are committed, so a later session adds seeds instead of rerunning the ones before.
A scenario without records keeps its section of the existing zoo.md, and a strategy without
records keeps its row there (rows from before the records existed).

`run` starts one `cl-bench` process per (scenario, strategy, seed) into RUNS/<scenario>/<strategy>/seed<k>
and skips the runs already finished there, so a killed sweep resumes by running the same command.
Each process gets one thread (OMP_NUM_THREADS=1): `--jobs 2` keeps both cores of the development
machine busy without the two runs fighting over them.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cl_bench.registry import STRATEGIES
from cl_bench.results.leaderboard import first_task_curves
from cl_bench.results.run_folder import FINISHED, all_results, finished_results, write_atomic

# Settings every run shares; the strategy's own hyperparameters come from conf/strategy/<name>.yaml.
# Adam (lr 0.001, batch 128) and the MLP 400-400 as van de Ven et al. (Nature MI 2022) use for every
# method; with SGD lr 0.01 momentum 0.9 instead, SI, MAS and MER diverge on Split-MNIST.
COMMON = ["model=mlp", "optimizer=adam", "eval=continual", "eval.plot=false", "logger=none",
          "train.epochs=1", "train.batch_size=128", "data.download=false"]
MEMORY = 200  # samples every rehearsal method keeps in all (its YAML default; GEM/A-GEM set per experience below)

SCENARIOS = {  # name -> (setting, overrides, experiences)
    "class_il": ("class_incremental", ["scenario=split_mnist", "eval.schedule=every"], 5),
    "task_il": ("task_incremental", ["scenario=split_mnist", "scenario.task_labels=true", "eval.schedule=every"], 5),
    # 10 x 60,000 images: evaluating after every update would cost ~15x the training; the default
    # schedule (every update for 25 after a switch, then every 50th) is within 0.5 points of it
    # (benchmarks/eval_schedules.py).
    "domain_il": ("domain_incremental", ["scenario=permuted_mnist", "eval.schedule=boundary_dense"], 10),
}
TITLES = {"class_il": "Split-MNIST, class-incremental", "task_il": "Split-MNIST, task-incremental (one head per task)",
          "domain_il": "Permuted-MNIST, domain-incremental (10 tasks)"}

FAMILIES = {
    "reference": ["naive", "from_scratch", "cumulative", "joint"],
    "regularisation": ["ewc", "si", "mas", "rwalk", "lwf", "lfl", "classp"],
    "gradient projection": ["gem", "agem"],
    "rehearsal": ["replay", "online_replay", "der", "er_ace", "er_aml", "icarl", "gdumb", "bic", "gss", "mir",
                  "mer", "lamaml", "rar", "scr", "cope"],
    "generative / feature replay": ["generative_replay", "feature_replay"],
    "architectural": ["pnn", "packnet", "cwr_star"],
    "seed methods": ["fast_slow"],
}
FAMILY = {name: family for family, names in FAMILIES.items() for name in names}
# One line per family in the first-task figure, so the plot stays readable.
PLOTTED = ["naive", "joint", "ewc", "lwf", "agem", "replay", "der", "icarl", "generative_replay", "pnn"]


def supported(setting: str) -> list[str]:
    return [name for name in STRATEGIES.names() if setting in STRATEGIES.entry(name).settings]


def overrides(scenario: str, strategy: str, seed: int) -> list[str]:
    _, scenario_overrides, experiences = SCENARIOS[scenario]
    extra = [f"strategy.patterns_per_experience={MEMORY // experiences}"] if strategy in ("gem", "agem") else []
    return [*scenario_overrides, f"strategy={strategy}", f"seed={seed}", *COMMON, *extra]


def run_one(out: Path, scenario: str, strategy: str, seed: int) -> str:
    folder = out / scenario / strategy / f"seed{seed}"
    if finished_results(folder) is not None:
        return f"{scenario} {strategy} seed {seed}: already finished"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = ["cl-bench", *overrides(scenario, strategy, seed), f"hydra.run.dir={folder}"]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "zoo.log", "w") as log:
        rc = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return f"{scenario} {strategy} seed {seed}: exit {rc}"


def run(out: Path, scenarios: list[str], seeds: list[int], jobs: int, skip: set[str] = frozenset()) -> int:
    # A strategy's seeds one after another: a sweep stopped early leaves whole rows but for the strategies
    # it was running.
    todo = [(scenario, strategy, seed) for scenario in scenarios for strategy in supported(SCENARIOS[scenario][0])
            if strategy not in skip for seed in seeds]
    with ThreadPoolExecutor(jobs) as pool:
        for line in pool.map(lambda job: run_one(out, *job), todo):
            print(line, flush=True)
    return 0


RECORDS = Path(__file__).parent / "zoo_runs"


def record(folder: Path, results: dict) -> dict:
    """What the tables and figures need from one finished run, small enough to commit (the run
    folders are scratch: model weights, logs)."""
    curve = first_task_curves({"_dir": str(folder)})
    held = (results.get("held_memory_bytes") or {}).get("total")
    train = results.get("train_time_s")
    evaluation = (results.get("continual_evaluation") or {}).get("eval_time_s", 0.0)
    return {"strategy": results["strategy"], "seed": results["seed"], "status": results["status"],
            "git_commit": results.get("git_commit"), "overrides": results.get("overrides"),
            "metrics": {k: round(v, 6) if isinstance(v, float) else v for k, v in results.get("metrics", {}).items()},
            "held_memory_mb": None if held is None else round(held / 1e6, 3),
            "train_s": None if train is None else round(train - evaluation, 2),
            "first_task": [[i, round(a, 4)] for i, a in zip(*curve)] if curve else []}


def load_records(records: Path, scenario: str) -> list[dict]:
    path = records / f"{scenario}.jsonl"
    if not path.is_file():
        return []
    loaded = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            r = json.loads(line)
            if not {"strategy", "seed", "status", "metrics"} <= r.keys():
                raise ValueError("a record has strategy, seed, status and metrics")
        except ValueError as error:  # json's errors are ValueErrors too
            raise ValueError(f"{path}:{number}: not a zoo record ({error})") from None
        loaded.append(r)
    return loaded


def same_settings(scenario: str, records: list[dict], where: str) -> None:
    """Every run of a table under the zoo's settings as they are now: after a change of COMMON,
    an old record would otherwise sit in a table whose header states other settings."""
    for r in records:
        expected = overrides(scenario, r["strategy"], r["seed"])
        if r.get("overrides") != expected:
            raise ValueError(f"{where}: {r['strategy']} seed {r['seed']} was not run with the zoo's settings: its "
                             f"overrides are {' '.join(r.get('overrides') or [])!r}, the zoo's {' '.join(expected)!r}")


def collect(runs: Path, records: Path) -> int:
    """Add the finished runs under RUNS/<scenario>/ to the records; a run replaces the record of
    its strategy and seed. Returns how many records were added or changed."""
    found = {scenario: [(folder, results) for folder, results in all_results(runs / scenario)
                        if results.get("status") in FINISHED] for scenario in SCENARIOS}
    existing = {scenario: load_records(records, scenario) for scenario in SCENARIOS}
    for scenario, finished in found.items():  # all checked before anything is written
        same_settings(scenario, existing[scenario], str(records / f"{scenario}.jsonl"))
        for folder, results in finished:
            same_settings(scenario, [results], str(folder))
    changed = 0
    for scenario, finished in found.items():
        merged = {(r["strategy"], r["seed"]): r for r in existing[scenario]}
        new = [r for r in (record(folder, results) for folder, results in finished)
               if merged.get((r["strategy"], r["seed"])) != r]
        if not new:
            continue
        merged.update({(r["strategy"], r["seed"]): r for r in new})
        records.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(merged[key], sort_keys=True) + "\n" for key in sorted(merged)]
        write_atomic(records / f"{scenario}.jsonl", lambda f: f.write("".join(lines)))
        changed += len(new)
    return changed


def mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.fmean(values):.{digits}f} ± {scale * std:.{digits}f}"


METRICS = [("ACC", "acc"), ("forgetting", "forgetting"), ("min-ACC", "min_acc"), ("WC-ACC", "wc_acc"),
           ("WF^10", "wf10"), ("gap depth", "sg"), ("recovered", "rec")]


def row(strategy: str, runs: list[dict]) -> list[str]:
    done = [r for r in runs if r["status"] == "completed"]
    cells = [strategy, FAMILY.get(strategy, "other"), str(len(done))]
    diverged = len(runs) - len(done)
    if not done:
        return cells + [f"diverged ({diverged}/{len(runs)})"] + [""] * (len(METRICS) + 2)
    for _, key in METRICS:
        values = [r["metrics"].get(key) for r in done]
        cells.append(mean_std([v for v in values if isinstance(v, (int, float))]))
    held = [r["held_memory_mb"] for r in done if r.get("held_memory_mb") is not None]
    train = [r["train_s"] for r in done if r.get("train_s") is not None]
    cells += [f"{statistics.fmean(held):.1f}" if held else "n/a", f"{statistics.fmean(train):.0f}" if train else "n/a"]
    if diverged:
        cells[0] += f" ({diverged} diverged)"
    return cells


def plot(scenario: str, groups: dict[str, list[dict]], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=150)
    drew = False
    for strategy in PLOTTED:
        curves = [list(zip(*r["first_task"])) for r in groups.get(strategy, []) if r["status"] == "completed" and r["first_task"]]
        if not curves:
            continue
        same = [c for c in curves if c[0] == curves[0][0]]
        ax.plot(curves[0][0], 100 * np.mean([c[1] for c in same], axis=0), lw=1.0, label=f"{strategy} ({len(same)}){' offline: one experience' if strategy == 'joint' else ''}")
        drew = True
    if drew:
        ax.set(xlabel="optimizer updates", ylabel="accuracy on the first task (%)", ylim=(0, 101),
               title=f"{TITLES[scenario]}: first task, mean over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left", ncol=2)
        fig.tight_layout()
        fig.savefig(path)
    plt.close(fig)
    return drew


HEADER = """# The strategy zoo on the three scenarios of van de Ven et al.

Every registered strategy that supports the setting, on Split-MNIST class-incremental, Split-MNIST
task-incremental (task labels given, one head per task) and Permuted-MNIST domain-incremental
(van de Ven, Tuytelaars & Tolias, Nature Machine Intelligence 2022), with continual evaluation.

Common settings: MLP 784-400-400 (ReLU), Adam lr 0.001, batch 128, 1 epoch per experience
(Split-MNIST: ~94 updates per task; Permuted-MNIST: ~469), rehearsal memory 200 samples in all for
every method that keeps one (GEM / A-GEM: 200 / number of experiences per experience), the
strategy's other hyperparameters from `conf/strategy/<name>.yaml` (defaults and their papers in
its comments). Adam is torch's fused kernel from commit 42b45a1 on and its for-loop kernel before:
the same update up to float rounding (of the rows here, only MER's on Permuted-MNIST ran fused).
Continual evaluation: a fixed 1000-sample subset of each seen task's test split after every update
(Permuted-MNIST: after each of a task's first 25 updates, then every 50th, because 10 tasks x 469
updates x up to 10 tasks would cost ~15x the training; that schedule is within 0.5 points of every
update on min-ACC, benchmarks/eval_schedules.py) and before each task's first update; ACC and
forgetting are task-end numbers on the full test splits.

Columns (definitions in `leaderboards/README.md` and `cl_bench/evaluation/stability.py`): ACC,
forgetting, min-ACC, WC-ACC, WF^10 as there; gap depth (SG): a seen task's accuracy just before a
task switch minus its lowest point while the next task is learned; recovered (REC): its accuracy
at the end of that task minus the same lowest point (both averaged over old tasks, then over
switches); held memory: what the strategy keeps besides the model (optimizer state, buffers,
importances, model copies); train: seconds of training without the evaluation. Mean ± std over
seeds; rows by ACC. A row that reads "diverged (k/n)" had non-finite weights or loss in k of n
runs (the run stops with exit 3).

Regenerate the tables and figures (the hand-written "What the tables show" section is kept;
about 2 h 30 for Split-MNIST x 3 seeds on the 2-core development machine, MER alone ~11-14 min a run):

    CL_BENCH_DATA=../shared/data python leaderboards/zoo.py run --out RUNS --seeds 0,1,2
    python leaderboards/zoo.py table RUNS --out leaderboards/zoo.md

Every run behind a table is a line of `leaderboards/zoo_runs/<scenario>.jsonl` (metrics, commit,
first-task curve): a new seed is added by running it alone and the same `table` command.
"""


NOTES = "## What the tables show"  # where the hand-written part of zoo.md begins


def section(text: str, scenario: str) -> str | None:
    """A scenario's section of an earlier zoo.md, from its heading to the next one."""
    start = text.find(f"## {TITLES[scenario]}\n")
    if start < 0:
        return None
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)].strip("\n") + "\n"


def not_run(scenario: str, ran) -> str:
    return ", ".join(sorted(set(supported(SCENARIOS[scenario][0])) - set(ran))) or "none"


def kept(text: str, scenario: str) -> str:
    """A kept section with its "not run" list brought up to date with the registry: a strategy
    registered since the section was written is named there, not silently missing."""
    rows = [r[0] for r in table_rows(text)]
    return re.sub(r"not run: [^.]*\.", lambda _: f"not run: {not_run(scenario, rows)}.", text, count=1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of a section's table rows, without the header row."""
    return [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| ")][1:]


def carried(earlier: str | None, scenario: str, ran) -> tuple[list[list[str]], list[str], list[str]]:
    """From an earlier section: the rows of registered strategies without records, its commits and
    its figure line, so that recording one more strategy adds its row instead of dropping the others."""
    if not earlier:
        return [], [], []
    wanted = set(supported(SCENARIOS[scenario][0])) - set(ran)
    rows = [r for r in table_rows(earlier) if r[0].split(" ")[0] in wanted]  # "name (k diverged)"
    commits = re.search(r"commits ([^;]*);", earlier)
    figure = [line for line in earlier.splitlines() if line.startswith("![")]
    return rows, (commits.group(1).split(", ") if commits and rows else []), figure


def acc_order(table_row: list[str]) -> float:
    """Rows by ACC, best first; a diverged row (no number) last."""
    return -float(table_row[3].split(" ")[0]) if table_row[3][:1].isdigit() else 1


def table(records: Path, figures: Path, old: str = "") -> str:
    """The tables of the scenarios with records; a scenario without keeps its section of `old`,
    and a strategy without keeps its row there."""
    lines = [HEADER]
    for scenario in SCENARIOS:
        groups = defaultdict(list)
        recorded = load_records(records, scenario)
        same_settings(scenario, recorded, str(records / f"{scenario}.jsonl"))
        for r in sorted(recorded, key=lambda r: r["seed"]):
            groups[r["strategy"]].append(r)
        earlier = section(old, scenario)
        if not groups:
            if earlier:
                lines.append(kept(earlier, scenario))
            continue
        old_rows, old_commits, old_figure = carried(earlier, scenario, groups)
        header = ["strategy", "family", "seeds"] + [label + " (%)" for label, _ in METRICS] + ["held memory (MB)", "train (s)"]
        rows = sorted([row(s, rs) for s, rs in groups.items()] + old_rows, key=acc_order)
        commits = sorted({(r.get("git_commit") or "?")[:10] for rs in groups.values() for r in rs} | set(old_commits))
        ran = [*groups, *(r[0].split(" ")[0] for r in old_rows)]
        lines += [f"## {TITLES[scenario]}", "", (f"`{' '.join(['cl-bench', *overrides(scenario, '<strategy>', 0)])}`; "
                  f"commits {', '.join(commits)}; not run: {not_run(scenario, ran)}."), "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        figure = figures / f"zoo_{scenario}.png"
        if any(r[0].split(" ")[0] in PLOTTED for r in old_rows):  # carried rows have no curves to draw
            lines += ["", *old_figure] if old_figure else []
        elif plot(scenario, groups, figure):
            lines += ["", f"![first-task accuracy, {TITLES[scenario]}]({figure.name})"]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--seeds", default="0,1,2")
    r.add_argument("--scenarios", default=",".join(SCENARIOS))
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--skip", default="", help="strategies not to run (a table's 'not run' list names them)")
    t = sub.add_parser("table")
    t.add_argument("runs", type=Path, nargs="?", help="run folders to add to the records first")
    t.add_argument("--records", type=Path, default=RECORDS)
    t.add_argument("--figures", type=Path, default=Path(__file__).parent)
    t.add_argument("--out", type=Path, help="write here, keeping the file's hand-written section from NOTES on "
                                            "and the sections of scenarios and rows of strategies without records")
    args = parser.parse_args(argv)
    if args.command == "run":
        unknown = [s for s in args.scenarios.split(",") if s not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario '{unknown[0]}'; choose from {', '.join(SCENARIOS)}")
        skip = {s for s in args.skip.split(",") if s}
        if skip - set(STRATEGIES.names()):
            parser.error(f"unknown strategy '{sorted(skip - set(STRATEGIES.names()))[0]}' in --skip; see `cl-bench list strategies`")
        return run(args.out, args.scenarios.split(","), [int(s) for s in args.seeds.split(",")], args.jobs, skip)
    if args.runs is not None:
        if not args.runs.is_dir():
            parser.error(f"runs folder '{args.runs}' does not exist")
        try:
            print(f"{collect(args.runs, args.records)} records added or changed in {args.records}", file=sys.stderr)
        except ValueError as error:
            parser.error(str(error))
    old = args.out.read_text() if args.out is not None and args.out.is_file() else ""
    try:
        text = table(args.records, args.figures, old)
    except ValueError as error:
        parser.error(str(error))
    if args.out is None:
        print(text)
        return 0
    notes = old[old.index(NOTES):] if NOTES in old else ""
    args.out.write_text(text + ("\n" + notes if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
