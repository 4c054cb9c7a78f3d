"""Offline question answering over the condition pages."""

from __future__ import annotations

import json

import pytest

from dermlens.knowledge import UnknownConditionError, answer_question, load_catalogue
from dermlens.knowledge.answers import SECTIONS, _index_for, passages


def section_text(code: str, section: str) -> str:
    value = getattr(load_catalogue().get(code), section)
    return " ".join(f"• {item}" for item in value) if isinstance(value, tuple) else value


def test_what_causes_melanoma_finds_the_melanoma_causes():
    answer = answer_question("What causes melanoma?")
    assert answer.found and (answer.condition_code, answer.section) == ("mel", "causes")
    assert answer.text.startswith("From the page on Melanoma (causes and risk factors): ")
    assert "Ultraviolet (UV) light" in answer.text
    assert answer.source.url.startswith("https://") and answer.score > 0.12


@pytest.mark.parametrize("code", ["bcc", "mel", "akiec"])
def test_how_soon_should_i_see_a_doctor_uses_the_model_condition(code):
    answer = answer_question("How soon should I see a doctor?", condition=code)
    assert (answer.condition_code, answer.section) == (code, "see_a_doctor")
    assert answer.text.endswith(section_text(code, "see_a_doctor"))


@pytest.mark.parametrize("code", ["mel", "nv", "df"])
def test_is_it_serious_answers_about_the_model_condition(code):
    answer = answer_question("Is it serious?", condition=code)
    assert (answer.condition_code, answer.section) == (code, "severity")


def test_a_question_naming_another_condition_is_answered_about_that_one():
    answer = answer_question("Is psoriasis contagious?", condition="mel")
    assert answer.condition_code == "psoriasis" and "not contagious" in answer.text
    assert answer_question("What is rosacea?", condition="nv").condition_code == "rosacea"


def test_word_forms_match():
    answer = answer_question("Does it itch?", condition="mel")
    assert (answer.condition_code, answer.section) == ("mel", "signs") and "itches" in answer.text


@pytest.mark.parametrize("question", ["xyzzy plugh frobnicate", "hello", "", "   "])
def test_unrelated_questions_are_not_answered(question):
    answer = answer_question(question, condition="mel")
    assert not answer.found and answer.source is None and answer.condition_code is None
    assert "don't know" in answer.text and "doctor" in answer.text


def test_answers_are_passages_from_the_files_never_new_text():
    questions = ["what causes basal cell carcinoma", "what does a seborrhoeic keratosis look like",
                 "is eczema contagious", "when should I see a GP about acne", "can a mole turn into cancer",
                 "what is bowen's disease", "how is it treated"]
    for question in questions:
        answer = answer_question(question, condition="bcc")
        assert answer.found, question
        prefix = f"From the page on {answer.condition_name} ({SECTIONS[answer.section]}): "
        assert answer.text == prefix + section_text(answer.condition_code, answer.section)


def test_model_class_and_unknown_condition():
    assert answer_question("what causes it", condition="akiec").condition_code == "akiec"
    with pytest.raises(UnknownConditionError):
        answer_question("what causes it", condition="chickenpox")


def test_index_is_built_once_per_catalogue_and_covers_every_passage():
    catalogue = load_catalogue()
    index = _index_for(catalogue)
    assert _index_for(catalogue) is index
    items = passages(catalogue)
    assert len(items) == len(index.passages)
    assert len(items) == sum(len(c.causes) + len(c.signs) + 4 for c in catalogue)


def test_answer_to_dict_is_json_ready():
    data = json.loads(json.dumps(answer_question("what causes melanoma").to_dict()))
    assert data["found"] is True and data["section"] == "causes" and data["source"]["publisher"]
