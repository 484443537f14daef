"""Continual-evaluation schedules: what each costs and what it changes, against `every` in one run.

fidelity  For each stability-gap setting, one run evaluates after every update (`every`, the
          reference). A sparser schedule records exactly the reference's points it names
          (evaluation never changes training; tests/test_eval_schedules.py checks a real sparse run
          against this), so each candidate's curves are `schedule.thin(reference)` and its metric
          errors are exact. Its evaluation seconds are the reference's, scaled by its share of the
          forward passes (seen tasks x samples, summed over evaluations); the chosen schedule is
          also run for real, which measures them. Target: >= 5x fewer evaluations in every setting,
          min-ACC within 0.5 points, WC-ACC / WF^10 / gap depth within 1 point.
growth    End-to-end seconds against the stream's length (Permuted-MNIST, 5..50 experiences, ER,
          1 epoch): cl-bench with evaluation off, `every`, the chosen schedule, and plain Avalanche
          0.6.0 with periodic evaluation (`eval_every=1, peval_mode="iteration"` on the same
          1000-sample test subsets) until one of its runs passes --avalanche-limit seconds.

    python benchmarks/eval_schedules.py fidelity --runs /tmp/eval_schedules   # ~25 min on 2 CPU cores
    python benchmarks/eval_schedules.py growth --runs /tmp/eval_schedules     # ~30 min
Runs are kept in --runs (a finished run is not trained again), tables and the figure go to --out.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cl_bench.evaluation.continual import load_curves  # noqa: E402
from cl_bench.evaluation.schedule import Schedule, thin  # noqa: E402
from cl_bench.evaluation.stability import Curves, continual_metrics  # noqa: E402

# The 20-task stream is also growth's: its runs are shared.
PERMUTED = ["scenario=permuted_mnist", "strategy=replay", "strategy.mem_size=200", "model.hidden_sizes=[400,400]",
            "optimizer.lr=0.01", "optimizer.momentum=0.9", "train.epochs=1", "train.batch_size=128"]
SETTINGS = {
    "split_mnist_er": ["+experiment=stability_gap_split_mnist"],
    "split_mnist_finetune": ["+experiment=stability_gap_finetune_split_mnist"],
    "rotated_mnist_10deg": ["+experiment=stability_gap_rotated_mnist", "scenario.angle_step=10"],
    "rotated_mnist_80deg": ["+experiment=stability_gap_rotated_mnist", "scenario.angle_step=80"],
    "permuted_mnist_20": [*PERMUTED, "scenario.n_experiences=20"],
}
CANDIDATES = {
    "every, period 5": Schedule("every", period=5),
    "every, period 10": Schedule("every", period=10),
    "boundary_dense 25, then every 50": Schedule("boundary_dense", dense_updates=25, sparse_period=50),
    "boundary_dense 50, then every 50": Schedule("boundary_dense", dense_updates=50, sparse_period=50),
    "boundary_dense 50, then every 25": Schedule("boundary_dense", dense_updates=50, sparse_period=25),
    "boundary_dense 100, then every 50": Schedule("boundary_dense", dense_updates=100, sparse_period=50),
    "budget 10": Schedule("budget", budget=10),
    "budget 20": Schedule("budget", budget=20),
    "budget 30": Schedule("budget", budget=30),
    "budget 50": Schedule("budget", budget=50),
}
# metric -> the largest error the target allows (accuracy points as fractions)
TARGET = {"min_acc": 0.005, "wc_acc": 0.01, "wf10": 0.01, "sg": 0.01}
REDUCTION = 5.0
GROWTH_SIZES = (5, 10, 20, 50)
EVERY = ["eval.schedule=every", "eval.period=1"]  # the reference protocol


def report(**fields) -> None:
    print(json.dumps(fields), flush=True)


def overrides_for(schedule: Schedule) -> list[str]:
    return [f"eval.schedule={schedule.name}", f"eval.period={schedule.period}",
            f"eval.dense_updates={schedule.dense_updates}", f"eval.sparse_period={schedule.sparse_period}",
            f"eval.budget={schedule.budget}"]


def cl_bench(out: Path, overrides: list[str], data_root: Path) -> dict:
    """One run in its own folder (kept: a finished run is read back, not trained again)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cl_bench.cli import CONFIG_DIR
    from cl_bench.run import run

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            f"data.root={data_root}", "data.download=false", "logger=none", "device=cpu", "train.eval_batch_size=1024",
            *overrides, *([] if "eval=off" in overrides else ["eval.plot=false"])])
    results = run(cfg, out)
    if results["status"] != "completed":
        sys.exit(f"eval_schedules: {out} ended {results['status']}: {results.get('error')}")
    return results


def forwards(c: Curves) -> int:
    """Evaluated (task, evaluation) pairs: the evaluation work, up to the samples per task."""
    return int((~np.isnan(c.accuracy)).sum())


def metrics_of(c: Curves) -> dict:
    m = continual_metrics(c, windows=(10,))
    return {k: m[k] for k in ("min_acc", "wc_acc", "wf10", "sg", "recovery_iters")}


