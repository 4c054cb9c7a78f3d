"""Iterations as jobs: refusals, warnings, one claim per job, interrupted jobs, and real quick training."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from dermlens.projects.errors import Invalid
from dermlens.projects.intake import prepare_image
from dermlens.projects.iterations import worker_name
from dermlens.projects.metrics import metrics_at
from dermlens.projects.training import train_next


def tagged_project(workspace, counts: dict[str, int], images=None):
    store = workspace.store
    project, _ = store.create_project("p")
    seed = 0
    for tag in store.add_tags(project.id, list(counts)):
        for k in range(counts[tag.name]):
            seed += 1
            data = images[tag.name][k].read_bytes() if images else _noise(seed)
            store.add_image(project.id, prepare_image(data, f"{seed}.jpg"), tag_ids=[tag.id])
    return project


def _noise(seed: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def test_a_tag_with_fewer_than_five_images_cannot_train(workspace):
    project = tagged_project(workspace, {"akiec": 5, "bkl": 4})
    with pytest.raises(Invalid, match=r"at least 5 images.*bkl \(4\)"):
        workspace.iterations.queue(project.id, "quick")


def test_one_tag_alone_cannot_train(workspace):
    project = tagged_project(workspace, {"akiec": 6})
    with pytest.raises(Invalid, match="at least 2 tags"):
        workspace.iterations.queue(project.id, "quick")


def test_unbalanced_tags_get_a_warning(workspace):
    project = tagged_project(workspace, {"akiec": 5, "bkl": 56})
    iteration = workspace.iterations.queue(project.id, "quick")
    assert "unbalanced" in iteration.warnings[0] and "akiec" in iteration.warnings[0]


def test_a_queued_iteration_is_claimed_once(workspace):
    project = tagged_project(workspace, {"a": 5, "b": 5})
    queued = workspace.iterations.queue(project.id, "quick")
    first, second = workspace.iterations.claim("host:1"), workspace.iterations.claim("host:2")
    assert first.id == queued.id and first.status == "running" and second is None


def test_an_iteration_whose_process_died_is_marked_failed(workspace):
    project = tagged_project(workspace, {"a": 5, "b": 5})
    workspace.iterations.queue(project.id, "quick")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    claimed = workspace.iterations.claim(f"{worker_name().rpartition(':')[0]}:{dead.stdout.strip()}")
    assert workspace.iterations.recover_interrupted() == [claimed.id]
    failed = workspace.iterations.by_id(claimed.id)
    assert failed.status == "failed" and "interrupted" in failed.message
    # a live runner that has reported recently is left alone
    workspace.iterations.queue(project.id, "quick")
    alive = workspace.iterations.claim()
    assert workspace.iterations.recover_interrupted() == []
    assert workspace.iterations.recover_interrupted(stale_after=timedelta(seconds=-1)) == [alive.id]


def test_a_killed_runner_not_yet_reaped_counts_as_gone(workspace):
    """A SIGKILLed training process stays a zombie until its parent reaps it; it still answers signal 0."""
    import os
    import signal
    import time

    project = tagged_project(workspace, {"a": 5, "b": 5})
    workspace.iterations.queue(project.id, "quick")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(child.pid, signal.SIGKILL)
        time.sleep(0.5)  # dead, not reaped: a zombie
        os.kill(child.pid, 0)  # the check a plain pid test would make passes
        claimed = workspace.iterations.claim(f"{worker_name().rpartition(':')[0]}:{child.pid}")
        assert workspace.iterations.recover_interrupted() == [claimed.id]
    finally:
        child.wait()


def test_advanced_training_refuses_a_multilabel_project_and_a_silly_budget(workspace):
    project, _ = workspace.store.create_project("ml", kind="multilabel")
    with pytest.raises(Invalid, match="multilabel"):
        workspace.iterations.queue(project.id, "advanced", budget_minutes=5)
    with pytest.raises(Invalid, match="budget"):
        workspace.iterations.queue(project.id, "advanced", budget_minutes=0)


@pytest.mark.slow
def test_a_quick_iteration_on_real_images(workspace, ham_by_label):
    images = {"akiec": ham_by_label("akiec", 12), "bkl": ham_by_label("bkl", 12)}
    project = tagged_project(workspace, {"akiec": 12, "bkl": 12}, images)
    workspace.store.add_image(project.id, prepare_image(ham_by_label("bkl", 1, skip=20)[0].read_bytes(), "u.jpg"))
    workspace.iterations.queue(project.id, "quick")
    done = train_next(workspace.iterations)
    assert done.status == "completed", done.message
    metrics = metrics_at(done.metrics, 0.5)
    assert metrics["n_images"] == 24 and sum(map(sum, metrics["confusion_matrix"]["counts"])) == 24
    assert workspace.store.blobs.exists(done.model_key) and workspace.store.blobs.exists(done.checkpoint_key)
    rows, total = workspace.store.images(project.id, "suggested")
    assert total == 1 and rows[0].suggestion.top_tag in ("akiec", "bkl")
    assert train_next(workspace.iterations) is None  # the queue is empty


@pytest.mark.slow
def test_an_advanced_iteration_fine_tunes_within_its_budget(tmp_path, ham_by_label):
    import time

    from dermlens.projects.workspace import Workspace

    workspace = Workspace.open(tmp_path / "data")
    images = {"akiec": ham_by_label("akiec", 20), "bkl": ham_by_label("bkl", 20)}
    project = tagged_project(workspace, {"akiec": 20, "bkl": 20}, images)
    workspace.iterations.queue(project.id, "advanced", budget_minutes=1)
    started = time.monotonic()
    done = train_next(workspace.iterations)
    assert done.status == "completed", done.message
    # the budget stops before an epoch its predecessor says would not fit; a busy machine can slow the
    # last one a little past that prediction, never by another epoch
    assert done.metrics["training"]["minutes"] <= 1.1 and time.monotonic() - started < 150
    assert "held-out" in done.metrics["validation"] and done.metrics["n_images"] == 8
    answer = workspace.publishing.quick_test(project.id, done.number,
                                             prepare_image(images["bkl"][0].read_bytes(), "b.jpg"))
    assert {tag for tag, _ in answer.tags} == {"akiec", "bkl"}


def test_a_machine_without_torch_is_told_what_to_install(monkeypatch):
    import importlib.util

    from dermlens.projects.jobs import check_can_train

    check_can_train()  # the test environment has torch
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(Invalid, match=r"pip install 'dermlens\[train\]'"):
        check_can_train()
