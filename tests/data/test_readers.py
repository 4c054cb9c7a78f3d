"""Dataset readers: every layout gives the same `LabelledImages`, and bad input gives an actionable error."""

from __future__ import annotations

import doctest
import math
import os
import time

import numpy as np
import pytest

import dermlens.data.readers as readers_module
from dermlens.data.labels import HAM10000_CLASSES
from dermlens.data.readers import (
    DatasetWarning,
    detect_layout,
    read_class_folders,
    read_dataset,
    read_ham_metadata_csv,
    read_isic_ground_truth_csv,
    read_labels_csv,
)
from dermlens.errors import DatasetError

ONE_HOT_HEADER = "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"


def labels_of(ds) -> list[str]:
    return [ds.classes[t] for t in ds.targets]


# --- each layout ------------------------------------------------------------------------------------------


def test_ham_metadata_csv_prefers_label_and_keeps_metadata(tmp_path, make_images, write_csv):
    make_images(tmp_path / "images", ["ISIC_1.jpg", "ISIC_2.jpg", "ISIC_3.png"])
    csv = write_csv(tmp_path / "meta.csv", "image_id,label,lesion_id,dx,dx_type,age,sex,localization", [
        "ISIC_1,mel,HAM_1,nv,histo,45.0,male,back",
        "ISIC_2,mel,HAM_1,nv,histo,,female,face",
        "ISIC_3,vasc,HAM_2,vasc,consensus,70,unknown,trunk",
    ])
    ds = read_ham_metadata_csv(csv, tmp_path / "images")
    assert ds.classes == HAM10000_CLASSES  # all seven, even absent ones
    assert labels_of(ds) == ["mel", "mel", "vasc"]  # label, not dx
    assert ds.groups == ("HAM_1", "HAM_1", "HAM_2")
    assert ds.ids == ("ISIC_1", "ISIC_2", "ISIC_3")
    assert [p.name for p in ds.paths] == ["ISIC_1.jpg", "ISIC_2.jpg", "ISIC_3.png"]
    assert all(p.is_absolute() and p.is_file() for p in ds.paths)
    assert ds.metadata["age"][0] == 45.0 and math.isnan(ds.metadata["age"][1]) and ds.metadata["age"][2] == 70.0
    assert ds.metadata["sex"] == ("male", "female", "unknown")
    assert ds.metadata["localization"] == ("back", "face", "trunk")
    assert ds.metadata["dx"] == ("nv", "nv", "vasc") and ds.metadata["dx_type"][2] == "consensus"
    assert "image_id" not in ds.metadata and "label" not in ds.metadata


def test_ham_metadata_csv_uses_dx_without_label_and_warns_on_non_numeric_age(tmp_path, make_images, write_csv):
    make_images(tmp_path / "images", ["a.jpg", "b.jpg"])
    csv = write_csv(tmp_path / "HAM10000_metadata.csv", "lesion_id,image_id,dx,age",
                    ["L1,a,bcc,unknown", "L2,b,df,30"])
    with pytest.warns(DatasetWarning, match="1 age values are not numbers"):
        ds = read_ham_metadata_csv(csv)
    assert labels_of(ds) == ["bcc", "df"]
    assert math.isnan(ds.metadata["age"][0]) and ds.metadata["age"][1] == 30.0


def test_isic_ground_truth_csv(tmp_path, make_images, write_csv):
    make_images(tmp_path / "images", ["ISIC_1.jpg", "ISIC_2.jpg"])
    csv = write_csv(tmp_path / "gt.csv", ONE_HOT_HEADER, [
        "ISIC_1,0.0,0.0,0.0,0.0,0.0,0.0,1.0",
        "ISIC_2,1.0,0.0,0.0,0.0,0.0,0.0,0.0",
    ])
    ds = read_isic_ground_truth_csv(csv)
    assert labels_of(ds) == ["vasc", "mel"]
    assert ds.classes == HAM10000_CLASSES
    assert ds.groups == ds.ids == ("ISIC_1", "ISIC_2")  # no lesion info: each image its own group
    assert ds.metadata == {}


