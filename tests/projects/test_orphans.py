"""Image objects no row points at: never left by a refused upload, swept when a process died."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from dermlens.projects.errors import NotFound
from dermlens.projects.intake import image_from_pixels
from dermlens.projects.orphans import collect_orphans
from dermlens.projects.quick import feature_key
from dermlens.projects.schema import image_key


def picture(seed: int, name: str):
    return image_from_pixels(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8), name)


def test_a_refused_upload_keeps_no_pixels(workspace):
    store = workspace.store
    project, _ = store.create_project("p")
    image = picture(7, "refused.jpg")
    with pytest.raises(NotFound):
        store.add_image(project.id, image, tag_ids=[9999])  # no such tag
    assert not store.blobs.exists(image_key(image.sha256))
    assert store.images(project.id, "all")[1] == 0


def test_a_refused_upload_of_a_picture_another_project_holds_keeps_that_projects_copy(workspace):
    store = workspace.store
    first, _ = store.create_project("first")
    second, _ = store.create_project("second")
    image = picture(8, "shared.jpg")
    store.add_image(first.id, image)
    with pytest.raises(NotFound):
        store.add_image(second.id, image, tag_ids=[9999])
    assert store.blobs.exists(image_key(image.sha256))


def test_the_sweep_deletes_what_a_dead_process_left_and_nothing_else(workspace):
    store, blobs = workspace.store, workspace.store.blobs
    project, _ = store.create_project("p")
    held = picture(1, "held.jpg")
    store.add_image(project.id, held)
    dead = picture(2, "dead.jpg")  # stored, then the process died before the row
    blobs.put(image_key(dead.sha256), dead.png)
    blobs.put(feature_key("efficientnet_lite0", dead.sha256), b"features")
    blobs.put(feature_key("efficientnet_lite0", held.sha256), b"features")
    in_flight = picture(3, "in-flight.jpg")  # another worker is about to record it
    blobs.put(image_key(in_flight.sha256), in_flight.png)
    blobs.put("model-1.onnx", b"not an image object")
    hour_ago = time.time() - 2 * 3600
    for key in (image_key(dead.sha256), feature_key("efficientnet_lite0", dead.sha256),
                feature_key("efficientnet_lite0", held.sha256), image_key(held.sha256), "model-1.onnx"):
        os.utime(blobs.root / key, (hour_ago, hour_ago))

    swept = collect_orphans(workspace.database, blobs)

    assert sorted(swept) == sorted([image_key(dead.sha256), feature_key("efficientnet_lite0", dead.sha256)])
    assert not blobs.exists(image_key(dead.sha256))
    for kept in (image_key(held.sha256), feature_key("efficientnet_lite0", held.sha256),
                 image_key(in_flight.sha256), "model-1.onnx"):
        assert blobs.exists(kept), kept
    assert store.image_bytes(project.id, store.images(project.id, "all")[0][0].image.id) == held.png
    assert collect_orphans(workspace.database, blobs, grace_seconds=0) == [image_key(in_flight.sha256)]


def test_deleting_an_image_deletes_the_features_computed_from_it(workspace):
    store, blobs = workspace.store, workspace.store.blobs
    project, _ = store.create_project("p")
    kept, gone = picture(1, "kept.jpg"), picture(2, "gone.jpg")
    kept_id, _ = store.add_image(project.id, kept)
    gone_id, _ = store.add_image(project.id, gone)
    for image in (kept, gone):
        blobs.put(feature_key("efficientnet_lite0", image.sha256), b"features")
    store.delete_images(project.id, [gone_id])
    assert blobs.keys("features-") == [feature_key("efficientnet_lite0", kept.sha256)]
    assert blobs.exists(image_key(kept.sha256)) and not blobs.exists(image_key(gone.sha256))


def test_pixels_another_worker_forgot_mid_upload_are_written_again(workspace, monkeypatch):
    store = workspace.store
    project, _ = store.create_project("p")
    image = picture(9, "raced.jpg")
    record = store._record_image

    def raced(*args):  # another worker's refused upload of the same picture forgets it before this row lands
        store.blobs.delete(image_key(image.sha256))
        return record(*args)

    monkeypatch.setattr(store, "_record_image", raced)
    image_id, _ = store.add_image(project.id, image)
    assert store.image_bytes(project.id, image_id) == image.png
