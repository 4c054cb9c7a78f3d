"""``dermlens serve`` refuses a model file it cannot use with one clear line, before listening."""

from __future__ import annotations

import subprocess
import sys


def serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dermlens.cli", "serve", "--port", "9", *args],
                          check=False, capture_output=True, text=True, timeout=60)


def test_missing_model_file(tmp_path):
    result = serve("--model", str(tmp_path / "nope.onnx"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_file_that_is_not_a_model(tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_text("not a model")
    result = serve("--model", str(fake))
    assert result.returncode == 2
    assert "not a valid ONNX model" in result.stderr and "Traceback" not in result.stderr