def test_isic_ground_truth_csv_groups_by_lesion_id_when_present(tmp_path, make_images, write_csv):
    make_images(tmp_path / "images", ["a.jpg", "b.jpg"])
    csv = write_csv(tmp_path / "gt.csv", ONE_HOT_HEADER + ",lesion_id",
                    ["a,0,1,0,0,0,0,0,L9", "b,0,1,0,0,0,0,0,L9"])
    assert read_isic_ground_truth_csv(csv).groups == ("L9", "L9")


def test_isic_ground_truth_rows_without_exactly_one_label_are_named(tmp_path, make_images, write_csv):
    make_images(tmp_path / "images", ["ok.jpg", "none.jpg", "two.jpg"])
    csv = write_csv(tmp_path / "gt.csv", ONE_HOT_HEADER, [
        "ok,0,1,0,0,0,0,0", "none,0,0,0,0,0,0,0", "two,1,1,0,0,0,0,0",
    ])
    with pytest.raises(DatasetError, match="2 rows do not mark exactly one") as err:
        read_isic_ground_truth_csv(csv)
    message = str(err.value)
    assert "'none'" in message and "'two'" in message and "'ok'" not in message and str(csv) in message


@pytest.mark.parametrize(("columns", "values", "groups"), [
    ("", "", ("a", "b")),
    (",patient_id", ",P1", ("P1", "P1")),
    (",patient_id,lesion_id", ",P1,L{n}", ("L1", "L2")),
])
def test_labels_csv_group_column(tmp_path, make_images, write_csv, columns, values, groups):
    make_images(tmp_path / "images", ["a.jpg", "b.jpg"])
    rows = [f"a,melanoma{values.format(n=1)}", f"b,Nevus{values.format(n=2)}"]
    ds = read_labels_csv(write_csv(tmp_path / "labels.csv", "image_id,label" + columns, rows))
    assert labels_of(ds) == ["mel", "nv"]  # aliases mapped
    assert ds.groups == groups


def test_empty_group_ids_fall_back_to_the_image_with_a_warning(tmp_path, make_images, write_csv):
    make_images(tmp_path / "images", ["a.jpg", "b.jpg"])
    csv = write_csv(tmp_path / "labels.csv", "image_id,label,lesion_id", ["a,nv,L1", "b,nv,"])
    with pytest.warns(DatasetWarning, match="1 rows have an empty group id"):
        ds = read_labels_csv(csv)
    assert ds.groups == ("L1", "b")


def test_labels_outside_ham10000_give_sorted_classes(tmp_path, make_images, write_csv):
    make_images(tmp_path / "images", ["a.jpg", "b.jpg", "c.jpg"])
    csv = write_csv(tmp_path / "labels.csv", "image_id,label,site", ["a,wart,hand", "b,mel,back", "c,acne,face"])
    ds = read_labels_csv(csv)
    assert ds.classes == ("acne", "mel", "wart")
    assert labels_of(ds) == ["wart", "mel", "acne"]
    assert ds.metadata == {"site": ("hand", "back", "face")}


def test_classes_argument_fixes_the_order(tmp_path, make_images, write_csv):
    make_images(tmp_path / "images", ["a.jpg", "b.jpg"])
    csv = write_csv(tmp_path / "labels.csv", "image_id,label", ["a,nv", "b,mel"])
    ds = read_dataset(csv, classes=("nv", "Melanoma"))
    assert ds.classes == ("nv", "mel")
    assert ds.targets.tolist() == [0, 1]


