"""The stateless triage dialogue, walked through the way a client would."""

from __future__ import annotations

import json

import pytest

from dermlens import DISCLAIMER
from dermlens.errors import DermlensError
from dermlens.knowledge.triage import (
    CHECKLIST,
    QUESTIONS,
    RED_FLAGS,
    AnswerError,
    ResultSummary,
    next_step,
    prefill_from_symptoms,
)

NV_RESULT = ResultSummary(status="ok", decision="nv", top_code="nv", top_probability=0.91)


def test_checklist_is_the_weighted_seven_point_checklist():
    assert [(item.id, item.weight, item.major) for item in CHECKLIST] == [
        ("change_in_size", 2, True), ("irregular_shape", 2, True), ("irregular_colour", 2, True),
        ("diameter_7mm", 1, False), ("inflammation", 1, False), ("oozing", 1, False),
        ("change_in_sensation", 1, False)]
    assert all(item.question.endswith("?") and item.help for item in CHECKLIST)
    assert all(flag.question.endswith("?") and flag.source.url.startswith("https://") for flag in RED_FLAGS)


def test_walk_through_asks_in_order_accumulates_the_score_and_finishes():
    answers: dict[str, object] = {}
    expected_order = [item.id for item in CHECKLIST] + [flag.id for flag in RED_FLAGS]
    scores = []
    for number, question_id in enumerate(expected_order):
        step = next_step(answers, NV_RESULT)
        assert not step.done
        assert step.question.id == question_id
        assert step.progress == (number, len(expected_order))
        answers[question_id] = "yes" if question_id in {item.id for item in CHECKLIST} else "no"
        scores.append(next_step(answers, NV_RESULT).score)
    assert scores[:7] == [2, 4, 6, 7, 8, 9, 10]
    final = next_step(answers, NV_RESULT)
    assert final.done and final.question is None and final.progress == (11, 11)
    assert final.score == 10 and final.urgency.level == "urgent"
    assert final.urgency.rule == "nice-ng12-melanoma-7pc"


def test_low_score_with_benign_model_result_is_routine_when_everything_is_answered():
    answers = {item.id: False for item in CHECKLIST} | {"diameter_7mm": True} | {flag.id: "no" for flag in RED_FLAGS}
    step = next_step(answers, NV_RESULT)
    assert step.done and step.score == 1 and step.urgency.level == "routine"
    assert {u.rule for u in step.rules_applied} == {"model-benign", "nice-ng12-7pc-below-threshold"}
    assert "none of the other warning signs" in step.summary


def test_string_answers_are_normalised():
    step = next_step({"change_in_size": "Yes", "irregular_shape": " no ", "irregular_colour": "unsure",
                      "diameter_7mm": "Don't know", "inflammation": True, "oozing": None})
    assert step.answers == {"change_in_size": True, "irregular_shape": False, "irregular_colour": None,
                            "diameter_7mm": None, "inflammation": True, "oozing": None}
    assert step.score == 3 and step.question.id == "change_in_sensation"
    # "don't know" is answered but leaves the score open, and the summary says what it could be
    assert "not sure about irregular colour, largest diameter 7 mm or more and oozing or bleeding" in step.summary
    assert "the score would be 7" in step.summary


def test_unknown_ids_and_values_are_rejected_clearly():
    with pytest.raises(AnswerError) as error:
        next_step({"itchy": True})
    assert isinstance(error.value, DermlensError)
    message = str(error.value)
    assert "'itchy'" in message and all(item.id in message for item in CHECKLIST)
    assert all(flag.id in message for flag in RED_FLAGS)
    with pytest.raises(AnswerError, match="yes, no or unsure"):
        next_step({"oozing": "sometimes"})
    with pytest.raises(AnswerError):
        next_step({"oozing": 3})


def test_red_flag_makes_it_urgent_and_the_summary_says_why():
    answers = {item.id: "no" for item in CHECKLIST} | {"non_healing": "yes"}
    step = next_step(answers, NV_RESULT)
    assert step.urgency.level == "urgent" and step.urgency.rule == "red-flag-non-healing"
    assert "You reported a sore or lump that bleeds and has not healed within 4 weeks." in step.summary


def test_summary_combines_score_flags_and_model_and_ends_with_the_disclaimer():
    step = next_step({"change_in_size": "yes", "irregular_shape": "yes"}, NV_RESULT)
    assert step.summary.endswith(DISCLAIMER)
    assert "score so far is 4 (2 of 7 features answered)" in step.summary
    assert "most similar to Melanocytic naevus (mole) (91%)" in step.summary
    assert "Recommendation: see a doctor within two weeks." in step.summary
    assert step.urgency.because in step.summary


def test_uncertain_result_names_what_cannot_be_ruled_out():
    result = ResultSummary("uncertain", decision="mel", top_code="nv", top_probability=0.55)
    step = next_step({}, result)
    assert "could not rule out Melanoma" in step.summary
    assert step.urgency.rule == "nice-ng12-suspected-melanoma"


def test_rejected_image_without_answers_is_not_assessed_but_answers_still_count():
    rejected = ResultSummary("rejected")
    step = next_step({}, rejected)
    assert step.urgency.level == "not_assessed" and "could not be assessed" in step.summary
    assert next_step({"change_in_size": "yes", "oozing": "yes"}, rejected).urgency.level == "urgent"


def test_no_result_and_no_answers_is_not_assessed():
    step = next_step({})
    assert step.question.id == "change_in_size" and step.score == 0
    assert step.urgency.rule == "no-information" and step.summary.endswith(DISCLAIMER)


def test_prefill_maps_ticked_symptoms_and_leaves_the_rest_to_ask():
    assert prefill_from_symptoms(itching=True, bleeding=True, growth=True, change=True) == {
        "change_in_size": True, "oozing": True, "change_in_sensation": True}
    assert prefill_from_symptoms(itching=False, bleeding=False, growth=False, change=True) == {}
    step = next_step(prefill_from_symptoms(itching=True, bleeding=False, growth=True, change=False))
    assert step.score == 3 and step.urgency.level == "urgent"
    assert step.question.id == "irregular_shape"  # growth answered "change in size" already


def test_step_to_dict_is_json_ready():
    step = next_step({"change_in_size": "no"}, NV_RESULT)
    data = json.loads(json.dumps(step.to_dict()))
    assert data["question"]["id"] == "irregular_shape" and data["question"]["kind"] == "checklist"
    assert data["progress"] == {"answered": 1, "total": len(QUESTIONS)}
    assert data["urgency"]["rule"] == "model-benign" and data["answers"] == {"change_in_size": False}


def test_result_summary_from_a_prediction():
    from dermlens.inference.predictor import Prediction, RankedClass

    prediction = Prediction(image="x.jpg", status="uncertain", reason="rare_class_possible", message="",
                            probabilities={"nv": 0.6, "mel": 0.4},
                            top=(RankedClass("nv", "Melanocytic naevus", 0.6), RankedClass("mel", "Melanoma", 0.4)),
                            decision="mel")
    assert ResultSummary.from_prediction(prediction) == ResultSummary("uncertain", "mel", "nv", 0.6)
    rejected = Prediction(image="x.jpg", status="rejected", reason="blurry", message="")
    assert ResultSummary.from_prediction(rejected) == ResultSummary("rejected")


def test_result_summary_validates():
    with pytest.raises(DermlensError, match="status"):
        ResultSummary("fine")
    with pytest.raises(DermlensError, match="between 0 and 1"):
        ResultSummary("ok", "nv", "nv", 91.0)
