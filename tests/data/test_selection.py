"""Selecting part of a dataset: some classes, some body sites; and a shared split applied to that part."""

from __future__ import annotations

import numpy as np
import pytest

from dermlens.data.readers import read_dataset
from dermlens.data.selection import Selection, select
from dermlens.data.splits import grouped_split, load_split, save_split
from dermlens.errors import DatasetError


@pytest.fixture(scope="module")
def small(ham_small):
    return read_dataset(ham_small)


def test_classes_are_kept_in_the_order_asked(small):
    part = select(small, Selection(classes=("mel", "nv", "bkl")))
    assert part.classes == ("mel", "nv", "bkl")
    assert part.class_counts() == {c: small.class_counts()[c] for c in ("mel", "nv", "bkl")}
    original = dict(zip(small.ids, (small.classes[t] for t in small.targets)))
    assert all(original[i] == part.classes[t] for i, t in zip(part.ids, part.targets))


def test_sites_are_selected_and_excluded(small):
    sites = np.array(small.metadata["localization"])
    face = select(small, Selection(sites=("Face",)))
    not_face = select(small, Selection(exclude_sites=("face",)))
    assert len(face) == int((sites == "face").sum()) > 0
    assert len(face) + len(not_face) == len(small)
    assert set(face.ids).isdisjoint(not_face.ids)
    assert face.classes == small.classes  # a site selection keeps the class list


@pytest.mark.parametrize("selection, message", [
    (Selection(classes=("mel", "naevus")), "does not have"),
    (Selection(sites=("elbow",)), "no image has"),
    (Selection(classes=("vasc",), sites=("foot",), exclude_sites=("foot",)), "no image of the dataset is left"),
])
def test_impossible_selections_say_why(small, selection, message):
    with pytest.raises(DatasetError, match=message):
        select(small, selection)


def test_sites_need_a_site_column(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a", "b"):
        (tmp_path / "images" / f"{name}.jpg").write_bytes(b"")
    (tmp_path / "labels.csv").write_text("image_id,label\na,mel\nb,nv\n")
    with pytest.raises(DatasetError, match="'localization' column"):
        select(read_dataset(tmp_path), Selection(sites=("face",)))


def test_a_split_of_the_whole_serves_a_part(small, tmp_path):
    split = grouped_split(small, seed=0)
    path = save_split(split, small, tmp_path / "split.json")
    part = select(small, Selection(classes=("mel", "bkl")))
    with pytest.raises(DatasetError, match="not in the dataset"):
        load_split(path, part)
    part_split = load_split(path, part, part=True)
    for subset in ("train", "val", "test"):
        whole_ids = {small.ids[i] for i in split.indices(subset)}
        part_ids = {part.ids[i] for i in part_split.indices(subset)}
        assert part_ids == {i for i in whole_ids if i in set(part.ids)}
