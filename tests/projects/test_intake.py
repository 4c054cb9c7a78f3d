"""Zip imports: limits, bombs, links and encrypted archives are refused; folders and CSVs tag images."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from dermlens.projects.errors import Invalid
from dermlens.projects.intake import ZipLimits, folder_entries, zip_entries
from dermlens.projects.labelling import entry_tags


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def archive(files: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zipped:
        for name, data in files.items():
            zipped.writestr(name, data)
    return out.getvalue()


def test_a_zip_with_a_folder_per_tag_tags_its_images():
    data = archive({"akiec/a.jpg": jpeg(1), "bkl/b.jpg": jpeg(2), "readme.txt": b"hi", "__MACOSX/._a.jpg": b"x"})
    tagged = entry_tags(list(zip_entries(data)))
    assert [(e.name, tags) for e, tags in tagged] == [("akiec/a.jpg", ("akiec",)), ("bkl/b.jpg", ("bkl",))]


def test_a_zip_bomb_is_refused_before_it_is_inflated():
    bomb = archive({"bomb.png": b"\0" * (20 * 2**20)})  # 20 MB of zeros compress about 1000:1
    assert len(bomb) < 100_000
    with pytest.raises(Invalid, match="zip bomb"):
        list(zip_entries(bomb))


def test_archive_limits_are_enforced():
    with pytest.raises(Invalid, match="files; the limit"):
        list(zip_entries(archive({f"{i}.jpg": b"x" for i in range(5)}), ZipLimits(max_entries=3)))
    with pytest.raises(Invalid, match="limit per file"):
        list(zip_entries(archive({"a.jpg": jpeg(1)}, zipfile.ZIP_STORED), ZipLimits(max_entry_bytes=100)))
    with pytest.raises(Invalid, match="not a readable zip"):
        list(zip_entries(b"PK\x03\x04 truncated"))


def test_links_in_a_zip_are_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        link = zipfile.ZipInfo("evil.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zipped.writestr(link, "/etc/passwd")
    with pytest.raises(Invalid, match="link"):
        list(zip_entries(out.getvalue()))


def test_path_traversal_names_are_only_names():
    data = archive({"../../../../tmp/escape.jpg": jpeg(1), "/abs/olute.jpg": jpeg(2)})
    entries = list(zip_entries(data))
    assert len(entries) == 2  # read into memory only; a name is never a path
    assert [e.folder for e in entries] == ["tmp", "abs"]  # at most a tag name


def test_a_csv_of_labels_tags_the_images_it_lists(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "ISIC_1.jpg").write_bytes(jpeg(1))
    (tmp_path / "img" / "ISIC_2.jpg").write_bytes(jpeg(2))
    (tmp_path / "img" / "other.jpg").write_bytes(jpeg(3))
    (tmp_path / "img" / "meta.csv").write_text("image_id,dx,lesion_id\nISIC_1,bkl,L1\nISIC_2,akiec,L2\nISIC_9,nv,L9\n")
    tagged = {e.name: tags for e, tags in entry_tags(list(folder_entries(tmp_path / "img")))}
    assert tagged == {"ISIC_1.jpg": ("bkl",), "ISIC_2.jpg": ("akiec",), "other.jpg": ()}


def test_a_csv_without_an_id_column_says_what_it_needs():
    with pytest.raises(Invalid, match="image_id"):
        entry_tags(list(zip_entries(archive({"a.jpg": jpeg(1), "labels.csv": b"name,label\na,bkl\n"}))))
