"""The condition files and the catalogue built from them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from dermlens.data.labels import HAM10000_CLASSES
from dermlens.errors import DermlensError
from dermlens.knowledge import Catalogue, KnowledgeFileError, UnknownConditionError, load_catalogue
from dermlens.knowledge.catalogue import DEFAULT_FOLDER, RISK_GROUPS, read_condition

CONDITION_FILES = sorted(DEFAULT_FOLDER.glob("*.yaml"))
REQUIRED = ("code", "name", "aliases", "group", "model_class", "summary", "description", "causes", "signs",
            "severity", "see_a_doctor", "references", "review")
EXPECTED_CODES = {"mel", "nv", "bcc", "akiec", "bkl", "df", "vasc", "scc", "rosacea", "lupus", "atopic_dermatitis",
                  "acne", "psoriasis"}


def raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_one_file_per_expected_condition():
    assert {path.stem for path in CONDITION_FILES} == EXPECTED_CODES


@pytest.mark.parametrize("path", CONDITION_FILES, ids=lambda p: p.stem)
def test_condition_file_is_complete_and_valid(path: Path):
    data = raw(path)
    assert not [name for name in REQUIRED if name not in data], "missing fields"
    assert data["code"] == path.stem
    assert data["group"] in RISK_GROUPS
    assert data["model_class"] is None or data["model_class"] in HAM10000_CLASSES
    assert isinstance(data["name"], str) and data["name"].strip()
    for name in ("summary", "description", "severity", "see_a_doctor", "review"):
        assert isinstance(data[name], str) and len(data[name].strip()) > 20, name
    for name in ("causes", "signs"):
        assert data[name] and all(isinstance(item, str) and item.strip() for item in data[name])
    urls = [reference["url"] for reference in data["references"]]
    assert all(reference.get("title") and reference.get("publisher") for reference in data["references"])
    assert any(url.startswith("https://") for url in urls)
    # the review says honestly what the text was checked against
    assert re.search(r"checked against|not checked|compared", data["review"], re.IGNORECASE)


def test_every_ham10000_class_has_exactly_one_condition():
    model_classes = [raw(path)["model_class"] for path in CONDITION_FILES]
    for ham_code in HAM10000_CLASSES:
        assert model_classes.count(ham_code) == 1, ham_code


def test_scc_is_folded_into_akiec_and_says_so():
    catalogue = load_catalogue()
    assert catalogue.get("scc").model_class is None
    assert "squamous cell carcinoma" in catalogue.get("akiec").description.lower()
    assert "akiec" in catalogue.get("scc").description


def test_text_a_person_reads_uses_uk_spelling():
    american = re.compile(r"\b(color|colored|tumor|tumors|center|gray|behavior|pediatric|hemorrhage)\b",
                          re.IGNORECASE)
    for condition in load_catalogue():
        text = " ".join([condition.name, condition.summary, condition.description, *condition.causes,
                         *condition.signs, condition.severity, condition.see_a_doctor])
        assert not american.search(text), condition.code


def test_cancer_pages_follow_nice_ng12():
    catalogue = load_catalogue()
    for code in ("mel", "bcc", "scc"):
        condition = catalogue.get(code)
        assert "NG12" in condition.see_a_doctor
        assert any(r.url == "https://www.nice.org.uk/guidance/ng12" for r in condition.references)
    assert "two weeks" in catalogue.get("mel").see_a_doctor
    assert "routine" in catalogue.get("bcc").see_a_doctor


def test_catalogue_is_ordered_by_risk_group_then_name():
    conditions = load_catalogue().conditions
    assert len(conditions) == 13
    keys = [(RISK_GROUPS.index(c.group), c.name.casefold()) for c in conditions]
    assert keys == sorted(keys)
    assert [c.code for c in conditions[:3]] == ["bcc", "mel", "scc"]
    assert conditions[3].code == "akiec"
    assert conditions[-1].group == "inflammatory"


def test_get_and_for_model_class():
    catalogue = load_catalogue()
    assert catalogue.get(" MEL ").name == "Melanoma"
    assert "rosacea" in catalogue and "unknown" not in catalogue
    for ham_code in HAM10000_CLASSES:
        assert catalogue.for_model_class(ham_code).model_class == ham_code


def test_unknown_code_is_a_dermlens_error_listing_known_codes():
    catalogue = load_catalogue()
    with pytest.raises(UnknownConditionError) as error:
        catalogue.get("chickenpox")
    assert isinstance(error.value, DermlensError)
    assert "chickenpox" in str(error.value) and "mel" in str(error.value) and "psoriasis" in str(error.value)
    with pytest.raises(UnknownConditionError, match="scc"):
        catalogue.for_model_class("scc")


def test_default_catalogue_is_cached_and_other_folders_are_not(tmp_path: Path):
    assert load_catalogue() is load_catalogue()
    (tmp_path / "nv.yaml").write_text((DEFAULT_FOLDER / "nv.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    small = load_catalogue(tmp_path)
    assert isinstance(small, Catalogue) and small.codes == ("nv",)
    assert load_catalogue(tmp_path) is not small


def test_to_dict_is_json_ready():
    condition = load_catalogue().get("mel")
    page = json.loads(json.dumps(condition.to_dict()))
    assert page["code"] == "mel" and page["references"][0]["url"].startswith("https://")
    assert isinstance(page["signs"], list) and page["model_class"] == "mel"
    assert set(condition.summary_dict()) == {"code", "name", "group", "model_class", "summary"}


def write_variant(tmp_path: Path, name: str = "nv", **changes) -> Path:
    data = raw(DEFAULT_FOLDER / "nv.yaml")
    for key, value in changes.items():
        if value is KeyError:
            del data[key]
        else:
            data[key] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(("changes", "field"), [
    ({"signs": KeyError}, "signs"),
    ({"group": "harmless"}, "group"),
    ({"model_class": "scc"}, "model_class"),
    ({"causes": []}, "causes"),
    ({"summary": ""}, "summary"),
    ({"references": [{"title": "A page", "publisher": "Someone", "url": "http://example.org"}]}, "references"),
    ({"references": [{"title": "A page", "url": "https://example.org"}]}, "references"),
    ({"code": "mole"}, "code"),
])
def test_malformed_file_names_the_file_and_the_field(tmp_path: Path, changes: dict, field: str):
    path = write_variant(tmp_path, **changes)
    with pytest.raises(KnowledgeFileError) as error:
        read_condition(path)
    assert "nv.yaml" in str(error.value) and repr(field) in str(error.value)


def test_invalid_yaml_and_empty_folder_are_clear_errors(tmp_path: Path):
    (tmp_path / "broken.yaml").write_text("code: [unclosed\n", encoding="utf-8")
    with pytest.raises(KnowledgeFileError, match="broken.yaml"):
        load_catalogue(tmp_path)
    with pytest.raises(KnowledgeFileError, match="No condition files"):
        load_catalogue(tmp_path / "nothing-here")


def test_two_conditions_cannot_claim_one_model_class(tmp_path: Path):
    write_variant(tmp_path)
    write_variant(tmp_path, name="freckle", code="freckle")
    with pytest.raises(KnowledgeFileError, match="model class 'nv'"):
        load_catalogue(tmp_path)


def test_condition_files_are_package_data():
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"knowledge/conditions/*.yaml"' in pyproject
