"""`artlab experiment` claims its out folder as a run folder is claimed (issue #25, defect 1): new, empty or artlab's
own experiment; a user's results.csv / results.md, `/` or a home folder are refused in one line with nothing written;
a grid whose every row failed exits non-zero."""

from __future__ import annotations

from pathlib import Path

import pytest

from artlab.cli import main
from artlab.errors import RunError
from artlab.safety import MARKER
from artlab.train import experiment


@pytest.fixture
def no_training(monkeypatch, tmp_path):
    """A config over a (manifest-only) collection whose rows all fail without training; results writes recorded."""
    (tmp_path / "coll").mkdir()
    (tmp_path / "coll" / "manifest.csv").write_text("id,path\n")
    written: list[Path] = []
    real = experiment._write_results

    def recording(exp, table):
        written.append(exp.out)
        if str(exp.out).startswith(str(tmp_path)):  # never into a real / or /root, even on a build without the fix
            real(exp, table)

    def fail(cfg, out, progress=None, umap=True, overwrite=False):
        raise RunError("not training in this test")

    monkeypatch.setattr("artlab.train.runner.train_run", fail)
    monkeypatch.setattr(experiment, "_write_results", recording)
    return written


def config(tmp_path: Path, out: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(f'out = "{out}"\n[base]\ncollection = "coll"\n[[runs]]\nname = "a"\n[[runs]]\nname = "b"\n')
    return path


def test_a_users_results_are_never_replaced(tmp_path, no_training, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("my,own,table\n1,2,3\n")
    (mine / "results.md").write_text("# my notes\n")
    assert main(["experiment", str(config(tmp_path, "mine"))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("artlab: exp.toml: out ") and "artlab did not write" in err and "\n" not in err
    assert (mine / "results.csv").read_text() == "my,own,table\n1,2,3\n"
    assert (mine / "results.md").read_text() == "# my notes\n"
    assert sorted(p.name for p in mine.iterdir()) == ["results.csv", "results.md"] and not no_training


@pytest.mark.parametrize("out", ["/", "/root", "~"])
def test_system_and_home_folders_are_refused_in_one_line(tmp_path, no_training, capsys, out):
    home = Path(out).expanduser()
    if not home.is_dir() or next(home.iterdir(), None) is None:
        pytest.skip(f"{out} is not a folder with files here")
    marked = (home / MARKER).exists()
    assert main(["experiment", str(config(tmp_path, out))]) == 2
    err = capsys.readouterr().err.strip()
    assert "artlab did not write" in err and "\n" not in err
    assert not no_training  # no table was written, nor even attempted
    assert (home / MARKER).exists() == marked  # not claimed


def test_every_row_failing_exits_non_zero_and_keeps_its_table(tmp_path, no_training, capsys):
    cfg = config(tmp_path, "runs")
    assert main(["experiment", str(cfg)]) == 2
    captured = capsys.readouterr()
    assert "0 trained, 0 already complete, 2 failed" in captured.out
    assert "every row of exp.toml failed" in captured.err
    runs = tmp_path / "runs"
    assert {"results.csv", "results.md", MARKER} <= {p.name for p in runs.iterdir()}
    assert main(["experiment", str(cfg)]) == 2  # artlab's own experiment folder: claimed again, written again


def test_an_experiment_folder_from_before_the_marker_is_still_artlabs(tmp_path, no_training):
    """checkpoints/ (configs/demo.toml's out) holds results.csv with artlab's columns but no marker."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.csv").write_text("name,row,backbone,method,head,optimizer,scheduler,split,epochs\n")
    assert main(["experiment", str(config(tmp_path, "old"))]) == 2  # every row failed, but the folder is accepted
    assert no_training == [old.resolve()] * 2 and not (old / MARKER).exists()  # a known folder is not re-marked


def test_a_grid_with_one_success_exits_zero(tmp_path, no_training, monkeypatch):
    calls = []

    def half(cfg, out, progress=None, umap=True, overwrite=False):
        calls.append(out)
        if len(calls) > 1:
            raise RunError("the second row fails")

    monkeypatch.setattr("artlab.train.runner.train_run", half)
    monkeypatch.setattr(experiment, "results_table", lambda exp, status=None: __import__("pandas").DataFrame())
    outcome = experiment.run_experiment(config(tmp_path, "runs"))
    assert not outcome.all_failed and "1 trained" in outcome


def test_a_grid_interrupted_before_its_first_table_is_still_artlabs(tmp_path, no_training):
    """An experiment folder of an older artlab, stopped during its first row: only runs and staging folders."""
    import shutil
    old = tmp_path / "old"
    shutil.copytree(Path(__file__).resolve().parent.parent / "checkpoints" / "demo-genre", old / "done")
    (old / ".a.partial").mkdir()
    assert main(["experiment", str(config(tmp_path, "old"))]) == 2  # every row failed, but the folder is accepted
    assert no_training == [old.resolve()] * 2
    (old / "notes.txt").write_text("mine")  # with a file of the user's beside: refused
    (old / "results.csv").unlink()
    (old / "results.md").unlink()
    assert main(["experiment", str(config(tmp_path, "old"))]) == 2 and len(no_training) == 2