def test_image_lookup_accepts_extensions_in_ids_and_other_formats(tmp_path, make_images, write_csv):
    make_images(tmp_path / "images", ["a.jpg", "b.JPEG", "c.png", "d.bmp", "e.tif", "f.TIFF", "g.png"])
    (tmp_path / "images" / "a.txt").write_text("not an image")
    csv = write_csv(tmp_path / "labels.csv", "image_id,label",
                    [f"{i},nv" for i in ("a", "b", "c.png", "d", "e.tif", "f", "g.PNG")])
    ds = read_labels_csv(csv)
    assert [p.name for p in ds.paths] == ["a.jpg", "b.JPEG", "c.png", "d.bmp", "e.tif", "f.TIFF", "g.png"]
    assert ds.ids[2] == "c.png"  # ids are kept as written


def test_class_folders_skip_non_images_with_a_warning(tmp_path, make_images):
    make_images(tmp_path / "melanoma", ["m1.jpg", "m2.png"])
    make_images(tmp_path / "nv", ["n1.jpg"])
    (tmp_path / "nv" / "notes.txt").write_text("x")
    (tmp_path / "nv" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "nv" / "._n1.jpg").write_bytes(b"\0")  # macOS resource fork, not an image
    os.symlink(tmp_path / "gone.jpg", tmp_path / "nv" / "broken.jpg")
    (tmp_path / "README.md").write_text("x")
    with pytest.warns(DatasetWarning, match=r"skipped 5 entries") as record:
        ds = read_class_folders(tmp_path)
    message = str(record[0].message)
    assert "2 files that are not images" in message and "1 files beside the class folders" in message
    assert "2 hidden files or broken links" in message
    assert labels_of(ds) == ["mel", "mel", "nv"]
    assert ds.groups == ds.ids == ("m1", "m2", "n1")
    assert ds.classes == HAM10000_CLASSES
    assert all(p.is_file() for p in ds.paths)


# --- layout detection --------------------------------------------------------------------------------------


def _ham_folder(root, mi, wc, csv_name="labels.csv"):
    mi(root / "images", ["x1.jpg", "x2.jpg"])
    wc(root / csv_name, "lesion_id,image_id,dx", ["L1,x1,nv", "L2,x2,mel"])
    return root


def _ham_metadata_folder(root, mi, wc):
    return _ham_folder(root, mi, wc, "HAM10000_metadata.csv")


def _ham_csv_file(root, mi, wc):
    return _ham_folder(root, mi, wc) / "labels.csv"


def _ground_truth_csv(root, mi, wc):
    mi(root / "images", ["x1.jpg", "x2.jpg"])
    return wc(root / "gt.csv", ONE_HOT_HEADER, ["x1,0,1,0,0,0,0,0", "x2,1,0,0,0,0,0,0"])


def _labels_csv_folder(root, mi, wc):
    mi(root / "images", ["x1.jpg", "x2.jpg"])
    wc(root / "labels.csv", "image_id,label", ["x1,nevus", "x2,melanoma"])
    return root


def _class_folders(root, mi, wc):
    mi(root / "nevus", ["x1.jpg"])
    mi(root / "melanoma", ["x2.jpg"])
    return root


@pytest.mark.parametrize(("build", "layout"), [
    (_ham_folder, "ham_metadata_csv"),
    (_ham_metadata_folder, "ham_metadata_csv"),
    (_ham_csv_file, "ham_metadata_csv"),
    (_ground_truth_csv, "isic_ground_truth_csv"),
    (_labels_csv_folder, "labels_csv"),
    (_class_folders, "class_folders"),
])
def test_read_dataset_detects_each_layout(tmp_path, make_images, write_csv, build, layout):
    path = build(tmp_path, make_images, write_csv)
    assert detect_layout(path) == layout
    ds = read_dataset(path)
    assert sorted(zip(ds.ids, labels_of(ds))) == [("x1", "nv"), ("x2", "mel")]
    assert all(p.is_file() for p in ds.paths)


def test_images_beside_the_csv_or_in_an_explicit_folder(tmp_path, make_images, write_csv):
    make_images(tmp_path / "flat", ["a.jpg"])
    beside = read_dataset(write_csv(tmp_path / "flat" / "labels.csv", "image_id,label", ["a,nv"]))
    assert beside.paths[0].parent.name == "flat"
    make_images(tmp_path / "elsewhere", ["b.jpg"])
    csv = write_csv(tmp_path / "meta" / "labels.csv", "image_id,label", ["b,nv"])
    assert read_dataset(csv, images_dir=tmp_path / "elsewhere").paths[0].parent.name == "elsewhere"