def fidelity(args) -> dict:
    rows, reference = [], {}
    for name, overrides in SETTINGS.items():
        results = cl_bench(args.runs / name / "every", [*overrides, *EVERY], args.data_root)
        dense = load_curves(args.runs / name / "every" / "curves.csv")
        reference[name] = (results, dense)
        truth = metrics_of(dense)
        report(setting=name, schedule="every", evaluations=len(dense.iteration), eval_s=results["continual_evaluation"]["eval_time_s"],
               train_s=results["train_time_s"], **truth)
        for label, schedule in CANDIDATES.items():
            sparse = thin(dense, schedule)
            got = metrics_of(sparse)
            errors = {k: (None if got[k] is None or truth[k] is None else abs(got[k] - truth[k])) for k in got}
            rows.append({"setting": name, "schedule": label, "evaluations": len(sparse.iteration),
                         "reduction": len(dense.iteration) / len(sparse.iteration),
                         "eval_s_estimated": results["continual_evaluation"]["eval_time_s"] * forwards(sparse) / forwards(dense),
                         "errors": errors})
            report(**rows[-1])
    meets = {label: all(r["reduction"] >= REDUCTION and all(r["errors"][k] is not None and r["errors"][k] <= t
                                                            for k, t in TARGET.items())
                        for r in rows if r["schedule"] == label) for label in CANDIDATES}
    passing = [label for label in CANDIDATES if meets[label]]
    best = max(passing, key=lambda label: min(r["reduction"] for r in rows if r["schedule"] == label)) if passing else None
    measured = {}
    if best is not None:  # run it for real: its evaluation seconds measured, not scaled
        for name, overrides in SETTINGS.items():
            results = cl_bench(args.runs / name / "best", [*overrides, *overrides_for(CANDIDATES[best])], args.data_root)
            measured[name] = {"eval_s": results["continual_evaluation"]["eval_time_s"], "wall_s": results["wall_time_s"],
                              "evaluations": results["continual_evaluation"]["evaluations"]}
            report(setting=name, schedule=best, measured=True, **measured[name])
    summary = {"rows": rows, "meets": meets, "best": best, "measured": measured,
               "reference": {n: {"evaluations": len(c.iteration), "eval_s": r["continual_evaluation"]["eval_time_s"],
                                 "wall_s": r["wall_time_s"], "train_s": r["train_time_s"], **metrics_of(c)}
                             for n, (r, c) in reference.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fidelity.json").write_text(json.dumps(summary, indent=1))
    (args.out / "fidelity.md").write_text(fidelity_table(summary))
    print(fidelity_table(summary))
    return summary


def points(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def updates(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def fidelity_table(s: dict) -> str:
    lines = [f"Target: >= {REDUCTION:g}x fewer evaluations in every setting, |error| <= 0.5 points on min-ACC and "
             "<= 1 point on WC-ACC, WF^10 and gap depth (SG). Errors in accuracy points against `every` in the same run; "
             "recovery time error in updates.", ""]
    for name, ref in s["reference"].items():
        lines += [f"**{name}**: `every` {ref['evaluations']} evaluations, {ref['eval_s']:.1f} s of evaluation, "
                  f"{ref['train_s']:.1f} s of training loop (evaluation inside it); min-ACC {points(ref['min_acc'])}, "
                  f"WC-ACC {points(ref['wc_acc'])}, "
                  f"WF^10 {points(ref['wf10'])}, SG {points(ref['sg'])}, recovery {updates(ref['recovery_iters'])} updates", "",
                  "| schedule | evaluations | fewer | eval s (est.) | min-ACC err | WC-ACC err | WF^10 err | SG err | recovery err |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in s["rows"] if r["setting"] == name):
            e = r["errors"]
            rec = updates(e["recovery_iters"])
            lines.append(f"| {r['schedule']} | {r['evaluations']} | {r['reduction']:.1f}x | {r['eval_s_estimated']:.1f} | "
                         f"{points(e['min_acc'])} | {points(e['wc_acc'])} | {points(e['wf10'])} | {points(e['sg'])} | {rec} |")
        if name in s["measured"]:
            m = s["measured"][name]
            lines.append(f"\nMeasured `{s['best']}` run: {m['evaluations']} evaluations, {m['eval_s']:.1f} s of evaluation "
                         f"(`every`: {ref['eval_s']:.1f} s), {m['wall_s']:.1f} s end to end (`every`: {ref['wall_s']:.1f} s).")
        lines.append("")
    lines.append("Meets the target in every setting: " + (", ".join(k for k, v in s["meets"].items() if v) or "none"))
    lines.append(f"Chosen (largest smallest reduction among those): {s['best'] or 'none'}")
    return "\n".join(lines) + "\n"


# --- growth ---------------------------------------------------------------------------------------

def avalanche_job(n_experiences: int, data_root: Path, workdir: Path) -> None:
    """Plain Avalanche 0.6.0: the same ER job, evaluated after every update on the seen tasks'
    1000-sample test subsets through its periodic evaluation."""
    import torch
    from avalanche.benchmarks.classic import PermutedMNIST
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.models import SimpleMLP
    from avalanche.training import Replay
    from avalanche.training.plugins import EvaluationPlugin

    raw = workdir / "MNIST" / "raw"
    if not raw.exists():
        shutil.copytree(data_root / "MNIST" / "raw", raw)  # torchvision extracts beside them
    torch.manual_seed(0)
    bench = PermutedMNIST(n_experiences, seed=0, dataset_root=workdir)
    subsets = benchmark_from_datasets(test=[e.dataset.subset(range(1000)) for e in bench.test_stream]).test_stream
    model = SimpleMLP(num_classes=10, hidden_size=400, hidden_layers=2, drop_rate=0.0)
    strategy = Replay(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                      criterion=torch.nn.CrossEntropyLoss(), mem_size=200, train_mb_size=128, train_epochs=1,
                      eval_mb_size=1024, device="cpu", eval_every=1, peval_mode="iteration",
                      evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]))
    for k, exp in enumerate(bench.train_stream):
        strategy.train(exp, eval_streams=[subsets[:k + 1]])


def growth(args) -> None:
    summary = json.loads((args.out / "fidelity.json").read_text()) if (args.out / "fidelity.json").exists() else {}
    best = summary.get("best") or args.schedule
    if best not in CANDIDATES:
        sys.exit(f"eval_schedules: no schedule to time; run `fidelity` first or pass --schedule (one of {', '.join(CANDIDATES)})")
    lines = []
    for n in GROWTH_SIZES:
        stream = [*PERMUTED, f"scenario.n_experiences={n}"]
        folder = args.runs / ("permuted_mnist_20" if n == 20 else f"permuted_mnist_{n}")  # 20 is fidelity's
        row = {"experiences": n}
        row["off"] = cl_bench(folder / "off", [*stream, "eval=off"], args.data_root)["wall_time_s"]
        if n <= args.every_up_to:
            row["every"] = cl_bench(folder / "every", [*stream, *EVERY], args.data_root)["wall_time_s"]
        row["best"] = cl_bench(folder / "best", [*stream, *overrides_for(CANDIDATES[best])], args.data_root)["wall_time_s"]
        report(**row)
        lines.append(row)
    for n in GROWTH_SIZES:  # plain Avalanche last, in a child process with a time limit
        t0 = time.perf_counter()
        try:
            subprocess.run([sys.executable, __file__, "avalanche", "--experiences", str(n), "--data-root", str(args.data_root),
                            "--runs", str(args.runs)], check=True, timeout=args.avalanche_limit)
        except subprocess.TimeoutExpired:
            report(experiences=n, avalanche=f"> {args.avalanche_limit} s (stopped)")
            next(r for r in lines if r["experiences"] == n)["avalanche"] = f"> {args.avalanche_limit:.0f}"
            break
        seconds = time.perf_counter() - t0
        next(r for r in lines if r["experiences"] == n)["avalanche"] = seconds
        report(experiences=n, avalanche=seconds)
    (args.out / "growth.json").write_text(json.dumps({"schedule": best, "rows": lines}, indent=1))
    table = growth_table(best, lines)
    (args.out / "growth.md").write_text(table)
    print(table)
    plot_growth(best, lines, args.out / "eval_schedules_cost.png")


def growth_table(best: str, rows: list[dict]) -> str:
    def cell(v):
        return "not run" if v is None else (f"{v:.0f}" if isinstance(v, float) else f"{v} (stopped)")
    out = [f"| experiences | eval off | every | {best} | plain Avalanche, periodic eval |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['experiences']} | {cell(r['off'])} | {cell(r.get('every'))} | {cell(r['best'])} | "
                   f"{cell(r.get('avalanche'))} |")
    return "\n".join(out) + "\n\nSeconds end to end (cl-bench: results.json wall_time_s; Avalanche: its process).\n"


def plot_growth(best: str, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("off", "cl-bench, evaluation off"), ("every", "cl-bench, every update"),
                       ("best", f"cl-bench, {best}"), ("avalanche", "plain Avalanche, periodic eval")):
        xs = [r["experiences"] for r in rows if isinstance(r.get(key), float)]
        ys = [r[key] for r in rows if isinstance(r.get(key), float)]
        if xs:
            ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel("experiences (Permuted-MNIST, 1 epoch, ER)")
    ax.set_ylabel("seconds, end to end")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["fidelity", "growth", "avalanche"])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--runs", type=Path, required=True, help="run folders (kept, so the benchmark resumes)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "output" / "eval_schedules")
    parser.add_argument("--schedule", default=None, help="growth without fidelity's choice: one of the candidates")
    parser.add_argument("--every-up-to", type=int, default=20,
                        help="largest stream timed with `every` (its cost grows as the square of the experiences)")
    parser.add_argument("--avalanche-limit", type=float, default=600.0)
    parser.add_argument("--experiences", type=int, default=5, help="avalanche: the stream's length")
    args = parser.parse_args()
    if args.part == "fidelity":
        fidelity(args)
    elif args.part == "growth":
        growth(args)
    else:
        avalanche_job(args.experiences, args.data_root, args.runs / "avalanche")


if __name__ == "__main__":
    main()
