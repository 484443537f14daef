"""leaderboards/zoo.py table: a scenario the runs folder does not hold keeps its earlier section."""
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


def test_runs_of_one_strategy_add_its_row_and_keep_the_others(tmp_path):
    import json

    zoo = load_zoo()
    metrics = {"acc": 0.5, "forgetting": 0.1, "min_acc": 0.2, "wc_acc": 0.3, "wf10": 0.4, "sg": 0.05, "rec": 0.01}
    for seed, acc in ((0, 0.50), (1, 0.52)):
        folder = tmp_path / "runs" / "class_il" / "cope" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps({
            "status": "completed", "strategy": "cope", "git_commit": "newcommit99", "metrics": {**metrics, "acc": acc},
            "held_memory_bytes": {"total": 2e6}, "train_time_s": 9.0, "continual_evaluation": {"eval_time_s": 4.0}}))
    columns = "| strategy | family | seeds | ACC (%) |" + " x |" * 9
    old = (f"## {zoo.TITLES['class_il']}\n\n`cl-bench ...`; commits abc; not run: cope, ewc.\n\n{columns}\n"
           "|---|\n| replay | rehearsal | 3 | 81.9 ± 0.6 | r |\n| naive | reference | 3 | 19.9 ± 0.1 | n |\n"
           "| cope | rehearsal | 1 | 99.0 ± 0.0 | stale |\n\n![first-task accuracy](zoo_class_il.png)\n")
    text = zoo.table(tmp_path / "runs", tmp_path, old)
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    # cope's row is rebuilt from its runs (the stale one dropped), the others carried, all by ACC
    assert [r.split("|")[1].strip() for r in rows] == ["replay", "cope", "naive"]
    assert rows[0] == "| replay | rehearsal | 3 | 81.9 ± 0.6 | r |"
    assert rows[1].startswith("| cope | rehearsal | 2 | 51.0 ± 1.4 |")
    expected_not_run = sorted(set(zoo.supported("class_incremental")) - {"replay", "naive", "cope"})
    assert f"commits abc, newcommit9; not run: {', '.join(expected_not_run)}." in text
    assert "![first-task accuracy](zoo_class_il.png)" in text  # the earlier figure, not one of cope alone
    assert not (tmp_path / "zoo_class_il.png").exists()
