"""The questions the triage assistant asks: the weighted 7-point checklist and a few red flags.

The weighted 7-point checklist is the one NICE NG12 uses for suspicious pigmented skin lesions (after
MacKie's Glasgow checklist; validated in UK primary care by Walter et al., 2013): three major features
worth 2 points each and four minor features worth 1 point each. A score of 3 or more means a referral on
the suspected cancer pathway (an appointment within two weeks).

The red flags are warning signs outside the checklist that also call for a prompt appointment; each one
names the published source it comes from. Answers are ``True`` (yes), ``False`` (no) or ``None``
(don't know); only a "yes" scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dermlens.errors import DermlensError
from dermlens.knowledge.catalogue import Reference

Answer = bool | None

NICE_NG12 = Reference(title="Suspected cancer: recognition and referral (NG12)", publisher="NICE",
                      url="https://www.nice.org.uk/guidance/ng12")
NICE_NG14 = Reference(title="Melanoma: assessment and management (NG14)", publisher="NICE",
                      url="https://www.nice.org.uk/guidance/ng14")
BPAC_UGLY_DUCKLING = Reference(title="Melanoma, part 2 (2020): look for the 'ugly duckling'", publisher="bpacnz",
                               url="https://bpac.org.nz/2020/melanoma-part2.aspx")

#: NG12: a weighted 7-point checklist score of this or more means a suspected cancer pathway referral.
REFERRAL_SCORE = 3


class AnswerError(DermlensError):
    """An answer for a question that does not exist, or a value that is not yes / no / unsure."""


@dataclass(frozen=True)
class ChecklistItem:
    """One feature of the weighted 7-point checklist, asked in plain words."""

    id: str
    label: str  # the feature in a few words, as NICE names it
    question: str
    weight: int
    major: bool
    help: str


@dataclass(frozen=True)
class RedFlag:
    """A warning sign that calls for a doctor within two weeks whatever the checklist score."""

    id: str
    question: str
    help: str
    summary: str  # the sign in a few words, for sentences like "you answered yes to: ..."
    because: str  # why it calls for a doctor within two weeks, naming the sources
    source: Reference


CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem("change_in_size", "change in size", "Has the mark got bigger in the last few months?", 2, True,
                  "Compare it with older photos if you have them. A mole that grows in an adult is a warning sign."),
    ChecklistItem("irregular_shape", "irregular shape", "Is its shape uneven, with a ragged, notched or blurred edge?", 2, True,
                  "Ordinary moles are usually round or oval with a smooth edge."),
    ChecklistItem("irregular_colour", "irregular colour", "Does it have several colours or uneven colour?", 2, True,
                  "For example different shades of brown or black, or patches of red, pink, white, grey or blue. "
                  "Ordinary moles are one even colour."),
    ChecklistItem("diameter_7mm", "largest diameter 7 mm or more", "Is it 7 mm or more across at its widest point?", 1, False,
                  "7 mm is about the width of an ordinary pencil. Measure with a ruler if you can."),
    ChecklistItem("inflammation", "inflammation", "Is the mark, or the skin around it, red, swollen or inflamed?", 1, False,
                  "On brown or black skin, inflammation can look darker, purple or grey rather than red."),
    ChecklistItem("oozing", "oozing or bleeding", "Does it ooze, bleed or crust without having been knocked or scratched?", 1, False,
                  "Bleeding after an obvious injury, such as a shaving cut, does not count."),
    ChecklistItem("change_in_sensation", "change in sensation", "Has it started to itch, tingle, hurt or feel different?", 1, False,
                  "A new itch or soreness in a mark that used to feel like normal skin."),
)

RED_FLAGS: tuple[RedFlag, ...] = (
    RedFlag("non_healing", "Is it a sore, spot or lump that bleeds and has not healed within 4 weeks?",
            "A sore that keeps crusting, bleeding or seeming to heal and then coming back counts.",
            "a sore or lump that bleeds and has not healed within 4 weeks",
            "A sore or lump that bleeds and has not healed within 4 weeks can be a skin cancer such as a squamous "
            "cell carcinoma (NHS); NICE NG12 recommends considering a suspected cancer pathway referral (an "
            "appointment within two weeks) for a skin lesion that raises the suspicion of squamous cell carcinoma.",
            NICE_NG12),
    RedFlag("rapid_growth", "Has it grown quickly over a few weeks, or turned into a raised, firm lump?",
            "Fast-growing lumps can be a nodular melanoma or a squamous cell carcinoma.",
            "quick growth over weeks, or a new firm lump",
            "A mark that grows quickly over weeks, or a new firm lump, can be a nodular melanoma or a squamous cell "
            "carcinoma; NICE NG12 recommends considering a suspected cancer pathway referral (an appointment "
            "within two weeks) for a lesion that suggests nodular melanoma or raises the suspicion of squamous "
            "cell carcinoma.",
            NICE_NG12),
    RedFlag("previous_melanoma", "Have you had a melanoma before, and is this mark new or changing?",
            "Answer yes only if both are true.",
            "a new or changing mark in someone who has had melanoma",
            "People who have had a melanoma are more likely to get another, and NICE NG14 advises them to check "
            "their skin and report new or changing marks; dermlens treats such a mark as a suspected melanoma, "
            "for which NICE NG12 recommends an appointment within two weeks.",
            NICE_NG14),
    RedFlag("ugly_duckling", "Does it look clearly different from your other moles?",
            "A mark that stands out from the rest (an 'ugly duckling') deserves a closer look.",
            "a mark that looks different from your other moles",
            "A mark that looks different from a person's other moles (the 'ugly duckling' sign) is often how a "
            "melanoma is first noticed (bpacnz); dermlens treats it as a suspected melanoma, for which NICE NG12 "
            "recommends an appointment within two weeks.",
            BPAC_UGLY_DUCKLING),
)

CHECKLIST_IDS: tuple[str, ...] = tuple(item.id for item in CHECKLIST)
RED_FLAG_IDS: tuple[str, ...] = tuple(flag.id for flag in RED_FLAGS)
QUESTION_IDS: tuple[str, ...] = CHECKLIST_IDS + RED_FLAG_IDS

_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}
_UNSURE = {"unsure", "not sure", "don't know", "dont know", "unknown", "maybe", "none", "null", ""}


def normalise_answer(question_id: str, value: object) -> Answer:
    """``True``/``False``/``None`` or ``"yes"``/``"no"``/``"unsure"`` (any case) -> ``True``/``False``/``None``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace("\u2019", "'")
        if text in _YES:
            return True
        if text in _NO:
            return False
        if text in _UNSURE:
            return None
    raise AnswerError(f"The answer to {question_id!r} is {value!r}; answer yes, no or unsure "
                      "(or true, false, null).")


