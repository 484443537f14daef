"""leaderboards/zoo.py table: runs become committed records, tables come from the records, and what has
no records keeps its earlier section or row."""
from pathlib import Path

from tests.conftest import load_leaderboard_script


def load_zoo():
    return load_leaderboard_script("zoo")


def test_sections_of_scenarios_without_runs_are_kept(tmp_path):
    zoo = load_zoo()
    old = (f"# old header\n\n## {zoo.TITLES['class_il']}\n\n| a | b |\n|---|---|\n| x | 1 |\n\n"
           f"## {zoo.TITLES['task_il']}\n\ntask table\n\n{zoo.NOTES} (by hand)\n\nnotes\n")
    text = zoo.table(tmp_path, tmp_path, old)
    assert text.startswith(zoo.HEADER)
    assert f"## {zoo.TITLES['class_il']}\n\n| a | b |\n|---|---|\n| x | 1 |\n" in text
    assert f"## {zoo.TITLES['task_il']}\n\ntask table\n" in text
    assert zoo.NOTES not in text  # the hand-written part is main()'s to append, once
    assert zoo.TITLES["domain_il"] not in text  # neither run nor in the old file


def test_a_kept_sections_not_run_list_names_strategies_registered_since():
    zoo = load_zoo()
    old = (f"## {zoo.TITLES['class_il']}\n\n`cl-bench ...`; commits abc; not run: none.\n\n"
           "| strategy | family |\n|---|---|\n| naive | reference |\n| replay | rehearsal |\n")
    text = zoo.table(Path("/nonexistent"), Path("/nonexistent"), old)
    expected = sorted(set(zoo.supported("class_incremental")) - {"naive", "replay"})
    assert "cope" in expected
    assert f"not run: {', '.join(expected)}.\n" in text
    assert "| naive | reference |\n| replay | rehearsal |\n" in text


METRICS = {"acc": 0.5, "forgetting": 0.1, "min_acc": 0.2, "wc_acc": 0.3, "wf10": 0.4, "sg": 0.05, "rec": 0.01}


def write_run(runs, strategy, seed, acc, commit="newcommit99", scenario="class_il", overrides=None):
    import json

    zoo = load_zoo()
    folder = runs / scenario / strategy / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "status": "completed", "strategy": strategy, "seed": seed, "git_commit": commit,
        "overrides": zoo.overrides(scenario, strategy, seed) if overrides is None else overrides,
        "metrics": {**METRICS, "acc": acc}, "held_memory_bytes": {"total": 2e6}, "train_time_s": 9.0,
        "continual_evaluation": {"eval_time_s": 4.0}}))
    (folder / "curves.csv").write_text("iteration,experience,task,accuracy\n0,0,0,0.1\n1,0,0,0.9\n1,0,1,0.5\n")


def test_runs_of_one_strategy_add_its_row_and_keep_the_others(tmp_path):
    zoo = load_zoo()
    for seed, acc in ((0, 0.50), (1, 0.52)):
        write_run(tmp_path / "runs", "cope", seed, acc)
    assert zoo.collect(tmp_path / "runs", tmp_path / "records") == 2
    columns = "| strategy | family | seeds | ACC (%) |" + " x |" * 9
    old = (f"## {zoo.TITLES['class_il']}\n\n`cl-bench ...`; commits abc; not run: cope, ewc.\n\n{columns}\n"
           "|---|\n| replay | rehearsal | 3 | 81.9 ± 0.6 | r |\n| naive | reference | 3 | 19.9 ± 0.1 | n |\n"
           "| cope | rehearsal | 1 | 99.0 ± 0.0 | stale |\n\n![first-task accuracy](zoo_class_il.png)\n")
    text = zoo.table(tmp_path / "records", tmp_path, old)
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    # cope's row is rebuilt from its records (the stale one dropped), the others carried, all by ACC
    assert [r.split("|")[1].strip() for r in rows] == ["replay", "cope", "naive"]
    assert rows[0] == "| replay | rehearsal | 3 | 81.9 ± 0.6 | r |"
    assert rows[1].startswith("| cope | rehearsal | 2 | 51.0 ± 1.4 |")
    assert rows[1].endswith("| 2.0 | 5 |")  # held memory in MB; train time without the evaluation's
    expected_not_run = sorted(set(zoo.supported("class_incremental")) - {"replay", "naive", "cope"})
    assert f"commits abc, newcommit9; not run: {', '.join(expected_not_run)}." in text
    # replay and naive are plotted strategies without curves here: the earlier figure stays
    assert "![first-task accuracy](zoo_class_il.png)" in text
    assert not (tmp_path / "zoo_class_il.png").exists()