def test_symlinked_images_folder_and_files(tmp_path, make_images, write_csv):
    store = make_images(tmp_path / "store", ["a.jpg", "b.png"])
    linked_files = tmp_path / "files"
    linked_files.mkdir()
    for name in ("a.jpg", "b.png"):
        os.symlink(store / name, linked_files / name)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    os.symlink(linked_files, dataset / "images", target_is_directory=True)  # link to a folder of links
    write_csv(dataset / "labels.csv", "image_id,label", ["a,nv", "b,mel"])
    ds = read_dataset(dataset)
    assert [p.name for p in ds.paths] == ["a.jpg", "b.png"]
    assert all(p.parent == (dataset / "images").absolute() for p in ds.paths)  # link path kept, not resolved
    assert all(p.is_file() for p in ds.paths)


# --- bad input ---------------------------------------------------------------------------------------------


def _labels(tmp_path, make_images, write_csv, rows, images=("a.jpg", "b.jpg")):
    make_images(tmp_path / "images", images)
    return write_csv(tmp_path / "labels.csv", "image_id,label", rows)


def _missing_path(t, mi, wc):
    return t / "nowhere"


def _empty_file(t, mi, wc):
    (t / "labels.csv").write_bytes(b"")
    return t / "labels.csv"


def _header_only(t, mi, wc):
    return wc(t / "labels.csv", "image_id,label", [])


def _not_utf8(t, mi, wc):
    (t / "labels.csv").write_bytes(b"image_id,label\n\xff\xfe\x00bad,\x81\n")
    return t / "labels.csv"


def _unknown_columns(t, mi, wc):
    return wc(t / "labels.csv", "name,class", ["a,nv"])


def _duplicate_ids(t, mi, wc):
    return _labels(t, mi, wc, ["a,nv", "b,nv", "a,mel", "b,mel", "c,nv"], images=("a.jpg", "b.jpg", "c.jpg"))


def _empty_label(t, mi, wc):
    return _labels(t, mi, wc, ["a,nv", "b,  "])


def _empty_id(t, mi, wc):
    return _labels(t, mi, wc, ["a,nv", ",mel"])


def _missing_images(t, mi, wc):
    return _labels(t, mi, wc, [f"m{i},nv" for i in range(7)] + ["a,nv"])


@pytest.mark.parametrize(("setup", "fragments"), [
    (_missing_path, ["nowhere", "no such file or folder"]),
    (_empty_file, ["labels.csv", "file is empty"]),
    (_header_only, ["labels.csv", "header but no rows"]),
    (_not_utf8, ["labels.csv", "cannot be read as a UTF-8 CSV"]),
    (_unknown_columns, ["columns ['class', 'name'] match no known layout", "image_id + label"]),
    (_duplicate_ids, ["labels.csv", "2 duplicate image ids", "'a' x2", "'b' x2"]),
    (_empty_label, ["1 rows have an empty label", "line 3 ('b')", "Fill in the label"]),
    (_empty_id, ["1 rows have an empty image_id", "line 3"]),
    (_missing_images, ["labels.csv", "7 of 8 images not found in", "['m0', 'm1', 'm2', 'm3', 'm4']", "images_dir="]),
])
def test_read_dataset_errors_say_what_to_fix(tmp_path, make_images, write_csv, setup, fragments):
    path = setup(tmp_path, make_images, write_csv)
    with pytest.raises(DatasetError) as err:
        read_dataset(path)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_missing_columns_are_listed(tmp_path, write_csv):
    csv = write_csv(tmp_path / "meta.csv", "image_id,dx,age", ["a,nv,3"])
    with pytest.raises(DatasetError, match=r"missing columns \['lesion_id'\]; found \['image_id', 'dx', 'age'\]"):
        read_ham_metadata_csv(csv)
    with pytest.raises(DatasetError, match=r"missing columns \['label'\]"):
        read_labels_csv(csv)
    with pytest.raises(DatasetError, match=r"missing columns \['MEL', 'NV', .*needs image,MEL"):
        read_isic_ground_truth_csv(csv)


