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
