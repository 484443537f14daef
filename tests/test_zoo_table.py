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
