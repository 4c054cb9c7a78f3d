"""Fixtures shared by all tests: the HAM10000 and external ISIC copies in ../shared, small real subsets."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
HAM_DIR = SHARED_DATASETS / "ham10000"
EXTERNAL_DIR = SHARED_DATASETS / "isic_archive_external"

os.environ.setdefault("DERMLENS_QUIET", "1")

pytest_plugins = ["postgres_fixtures"]  # `postgres_url`: a fresh database on the server .ci/postgres starts


def _require(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"shared dataset not found at {folder} (expected beside the repository root)")
    return folder


@pytest.fixture(scope="session")
def ham_dir() -> Path:
    return _require(HAM_DIR)


@pytest.fixture(scope="session")
def external_dir() -> Path:
    return _require(EXTERNAL_DIR)


def make_ham_subset(ham: Path, folder: Path, per_class: int, classes: tuple[str, ...] | None = None) -> Path:
    """A labels.csv + images/ folder of symlinks to the first ``per_class`` lesions of each class."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    taken: dict[str, int] = {}
    with open(ham / "labels.csv", newline="") as source, open(folder / "labels.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["image_id", "label", "lesion_id", "age", "sex", "localization"])
        for row in csv.DictReader(source):
            label = row["label"]
            if (classes and label not in classes) or taken.get(label, 0) >= per_class:
                continue
            taken[label] = taken.get(label, 0) + 1
            writer.writerow([row["image_id"], label, row["lesion_id"], row["age"], row["sex"],
                             row["localization"]])
            link = folder / "images" / f"{row['image_id']}.jpg"
            if not link.exists():
                link.symlink_to(ham / "images" / f"{row['image_id']}.jpg")
    return folder


@pytest.fixture(scope="session")
def ham_part(ham_dir: Path):
    """``ham_part(folder, per_class, classes=None)``: `make_ham_subset` of the real HAM10000 folder."""
    return lambda folder, per_class, classes=None: make_ham_subset(ham_dir, folder, per_class, classes)


@pytest.fixture(scope="session")
def ham_small(ham_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 100 real HAM10000 images, 15 per class (fewer for none: every class has 115+)."""
    return make_ham_subset(ham_dir, tmp_path_factory.mktemp("ham_small"), per_class=15)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningServer:
    """A real ``dermlens serve`` process on a free localhost port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        import subprocess
        import sys
        import time
        import urllib.request

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - open for the server's whole life, closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dermlens.cli", "serve", "--port", str(self.port)],
            env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dermlens serve exited: {log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/api/v1/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dermlens serve did not start within 60 s: {log_path.read_text()}")

    def stop(self) -> None:
        import subprocess

        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory):
    """``start_server(**env)`` -> a `RunningServer` with those DERMLENS_* settings (and a fresh data
    directory unless DERMLENS_DATA_DIR is given); stopped at the end."""
    servers: list[RunningServer] = []

    def start(**env: str) -> RunningServer:
        log = tmp_path_factory.mktemp("server") / "server.log"
        data_dir = str(tmp_path_factory.mktemp("data"))  # projects never land in the developer's home
        server = RunningServer({"DERMLENS_RATE_LIMIT_PER_MINUTE": "0", "DERMLENS_DATA_DIR": data_dir, **env}, log)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def server(start_server) -> RunningServer:
    """The web app on the bundled default model, with rate limiting off (tests send many requests)."""
    return start_server()


@pytest.fixture(scope="session")
def ham_images(ham_dir: Path) -> dict[str, Path]:
    """One real HAM10000 image per class, by class code (read from ../shared, never copied)."""
    chosen: dict[str, Path] = {}
    with open(ham_dir / "labels.csv", newline="") as labels:
        for row in csv.DictReader(labels):
            chosen.setdefault(row["label"], ham_dir / "images" / f"{row['image_id']}.jpg")
    return chosen


@pytest.fixture(scope="session")
def lesion_jpeg(ham_images: dict[str, Path]) -> bytes:
    return ham_images["nv"].read_bytes()


@pytest.fixture(scope="session")
def ham_by_label(ham_dir: Path):
    """``ham_by_label(label, count, skip=0)``: real HAM10000 images of one class, in labels.csv order."""
    with open(ham_dir / "labels.csv", newline="") as labels:
        rows = list(csv.DictReader(labels))

    def pick(label: str, count: int, skip: int = 0) -> list[Path]:
        chosen = [r for r in rows if r["label"] == label][skip:skip + count]
        return [ham_dir / "images" / f"{r['image_id']}.jpg" for r in chosen]

    return pick
