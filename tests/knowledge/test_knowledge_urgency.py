"""Urgency rules: each fires where it should, answers always win, every answer names its rule."""

from __future__ import annotations

import json

import pytest

from dermlens.data.labels import HAM10000_CLASSES
from dermlens.errors import DermlensError
from dermlens.knowledge import AnswerError, UnknownConditionError, assess_urgency, load_catalogue
from dermlens.knowledge.checklist import RED_FLAG_IDS
from dermlens.knowledge.urgency import NO_INFORMATION, RULES, URGENCY_LEVELS

NG12 = "https://www.nice.org.uk/guidance/ng12"


def rules_of(applied):
    return [u.rule for u in applied]


@pytest.mark.parametrize(("status", "decision", "score", "flags", "complete", "level", "rule"), [
    ("ok", "nv", 4, [], False, "urgent", "nice-ng12-melanoma-7pc"),
    ("ok", "mel", None, [], False, "urgent", "nice-ng12-suspected-melanoma"),
    ("ok", "scc", None, [], False, "urgent", "nice-ng12-suspected-scc"),
    ("ok", "bcc", None, [], False, "soon", "nice-ng12-suspected-bcc"),
    ("ok", "akiec", None, [], False, "soon", "model-pre-malignant"),
    ("uncertain", "nv", None, [], False, "soon", "dermlens-uncertain"),
    ("ok", "rosacea", None, [], False, "soon", "model-inflammatory"),
    ("ok", "df", None, [], False, "routine", "model-benign"),
    (None, None, 1, [], True, "routine", "nice-ng12-7pc-below-threshold"),
    ("rejected", None, None, [], False, "not_assessed", "dermlens-image-rejected"),
    (None, None, None, [], False, "not_assessed", "no-information"),
    ("ok", "nv", 0, ["rapid_growth"], True, "urgent", "red-flag-rapid-growth"),
])
def test_each_rule_fires_where_it_should(status, decision, score, flags, complete, level, rule):
    urgency, applied = assess_urgency(status, decision, score, flags, load_catalogue(), checklist_complete=complete)
    assert (urgency.level, urgency.rule) == (level, rule)
    assert urgency is applied[0]


@pytest.mark.parametrize("ham_code", ["nv", "bkl", "df", "vasc"])
def test_checklist_score_of_3_is_urgent_even_if_the_model_says_benign(ham_code):
    urgency, applied = assess_urgency("ok", ham_code, 3, [])
    assert urgency.level == "urgent" and urgency.rule == "nice-ng12-melanoma-7pc"
    assert urgency.source.url == NG12
    assert "you scored 3" in urgency.because and "NICE NG12" in urgency.because
    assert "model-benign" in rules_of(applied)  # still reported, for transparency


def test_score_threshold_ties_at_three():
    assert assess_urgency("ok", "nv", 3, [])[0].level == "urgent"
    below, applied = assess_urgency("ok", "nv", 2, [], checklist_complete=True)
    assert below.level == "routine"
    assert "nice-ng12-melanoma-7pc" not in rules_of(applied)
    assert set(rules_of(applied)) == {"model-benign", "nice-ng12-7pc-below-threshold"}


def test_rules_of_equal_level_keep_table_order():
    urgency, applied = assess_urgency("ok", "mel", 5, ["ugly_duckling"])
    assert rules_of(applied) == ["nice-ng12-melanoma-7pc", "red-flag-ugly-duckling", "nice-ng12-suspected-melanoma"]
    assert urgency.rule == "nice-ng12-melanoma-7pc"


def test_model_melanoma_is_urgent_under_ng12():
    urgency, _ = assess_urgency("ok", "mel", None, [])
    assert urgency.level == "urgent" and urgency.title == "See a doctor within two weeks"
    assert urgency.source.url == NG12 and "dermoscopy suggests melanoma" in urgency.because
    # an uncertain result that could be melanoma is still urgent
    assert assess_urgency("uncertain", "mel", None, [])[0].rule == "nice-ng12-suspected-melanoma"


@pytest.mark.parametrize("flag", RED_FLAG_IDS)
def test_every_red_flag_is_urgent_whatever_the_model_says(flag):
    urgency, _ = assess_urgency("ok", "nv", 0, [flag], checklist_complete=True)
    assert urgency.level == "urgent" and urgency.rule == f"red-flag-{flag.replace('_', '-')}"
    assert "two weeks" in urgency.because and urgency.source.url.startswith("https://")


def test_rejected_image_is_not_assessed_and_its_decision_is_ignored():
    urgency, applied = assess_urgency("rejected", "mel", None, [])
    assert urgency.level == "not_assessed" and rules_of(applied) == ["dermlens-image-rejected"]
    assert "retake" in urgency.advice.lower() and "see a doctor" in urgency.advice
    # a low but complete checklist never turns a rejected photo into reassurance
    assert assess_urgency("rejected", None, 1, [], checklist_complete=True)[0].level == "not_assessed"
    # answers that call for a doctor still win
    assert assess_urgency("rejected", None, 4, [])[0].level == "urgent"


def test_below_threshold_counts_only_when_the_checklist_is_complete():
    _, applied = assess_urgency(None, None, 2, [], checklist_complete=False)
    assert rules_of(applied) == ["no-information"]


@pytest.mark.parametrize("decision", [*HAM10000_CLASSES, "scc"])
@pytest.mark.parametrize("status", ["ok", "uncertain"])
def test_the_model_never_makes_answers_less_urgent(decision, status):
    assert assess_urgency(status, decision, 3, [])[0].level == "urgent"
    assert assess_urgency(status, decision, 0, ["non_healing"], checklist_complete=True)[0].level == "urgent"
    with_answers, _ = assess_urgency(status, decision, 0, [], checklist_complete=True)
    without, _ = assess_urgency(status, decision, None, [])
    assert URGENCY_LEVELS.index(with_answers.level) == URGENCY_LEVELS.index(without.level)


def test_every_condition_the_model_could_name_has_a_rule():
    for condition in load_catalogue():
        urgency, _ = assess_urgency("ok", condition.code, None, [])
        assert urgency.rule != "no-information", condition.code


def test_rule_table_ids_are_unique_and_every_urgency_is_explained():
    ids = [rule.id for rule in RULES] + [NO_INFORMATION.id]
    assert len(ids) == len(set(ids))
    for decision in (None, "mel", "nv", "akiec"):
        for status in ("ok", "uncertain", "rejected", None):
            for urgency in assess_urgency(status, decision, 2, ["ugly_duckling"], checklist_complete=True)[1]:
                assert urgency.rule in ids and urgency.because and urgency.advice and urgency.title
                assert json.loads(json.dumps(urgency.to_dict()))["source"]["url"]


def test_rules_that_cite_the_model_condition_use_its_page():
    urgency, _ = assess_urgency("ok", "akiec", None, [])
    assert urgency.source == load_catalogue().get("akiec").references[0]
    assert "Actinic keratosis" in urgency.because


def test_bad_inputs_are_clear_errors():
    with pytest.raises(DermlensError, match="status"):
        assess_urgency("fine", None, None, [])
    with pytest.raises(AnswerError, match="non_healing"):
        assess_urgency("ok", "nv", None, ["itchy"])
    with pytest.raises(DermlensError, match="0 to 10"):
        assess_urgency("ok", "nv", 11, [])
    with pytest.raises(UnknownConditionError):
        assess_urgency("ok", "chickenpox", None, [])
