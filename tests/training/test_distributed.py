"""The training loop runs unchanged under torchrun (PyTorch DDP, gloo on CPU)."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    # torchrun's static rendezvous needs a real port number (0 makes the ranks wait forever)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_train_one_run_folder(ham_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
               "-m", "dermlens.cli", "train", "--data", str(ham_small), "--out", str(out),
               "--config", str(ROOT / "configs" / "single.yaml"),
               "--set", "training.head_epochs=2", "--set", "training.epochs=1",
               "--set", "training.batch_size=8", "--set", f"data.cache_dir={tmp_path / 'cache'}",
               "--set", "data.fractions=0.6,0.2,0.2"]
    env = {**os.environ, "DERMLENS_QUIET": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    # both ranks finish and name the same checkpoint; only rank 0 wrote the folder
    assert done.stdout.strip().splitlines().count(str(out / "best.pt")) == 2
    with open(out / "history.csv", newline="") as handle:
        stages = [(row["stage"], row["epoch"]) for row in csv.DictReader(handle)]
    assert stages == [("head", "0"), ("finetune", "1")]
    assert (out / "evaluation" / "metrics.json").is_file()