def normalise_answers(answers: Mapping[str, object]) -> dict[str, Answer]:
    """Check the question ids and normalise every answer; unknown ids are an error naming the valid ones."""
    unknown = [key for key in answers if key not in QUESTION_IDS]
    if unknown:
        raise AnswerError(f"Unknown question id(s): {', '.join(map(repr, unknown))}. Valid ids: checklist "
                          f"{', '.join(CHECKLIST_IDS)}; red flags {', '.join(RED_FLAG_IDS)}.")
    return {key: normalise_answer(key, answers[key]) for key in QUESTION_IDS if key in answers}


def checklist_score(answers: Mapping[str, Answer]) -> int:
    """The weighted 7-point checklist score of the answers so far: 2 per major and 1 per minor "yes".

    >>> checklist_score({"change_in_size": True, "oozing": True, "irregular_shape": None})
    3
    """
    return sum(item.weight for item in CHECKLIST if answers.get(item.id) is True)


def checklist_complete(answers: Mapping[str, Answer]) -> bool:
    """All seven checklist features answered yes or no ("don't know" leaves the score open)."""
    return all(answers.get(item.id) is not None for item in CHECKLIST)


def red_flags_raised(answers: Mapping[str, Answer]) -> list[str]:
    """The ids of the red flags answered yes, in question order."""
    return [flag.id for flag in RED_FLAGS if answers.get(flag.id) is True]
