"""``dermlens project ...`` on real HAM10000 images: the workflow from the command line."""

from __future__ import annotations

import re
import shutil

import pytest
from typer.testing import CliRunner

from dermlens.cli import app

pytestmark = pytest.mark.slow


def test_the_project_workflow_from_the_command_line(tmp_path, ham_by_label):
    runner = CliRunner()
    data = ["project", "--data-dir", str(tmp_path / "data")]

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, [*data, *args])
        assert result.exit_code == code, result.output
        return result.output

    assert "prediction key:" in run("create", "lentigo vs keratosis")
    folder = tmp_path / "images"
    for label in ("akiec", "bkl"):
        (folder / label).mkdir(parents=True)
        for path in ham_by_label(label, 8):
            shutil.copy(path, folder / label / path.name)
    (folder / "notes.txt").write_text("not an image")  # skipped: folders import image files only
    assert "added 16, already there 0, refused 0" in run("upload", "1", str(folder))
    assert "refused 1" in run("upload", "1", str(folder / "notes.txt"))
    assert "akiec (8), bkl (8)" in run("list")

    assert "mean average precision" in run("train", "1")
    table = run("metrics", "1", "1", "--threshold", "0.6")
    assert re.search(r"akiec\s+8\s", table) and "overall" in table
    probe = ham_by_label("bkl", 1, skip=30)[0]
    answer = run("quick-test", "1", "1", str(probe))
    assert "akiec" in answer and "bkl" in answer and "not a diagnosis" in answer
    assert "Prediction-Key" in run("publish", "1", "1", "first")
    assert "parameters" in run("model-summary", "1", "1").lower()
    exported = run("export", "1", "1", "--format", "onnx", "--out", str(tmp_path / "out"))
    assert "written" in exported and list((tmp_path / "out").glob("*.onnx"))
    assert "no iteration 9" in run("metrics", "1", "9", code=2)
    assert "unknown export format" in run("export", "1", "1", "--format", "pdf", code=2)

    objects = tmp_path / "data" / "objects"
    assert list(objects.glob("features-*.npy"))  # training cached the images' features
    pixels = sorted(objects.glob("*.png"))[0].read_bytes()
    run("delete", "1", "--yes")
    assert not list(objects.glob("*.png")) and not list(objects.glob("features-*.npy"))  # gone with the project
    (objects / f"{'0' * 64}.png").write_bytes(pixels)  # what a process killed mid-upload leaves
    assert "deleted 0 object(s)" in run("sweep")  # it might be an upload in flight: kept for the grace period
    assert "deleted 1 object(s) that no project holds" in run("sweep", "--grace-minutes", "0")
    assert not list(objects.glob("*.png"))