def test_a_later_seed_pools_with_the_committed_records_and_a_rerun_replaces_its_own(tmp_path):
    zoo = load_zoo()
    records = tmp_path / "records"
    for seed, acc in ((0, 0.50), (1, 0.52)):
        write_run(tmp_path / "first", "naive", seed, acc, commit="aaaaaaaaaa11")
    zoo.collect(tmp_path / "first", records)
    # a later session: the first run folders are gone; seed 2 is new and seed 1 is run again
    write_run(tmp_path / "later", "naive", 2, 0.54, commit="bbbbbbbbbb22")
    write_run(tmp_path / "later", "naive", 1, 0.60, commit="bbbbbbbbbb22")
    assert zoo.collect(tmp_path / "later", records) == 2
    lines = (records / "class_il.jsonl").read_text().splitlines()
    assert [(r["seed"], r["metrics"]["acc"]) for r in map(__import__("json").loads, lines)] == [(0, 0.5), (1, 0.6), (2, 0.54)]
    text = zoo.table(records, tmp_path, "")
    row = next(line for line in text.splitlines() if line.startswith("| naive "))
    assert row.startswith("| naive | reference | 3 | 54.7 ± 5.0 |")
    assert "commits aaaaaaaaaa, bbbbbbbbbb;" in text
    # naive is plotted and has records: the figure is drawn from their first-task curves
    assert "![first-task accuracy, Split-MNIST, class-incremental](zoo_class_il.png)" in text
    assert (tmp_path / "zoo_class_il.png").stat().st_size > 0


def test_table_cli_refuses_a_missing_runs_folder(tmp_path, capsys):
    import pytest

    zoo = load_zoo()
    with pytest.raises(SystemExit) as exit_info:
        zoo.main(["table", str(tmp_path / "missing"), "--records", str(tmp_path / "records")])
    assert exit_info.value.code == 2
    assert "runs folder" in capsys.readouterr().err
    assert not (tmp_path / "records").exists()


def test_a_run_with_other_settings_is_refused_and_nothing_is_recorded(tmp_path, capsys):
    import pytest

    zoo = load_zoo()
    write_run(tmp_path / "runs", "naive", 0, 0.5)
    other = [o if o != "train.epochs=1" else "train.epochs=3" for o in zoo.overrides("class_il", "replay", 0)]
    write_run(tmp_path / "runs", "replay", 0, 0.9, overrides=other)
    with pytest.raises(SystemExit) as exit_info:
        zoo.main(["table", str(tmp_path / "runs"), "--records", str(tmp_path / "records")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "replay/seed0: replay seed 0 was not run with the zoo's settings" in err and "train.epochs=3" in err
    assert not (tmp_path / "records").exists()


def test_records_from_other_settings_than_the_zoos_now_are_refused(tmp_path, capsys, monkeypatch):
    import pytest

    zoo = load_zoo()
    write_run(tmp_path / "runs", "naive", 0, 0.5)
    zoo.collect(tmp_path / "runs", tmp_path / "records")
    monkeypatch.setattr(zoo, "COMMON", [o if o != "train.epochs=1" else "train.epochs=2" for o in zoo.COMMON])
    with pytest.raises(SystemExit) as exit_info:
        zoo.main(["table", "--records", str(tmp_path / "records"), "--figures", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "class_il.jsonl: naive seed 0 was not run with the zoo's settings" in err and "train.epochs=2" in err


def test_a_diverged_run_is_recorded_and_counted_and_collecting_again_changes_nothing(tmp_path):
    import json

    zoo = load_zoo()
    write_run(tmp_path / "runs", "si", 0, 0.4)
    folder = tmp_path / "runs" / "class_il" / "si" / "seed1"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({  # what a diverged run writes: no metrics, no times
        "status": "diverged", "strategy": "si", "seed": 1, "git_commit": "c0ffee", "metrics": {},
        "overrides": zoo.overrides("class_il", "si", 1), "diverged_at": {"experience": 1, "iteration": 3}}))
    assert zoo.collect(tmp_path / "runs", tmp_path / "records") == 2
    assert zoo.collect(tmp_path / "runs", tmp_path / "records") == 0  # the same runs again: nothing new
    row = next(line for line in zoo.table(tmp_path / "records", tmp_path).splitlines() if line.startswith("| si"))
    assert row.startswith("| si (1 diverged) | regularisation | 1 | 40.0 ± 0.0 |")


def test_a_damaged_records_file_is_named_with_its_line(tmp_path, capsys):
    import pytest

    zoo = load_zoo()
    write_run(tmp_path / "runs", "naive", 0, 0.5)
    zoo.collect(tmp_path / "runs", tmp_path / "records")
    path = tmp_path / "records" / "class_il.jsonl"
    path.write_text(path.read_text() + '{"strategy": "naive"\n')
    with pytest.raises(SystemExit) as exit_info:
        zoo.main(["table", "--records", str(tmp_path / "records"), "--figures", str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"{path}:2: not a zoo record" in capsys.readouterr().err
