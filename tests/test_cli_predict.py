"""`dermlens predict` and `dermlens info` on the bundled model: output contracts and bad files."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dermlens.cli import app
from dermlens.data.labels import HAM10000_CLASSES

ISIC_HEADER = ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def folder(ham_dir, tmp_path_factory) -> Path:
    """Four real HAM10000 images and one corrupt file, in a folder with a sub-folder."""
    images = sorted((ham_dir / "images").glob("*.jpg"))
    picks = [images[i] for i in np.random.default_rng(3).choice(len(images), 4, replace=False)]
    root = tmp_path_factory.mktemp("to_predict")
    (root / "more").mkdir()
    for i, path in enumerate(picks):
        shutil.copy(path, (root if i < 2 else root / "more") / path.name)
    (root / "more" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a real jpeg")
    (root / "notes.txt").write_text("ignored: not an image file name")
    return root


def test_json_output_contract(runner, folder):
    result = runner.invoke(app, ["predict", str(folder), "--format", "json", "--top-k", "2"])
    assert result.exit_code == 1, result.output  # one file could not be classified
    rows = json.loads(result.stdout)
    assert len(rows) == 5  # four images and the broken file; notes.txt is not an image name
    by_status = {row["image"].rsplit("/", 1)[-1]: row for row in rows}
    broken = by_status.pop("broken.jpg")
    assert broken["status"] == "rejected" and broken["reason"] == "unreadable"
    assert broken["probabilities"] is None and broken["top"] == []
    for row in by_status.values():
        assert {"image", "status", "reason", "probabilities", "top"} <= set(row)
        assert row["status"] in ("ok", "uncertain", "rejected")
        if row["status"] == "ok":
            assert row["reason"] is None
        if row["status"] != "rejected":
            assert set(row["probabilities"]) == set(HAM10000_CLASSES)
            assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
            assert len(row["top"]) == 2
            assert row["top"][0]["probability"] >= row["top"][1]["probability"]
            assert {"code", "name", "probability"} == set(row["top"][0])
            assert row["top"][0]["probability"] == pytest.approx(row["probabilities"][row["top"][0]["code"]])


def test_isic_output_contract(runner, folder, tmp_path):
    out = tmp_path / "submission.csv"
    result = runner.invoke(app, ["predict", str(folder), "--format", "isic", "--out", str(out)])
    assert result.exit_code == 1
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ISIC_HEADER
    stems = {Path(p).stem for p in folder.rglob("*.jpg")}
    assert {row[0] for row in rows[1:]} == stems  # the file stem, not the path
    for row in rows[1:]:
        if row[0] == "broken":
            assert row[1:] == [""] * 7
        else:
            assert sum(float(v) for v in row[1:]) == pytest.approx(1.0, abs=1e-5)


def test_csv_and_table_outputs(runner, folder):
    result = runner.invoke(app, ["predict", str(folder), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 5 and set(HAM10000_CLASSES) <= set(rows[0])
    table = runner.invoke(app, ["predict", *map(str, sorted(folder.glob("*.jpg"))), "--format", "table"])
    assert table.exit_code == 0, table.output
    assert "not a diagnosis" in table.stdout.replace("\n", " ")


def test_a_missing_file_gets_its_row_and_a_non_zero_exit(runner, folder, tmp_path):
    image = next(folder.glob("*.jpg"))
    result = runner.invoke(app, ["predict", str(image), str(tmp_path / "nowhere.jpg"), "--format", "json"])
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert [r["status"] for r in rows][1] == "rejected"
    assert "Traceback" not in result.output


def test_an_empty_folder_and_a_foreign_model_are_clear_errors(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["predict", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "holds no image files" in result.stderr
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not onnx")
    result = runner.invoke(app, ["predict", str(tmp_path), "--model", str(fake)])
    assert result.exit_code == 2 and "not a valid ONNX model" in result.stderr


def test_info_prints_the_model_card_summary(runner):
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for fragment in ("HAM10000", "CC BY-NC 4.0", "balanced accuracy", "macro AUC", "temperature",
                     "not-skin check", "uncertain below", "known limits", "not a diagnosis", "mel (Melanoma)",
                     "int8: convolutional trunk quantized"):
        assert fragment in result.stdout, fragment
