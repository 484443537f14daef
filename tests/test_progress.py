"""Progress bars: one per experience when enabled, nothing when output is not a terminal."""
from cl_bench.progress import ProgressBar
from cl_bench.run import run
from tests.conftest import compose_config, tiny


def test_bars_show_experiences_and_iterations_when_enabled(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    bar = ProgressBar(5)
    assert bar.enabled
    monkeypatch.setattr("cl_bench.run.ProgressBar", lambda n: ProgressBar(n, enabled=True))
    run(compose_config(tiny(["eval=off"])), tmp_path / "run")
    err = capsys.readouterr().err
    for k in range(1, 6):
        assert f"experience {k}/5" in err
    assert "epoch=1/1" in err and "it/s" in err


def test_bars_stay_quiet_when_stderr_is_not_a_terminal(tmp_path, capsys):
    assert not ProgressBar(5).enabled  # pytest captures stderr: not a terminal
    run(compose_config(tiny(["eval=off"])), tmp_path / "run")
    assert "experience 1/5" not in capsys.readouterr().err