def test_missing_images_folder(tmp_path, write_csv):
    csv = write_csv(tmp_path / "labels.csv", "image_id,label", ["a,nv"])
    with pytest.raises(DatasetError, match="image folder .*elsewhere not found"):
        read_dataset(csv, images_dir=tmp_path / "elsewhere")


def test_unknown_labels_are_counted(tmp_path, make_images, write_csv):
    csv = _labels(tmp_path, make_images, write_csv, ["a,nv", "b,wart", "c,wart", "d,acne"],
                  images=("a.jpg", "b.jpg", "c.jpg", "d.jpg"))
    with pytest.raises(DatasetError, match=r"unknown labels 'wart' \(2\), 'acne' \(1\); expected one of \['nv'"):
        read_dataset(csv, classes=("nv", "mel"))


def test_empty_class_folder_is_an_error(tmp_path, make_images):
    make_images(tmp_path / "nv", ["a.jpg"])
    (tmp_path / "mel").mkdir()
    (tmp_path / "mel" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"folder 'mel' holds no images .*1 other entries, e.g. \['notes.txt'\]"):
        read_class_folders(tmp_path)


def test_same_image_in_two_class_folders_is_an_error(tmp_path, make_images):
    make_images(tmp_path / "nv", ["a.jpg"])
    make_images(tmp_path / "mel", ["a.png"])
    with pytest.raises(DatasetError, match="1 duplicate image ids"):
        read_dataset(tmp_path)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no class sub-folders, labels.csv or HAM10000_metadata.csv"):
        read_dataset(tmp_path)


def test_images_dir_with_class_folders_is_an_error(tmp_path, make_images):
    make_images(tmp_path / "nv", ["a.jpg"])
    with pytest.raises(DatasetError, match="images_dir is only used with a CSV"):
        read_dataset(tmp_path, images_dir=tmp_path)


def test_ragged_rows_are_named(tmp_path, write_csv):
    csv = write_csv(tmp_path / "labels.csv", "image_id,label", ["a,nv", "b,nv,extra"])
    with pytest.raises(DatasetError, match=r"1 lines do not have 2 fields .*lines \[3\]"):
        read_labels_csv(csv)


# --- real data and examples --------------------------------------------------------------------------------


def test_real_ham10000(ham_dir):
    start = time.perf_counter()
    ds = read_dataset(ham_dir)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"reading HAM10000 took {elapsed:.2f} s"
    assert len(ds) == 10_015
    assert ds.classes == HAM10000_CLASSES
    assert ds.class_counts() == {"mel": 1113, "nv": 6705, "bcc": 514, "akiec": 327, "bkl": 1099, "df": 115,
                                 "vasc": 142}
    assert ds.groups == ds.metadata["lesion_id"]
    assert len(set(ds.groups)) == 7470
    assert ds.paths[0] == (ham_dir / "images" / f"{ds.ids[0]}.jpg").absolute()
    assert all(isinstance(a, float) for a in ds.metadata["age"])


def test_real_external_isic_labels_map_to_ham_codes(external_dir):
    ds = read_dataset(external_dir / "labels.csv")
    assert len(ds) == 339
    counts = ds.class_counts()
    assert {c for c, n in counts.items() if n} == {"mel", "nv", "df", "bkl", "akiec"}
    assert (counts["mel"], counts["nv"], counts["df"], counts["bkl"], counts["akiec"]) == (187, 146, 3, 1, 2)
    assert ds.groups == ds.ids  # no lesion information
    assert np.all(ds.targets < len(HAM10000_CLASSES))


def test_docstring_examples_run():
    result = doctest.testmod(readers_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6 and result.failed == 0
