import json

import pytest

from cl_bench.results.leaderboard import collect, main, table


def write(tmp_path, name, strategy, seed, acc, status="completed", angle=None):
    d = tmp_path / name
    d.mkdir(parents=True)
    config = {"scenario": {"name": "split_x", "angle_step": angle}, "strategy": {"name": strategy}, "seed": seed}
    (d / "results.json").write_text(json.dumps({
        "status": status, "config": config, "seed": seed, "strategy": strategy,
        "scenario": {"name": "split_x"}, "train_time_s": 2.0,
        "metrics": {"acc": acc, "forgetting": 1 - acc, "bwt": None, "min_acc": acc / 2},
    }))


def test_table_averages_seeds_and_skips_unfinished_runs(tmp_path):
    write(tmp_path, "a0", "replay", 0, 0.80)
    write(tmp_path, "a1", "replay", 1, 0.90)
    write(tmp_path, "b0", "naive", 0, 0.20)
    write(tmp_path, "b1", "naive", 1, 0.99, status="failed")
    runs = collect([tmp_path])
    assert len(runs) == 3
    lines = table(runs).splitlines()
    assert lines[2] == "| split_x | replay | 2 | 85.0 ± 7.1 | 15.0 ± 7.1 | n/a | 2.0 |"
    assert lines[3] == "| split_x | naive | 1 | 20.0 ± 0.0 | 80.0 ± 0.0 | n/a | 2.0 |"


def test_group_by_config_keys_and_choose_metrics(tmp_path):
    write(tmp_path, "r10", "replay", 0, 0.9, angle=10)
    write(tmp_path, "r80", "replay", 0, 0.7, angle=80)
    out = table(collect([tmp_path]), ["scenario.name", "scenario.angle_step"], ["min_acc"]).splitlines()
    assert out[0] == "| scenario | scenario.angle_step | seeds | min_acc (%) | train time (s) |"
    assert out[2:] == ["| split_x | 10 | 1 | 45.0 ± 0.0 | 2.0 |", "| split_x | 80 | 1 | 35.0 ± 0.0 | 2.0 |"]
    with pytest.raises(ValueError, match="metric wf10 not in results"):
        table(collect([tmp_path]), metrics=["wf10"])


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"cl-bench-leaderboard: error: not a folder: {tmp_path / 'nope'}"
    assert main([str(tmp_path)]) == 2
    assert "no completed results.json" in capsys.readouterr().err


def write_full(tmp_path, name, strategy, seed, acc, status="completed", lam=None, curve=(1.0, 0.5, 0.8)):
    d = tmp_path / name
    d.mkdir(parents=True)
    strategy_cfg = {"name": strategy, **({"ewc_lambda": lam} if lam is not None else {})}
    config = {"scenario": {"name": "split_x"}, "strategy": strategy_cfg, "seed": seed, "data": {"root": "/x"}}
    metrics = {"acc": acc, "forgetting": 0.1, "bwt": -0.1, "min_acc": acc / 2, "wc_acc": acc / 3, "wf10": 0.2}
    (d / "results.json").write_text(json.dumps({
        "status": status, "config": config, "seed": seed, "strategy": strategy, "scenario": {"name": "split_x"},
        "train_time_s": 2.0, "wall_time_s": 3.0, "metrics": metrics, "git_commit": "abcdef1234567",
        "held_memory_bytes": {"total": 2 * 2**20}, "peak_memory": {"host_rss_mb": 500.0},
        "overrides": [f"strategy={strategy}", f"seed={seed}"] + ([f"strategy.ewc_lambda={lam}"] if lam else []),
    }))
    rows = ["iteration,experience,task,accuracy"] + [f"{i},0,0,{a}" for i, a in enumerate(curve)]
    (d / "curves.csv").write_text("\n".join(rows) + "\n")


def test_out_writes_markdown_csv_and_first_task_figure_per_scenario(tmp_path):
    runs = tmp_path / "runs"
    write_full(runs, "n0", "naive", 0, 0.2)
    write_full(runs, "n1", "naive", 1, 0.4)
    write_full(runs, "e0", "ewc", 0, 0.6, lam=10)
    write_full(runs, "e1", "ewc", 0, 0.7, lam=100)
    write_full(runs, "d0", "ewc", 0, 0.0, status="diverged", lam=1000)
    write_full(runs, "f0", "ewc", 1, 0.9, status="failed", lam=10)
    out = tmp_path / "boards"
    assert main([str(runs), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["split_x.csv", "split_x.md", "split_x_first_task.png"]
    import csv

    rows = list(csv.DictReader(open(out / "split_x.csv")))
    assert [r["strategy"] for r in rows] == ["ewc", "ewc", "naive", "ewc"]  # best ACC first, diverged last
    assert [r["setting"] for r in rows] == ["strategy.ewc_lambda=100", "strategy.ewc_lambda=10", "-", "strategy.ewc_lambda=1000"]
    naive = rows[2]
    assert naive["seeds"] == "2" and naive["ACC (%)"] == "30.0 ± 14.1" and naive["WF10 (%)"] == "20.0 ± 0.0"
    assert naive["command"] == "cl-bench -m strategy=naive seed=0,1" and naive["commit"] == "abcdef1234"
    assert naive["wall time (s)"] == "3.0" and naive["held memory (MB)"] == "2.00" and naive["peak RSS (MB)"] == "500"
    assert rows[3]["ACC (%)"] == "diverged (1/1)"
    assert set(rows[0]) >= {"forgetting (%)", "min-ACC (%)", "WC-ACC (%)"}
    md = (out / "split_x.md").read_text()
    assert "`cl-bench -m strategy=naive seed=0,1`" in md and "![first-task accuracy](split_x_first_task.png)" in md
