"""Grouped, stratified splits: no group on two sides, class mix kept, reproducible from a file."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest

import dermlens.data.splits as splits_module
from dermlens.data.dataset import LabelledImages
from dermlens.data.readers import DatasetWarning
from dermlens.data.splits import SUBSETS, Split, grouped_split, load_split, save_split
from dermlens.errors import ConfigError, DatasetError


def synthetic(groups_per_class: dict[str, int], images_per_group: int = 2, seed: int = 0) -> LabelledImages:
    """Each class gets its own lesions; each lesion 1..images_per_group images; a patient per 3 lesions."""
    rng = np.random.default_rng(seed)
    ids, targets, groups, patients = [], [], [], []
    for k, (label, n_groups) in enumerate(groups_per_class.items()):
        for g in range(n_groups):
            for _ in range(int(rng.integers(1, images_per_group + 1))):
                ids.append(f"img{len(ids)}")
                targets.append(k)
                groups.append(f"{label}-L{g}")
                patients.append(f"P{len(groups) % 17}")
    return LabelledImages(paths=tuple(Path(f"{i}.jpg") for i in ids), targets=np.array(targets),
                          classes=tuple(groups_per_class), groups=tuple(groups), ids=tuple(ids),
                          metadata={"lesion_id": tuple(groups), "patient_id": tuple(patients)}, source="synthetic")


def sides_of(split: Split, groups) -> dict[str, set]:
    return {s: {groups[i] for i in split.indices(s)} for s in SUBSETS}


def assert_grouped_partition(split: Split, groups) -> None:
    everything = np.concatenate([split.indices(s) for s in SUBSETS])
    assert sorted(everything.tolist()) == list(range(len(groups)))  # each image exactly once
    sides = sides_of(split, groups)
    assert not (sides["train"] & sides["val"] or sides["train"] & sides["test"] or sides["val"] & sides["test"])


def test_split_is_grouped_stratified_and_deterministic():
    ds = synthetic({"mel": 60, "nv": 300, "bcc": 30}, images_per_group=4)
    split = grouped_split(ds, seed=3)
    assert_grouped_partition(split, ds.groups)
    assert split.group_by == "lesion_id" and split.seed == 3 and split.fractions == (0.7, 0.15, 0.15)
    for s, fraction in zip(SUBSETS, split.fractions):
        assert len(split.indices(s)) / len(ds) == pytest.approx(fraction, abs=0.03)
        assert split.indices(s).dtype == np.int64
    assert grouped_split(ds, seed=3) == split
    assert grouped_split(ds, seed=4) != split


def test_zero_fraction_gives_an_empty_subset():
    ds = synthetic({"mel": 5, "nv": 20})
    split = grouped_split(ds, fractions=(0.85, 0.15, 0.0))
    assert len(split.test) == 0 and len(split.val) > 0
    assert_grouped_partition(split, ds.groups)


def test_rare_class_gets_a_group_on_every_non_empty_side():
    ds = synthetic({"nv": 200, "df": 3}, images_per_group=1)
    split = grouped_split(ds)
    for s in SUBSETS:
        assert ds.subset(split.indices(s)).class_counts()["df"] == 1


def test_too_few_groups_names_the_class_and_what_to_do():
    ds = synthetic({"nv": 50, "vasc": 2}, images_per_group=1)
    with pytest.raises(DatasetError) as err:
        grouped_split(ds)
    message = str(err.value)
    assert "'vasc' has 2 images in 2 lesion_id groups" in message
    assert "['train', 'val', 'test']" in message and "merge it into another class" in message
    assert "'nv'" not in message
    grouped_split(ds, fractions=(0.8, 0.2, 0.0))  # two sides need only two groups


def test_absent_class_is_not_too_few():
    ds = LabelledImages(paths=tuple(Path(f"{i}.jpg") for i in range(6)), targets=np.zeros(6, dtype=int),
                        classes=("nv", "vasc"), groups=tuple(str(i) for i in range(6)))
    split = grouped_split(ds)
    assert split.group_by == "image_id"
    assert_grouped_partition(split, ds.groups)


@pytest.mark.parametrize("fractions", [(0.7, 0.2, 0.2), (1.2, -0.1, -0.1), (0.5, 0.5), (0.0, 0.0, 0.0)])
def test_bad_fractions(fractions):
    with pytest.raises(ConfigError, match="add up to 1"):
        grouped_split(synthetic({"nv": 10}), fractions=fractions)


def test_group_by_a_metadata_column():
    ds = synthetic({"mel": 40, "nv": 60})
    split = grouped_split(ds, group_by="patient_id")
    assert split.group_by == "patient_id"
    assert_grouped_partition(split, ds.metadata["patient_id"])
    with pytest.raises(ConfigError, match="'site' is not a metadata column"):
        grouped_split(ds, group_by="site")


def test_save_load_round_trip(tmp_path):
    ds = synthetic({"mel": 20, "nv": 40})
    split = grouped_split(ds, fractions=(0.6, 0.2, 0.2), seed=7)
    path = save_split(split, ds, tmp_path / "runs" / "split.json")
    document = json.loads(path.read_text())
    assert document["format"] == "dermlens-split" and document["version"] == 1
    assert document["seed"] == 7 and document["fractions"] == [0.6, 0.2, 0.2]
    assert document["group_by"] == "lesion_id" and document["classes"] == ["mel", "nv"]
    assert document["subsets"]["val"] == [ds.ids[i] for i in split.val]
    assert load_split(path, ds) == split
    # ids, not positions: the same images read in another order map back to the same images
    order = np.random.default_rng(0).permutation(len(ds))
    shuffled = ds.subset(order)
    reloaded = load_split(path, shuffled)
    assert [sorted(shuffled.ids[i] for i in reloaded.indices(s)) for s in SUBSETS] == \
           [sorted(ds.ids[i] for i in split.indices(s)) for s in SUBSETS]


def test_load_split_errors_and_warnings(tmp_path):
    ds = synthetic({"mel": 20, "nv": 40})
    path = save_split(grouped_split(ds), ds, tmp_path / "split.json")
    with pytest.raises(DatasetError, match=r"image ids of the split file are not in the dataset"):
        load_split(path, ds.subset(range(1, len(ds))))
    with pytest.warns(DatasetWarning, match="1 images of the dataset are in no subset"):
        document = json.loads(path.read_text())
        document["subsets"]["train"] = document["subsets"]["train"][1:]
        path.write_text(json.dumps(document))
        load_split(path, ds)
    document["subsets"]["test"].append(document["subsets"]["val"][0])
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match="is in both 'val' and 'test'"):
        load_split(path, ds)
    with pytest.raises(DatasetError, match="split file not found"):
        load_split(tmp_path / "nope.json", ds)
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(DatasetError, match="not a dermlens split file"):
        load_split(tmp_path / "other.json", ds)


def test_load_split_refuses_a_split_that_would_leak(tmp_path):
    ds = synthetic({"mel": 20, "nv": 40})
    split = grouped_split(ds)
    path = save_split(split, ds, tmp_path / "split.json")
    # The dataset is re-read and now says a test lesion is the same lesion as a train one.
    train_lesion, test_lesion = ds.groups[split.train[0]], ds.groups[split.test[0]]
    lesions = tuple(train_lesion if g == test_lesion else g for g in ds.groups)
    relabelled = LabelledImages(ds.paths, ds.targets, ds.classes, groups=lesions, ids=ds.ids,
                                metadata={"lesion_id": lesions})
    with pytest.raises(DatasetError, match=f"group '{train_lesion}' has images in both 'train' and 'test'"):
        load_split(path, relabelled)


def test_real_ham10000_split(ham, tmp_path):
    split = grouped_split(ham, seed=0)
    assert split.group_by == "lesion_id"
    assert_grouped_partition(split, ham.metadata["lesion_id"])
    overall = np.bincount(ham.targets, minlength=len(ham.classes)) / len(ham)
    big = np.bincount(ham.targets) >= 100
    for s, fraction in zip(SUBSETS, split.fractions):
        targets = ham.targets[split.indices(s)]
        assert len(targets) / len(ham) == pytest.approx(fraction, abs=0.01)
        share = np.bincount(targets, minlength=len(ham.classes)) / len(targets)
        assert np.all(np.abs(share - overall)[big] < 0.02), (s, share - overall)
    assert load_split(save_split(split, ham, tmp_path / "ham_split.json"), ham) == split


def test_docstring_examples_run():
    result = doctest.testmod(splits_module)
    assert result.attempted >= 3 and result.failed == 0
