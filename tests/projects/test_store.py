"""Projects, tags, images and labels on SQLite and PostgreSQL."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import inspect

from dermlens.projects.database import Database, DatabaseError
from dermlens.projects.errors import Conflict, Invalid, NotFound
from dermlens.projects.intake import prepare_image
from dermlens.projects.keys import secret_matches


def jpeg(seed: int, size=(64, 48), exif: bool = False) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    image = Image.fromarray(pixels)
    if exif:
        info = Image.Exif()
        info[0x010F] = "PhoneMaker"  # Make
        info[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS
        image.save(out, format="JPEG", exif=info)
    else:
        image.save(out, format="JPEG")
    return out.getvalue()


def test_migrations_create_every_table(workspace):
    tables = set(inspect(workspace.database.engine).get_table_names())
    assert {"projects", "tags", "images", "labels", "iterations", "predictions", "corrections",
            "alembic_version"} <= tables
    workspace.database.migrate()  # a second run is a no-op, as every worker start is


def test_projects_and_tags_lifecycle(workspace):
    store = workspace.store
    project, key = store.create_project("lentigo vs keratosis")
    assert secret_matches(key, store.project(project.id).prediction_key_hash)
    with pytest.raises(Conflict, match="already exists"):
        store.create_project("lentigo vs keratosis")
    with pytest.raises(Invalid, match="kind"):
        store.create_project("x", kind="regression")
    tags = store.add_tags(project.id, ["akiec", "bkl"])
    with pytest.raises(Conflict):
        store.add_tags(project.id, ["akiec"])
    store.rename_tag(project.id, tags[1].id, "solar lentigo")
    assert [t.name for t in store.tags(project.id)] == ["akiec", "solar lentigo"]
    store.rename_project(project.id, "renamed")
    assert store.project(project.id).name == "renamed"
    new_key = store.new_prediction_key(project.id)
    assert not secret_matches(key, store.project(project.id).prediction_key_hash)
    assert secret_matches(new_key, store.project(project.id).prediction_key_hash)
    store.delete_project(project.id)
    with pytest.raises(NotFound):
        store.project(project.id)


def test_multilabel_projects_get_a_negative_tag(workspace):
    project, _ = workspace.store.create_project("many", kind="multilabel")
    assert [(t.name, t.kind) for t in workspace.store.tags(project.id)] == [("Negative", "negative")]


def test_images_are_deduplicated_stripped_and_tagged(workspace):
    store = workspace.store
    project, _ = store.create_project("p")
    a, b = (t.id for t in store.add_tags(project.id, ["a", "b"]))
    first = prepare_image(jpeg(1, exif=True), "../../etc/photo.jpg")
    assert first.name == "photo.jpg"  # shown only; the file is stored under its hash
    image_id, new = store.add_image(project.id, first, tag_ids=[a])
    assert new
    same_id, new = store.add_image(project.id, prepare_image(jpeg(1, exif=True), "copy.jpg"), tag_ids=[b])
    assert (same_id, new) == (image_id, False)
    stored = store.image_bytes(project.id, image_id)
    with Image.open(io.BytesIO(stored)) as reopened:
        assert reopened.format == "PNG" and not reopened.getexif() and "exif" not in reopened.info
    rows, total = store.images(project.id, "all")
    assert total == 1 and rows[0].tag_ids == [b]  # multiclass: the new tag replaced the old one
    other, _ = store.add_image(project.id, prepare_image(jpeg(2), "two.jpg"))
    assert store.images(project.id, "untagged")[1] == 1
    assert store.set_labels(project.id, [image_id, other], add=[a]) == 2
    assert store.images(project.id, f"tag:{a}")[1] == 2
    with pytest.raises(Invalid, match="one tag"):
        store.set_labels(project.id, [other], add=[a, b])
    with pytest.raises(NotFound):
        store.set_labels(project.id, [other], add=[9999])
    assert store.tag_counts(project.id) == {a: 2, b: 0}
    assert store.delete_images(project.id, [other]) == 1
    assert not workspace.store.blobs.exists(f"{prepare_image(jpeg(2), 'x').sha256}.png")


def test_a_big_photo_is_downscaled_on_arrival():
    image = prepare_image(jpeg(3, size=(3000, 2000)), "big.jpg")
    assert (image.width, image.height) == (1024, 683)


def test_bad_files_get_clear_errors():
    with pytest.raises(Invalid, match="not an image"):
        prepare_image(b"%PDF-1.4 not a photo", "report.pdf")
    with pytest.raises(Invalid, match="truncated or damaged"):
        prepare_image(jpeg(4)[:300], "cut.jpg")


def test_a_database_url_that_cannot_work_says_so(tmp_path):
    with pytest.raises(DatabaseError, match="not a database URL"):
        Database.open("not a url at all")
    with pytest.raises(DatabaseError, match="SQLite or PostgreSQL"):
        Database.open("mysql://user@localhost/db")
    with pytest.raises(DatabaseError, match="cannot open"):
        Database.open("postgresql+psycopg://nobody:wrong@127.0.0.1:1/none")


def test_accepting_suggestions_tags_only_untagged_images_with_one(workspace):
    from dermlens.projects.schema import Iteration, PredictionRecord

    store = workspace.store
    project, _ = store.create_project("p")
    a, b = (t.id for t in store.add_tags(project.id, ["a", "b"]))
    tagged, _ = store.add_image(project.id, prepare_image(jpeg(1), "1.jpg"), tag_ids=[a])
    guessed, _ = store.add_image(project.id, prepare_image(jpeg(2), "2.jpg"))
    unguessed, _ = store.add_image(project.id, prepare_image(jpeg(3), "3.jpg"))
    with workspace.database.session() as session:
        iteration = Iteration(project_id=project.id, number=1, kind="quick", status="completed", config={})
        session.add(iteration)
        session.flush()
        for image_id in (tagged, guessed):
            session.add(PredictionRecord(project_id=project.id, iteration_id=iteration.id, image_id=image_id,
                                         source="suggestion", probabilities={"a": 0.2, "b": 0.8}, top_tag="b",
                                         top_probability=0.8))
        session.commit()
    assert store.accept_suggestions(project.id, [tagged, guessed, unguessed]) == 1
    assert store.images(project.id, f"tag:{b}")[1] == 1 and store.images(project.id, "untagged")[1] == 1
    assert store.images(project.id, f"tag:{a}")[0][0].image.id == tagged  # a tagged image keeps its tag

    (row,) = store.overview()
    assert (row.project.id, row.images, row.iterations, row.published) == (project.id, 3, 1, None)
    assert [t.name for t in row.tags] == ["a", "b"] and row.tag_counts == {a: 1, b: 1}
