"""Urgency: how soon to see a doctor, decided only by named rules, each with its source.

Every recommendation dermlens gives comes from one row of `RULES`; the answer names that row (``rule``),
says it in words (``because``) and cites where it comes from (``source``). The choices:

- **Levels**, from most to least pressing: ``urgent`` (see a doctor within two weeks: the NICE NG12
  suspected cancer pathway), ``soon`` (book an appointment in the next few weeks), ``not_assessed`` (the
  image could not be judged and no answer calls for a doctor) and ``routine`` (keep an eye on it). A
  rejected image ranks above ``routine`` so that a low checklist score never reassures anyone about a photo
  nobody could assess, and below ``soon``/``urgent`` so that answers calling for a doctor still win.
- **Answers first.** A weighted 7-point checklist score of 3 or more, or any red flag, is ``urgent``
  whatever the model says. The model can only add urgency, never remove it: the most pressing rule
  that applies wins.
- **The model's decision** (the class it names, not merely the most probable one) maps to NG12: suspected
  melanoma or squamous cell carcinoma is ``urgent``, suspected basal cell carcinoma ``soon`` (NG12: routine
  referral), actinic keratosis / intraepithelial carcinoma ``soon``, benign lesions ``routine``. The decision
  of a rejected image is ignored: rejected images carry no classification.
- **An uncertain result** is at least ``soon``: the model is not sure, so it cannot rule anything out.
- **A checklist score below 3** counts only when all seven features were answered yes or no; it does not
  escalate by itself (``routine``). A "don't know" leaves the score open.
- **Ties** go to the rule listed first in `RULES` (answers before model, model before status).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from dermlens.errors import DermlensError
from dermlens.inference.predictor import Status
from dermlens.knowledge.catalogue import Catalogue, Condition, Reference, load_catalogue
from dermlens.knowledge.checklist import CHECKLIST, NICE_NG12, RED_FLAG_IDS, RED_FLAGS, REFERRAL_SCORE, AnswerError

UrgencyLevel = Literal["routine", "not_assessed", "soon", "urgent"]

#: The urgency levels from least to most pressing; the most pressing applicable rule wins.
URGENCY_LEVELS: tuple[UrgencyLevel, ...] = get_args(UrgencyLevel)
STATUSES: tuple[Status, ...] = get_args(Status)
MAX_CHECKLIST_SCORE = sum(item.weight for item in CHECKLIST)

_URGENT_ADVICE = ("Book an appointment with your doctor (GP) now and make sure you are seen within two weeks; show "
                  "them this mark and tell them it may need an urgent skin cancer referral.")
_SOON_ADVICE = ("Book an appointment with your doctor (GP) in the next few weeks so that they can look at this mark; "
                "go sooner if it changes, bleeds or does not heal.")
_NOT_ASSESSED_ADVICE = ("We could not assess this lesion. Retake the photo (close up, in focus, in good light) or "
                        "answer the questions; if the lesion worries you, see a doctor whatever this tool says.")
_ROUTINE_ADVICE = ("This does not call for an appointment by itself: check the mark every month or so, mention it at "
                   "your next routine visit, and see a doctor if it changes in size, shape or colour, bleeds or does "
                   "not heal.")

#: Level -> (title, advice) shown to the person.
LEVEL_TEXT: dict[UrgencyLevel, tuple[str, str]] = {
    "urgent": ("See a doctor within two weeks", _URGENT_ADVICE),
    "soon": ("See a doctor in the next few weeks", _SOON_ADVICE),
    "not_assessed": ("Not assessed", _NOT_ASSESSED_ADVICE),
    "routine": ("Keep an eye on it", _ROUTINE_ADVICE),
}

DERMLENS_MODEL_CARD = Reference(title="dermlens model card: when it abstains or refuses", publisher="dermlens",
                                url="docs/model-card.md#when-it-abstains-or-refuses")
DERMLENS_URGENCY_RULES = Reference(title="dermlens urgency rules", publisher="dermlens",
                                   url="src/dermlens/knowledge/urgency.py")


@dataclass(frozen=True)
class Urgency:
    """A recommendation on how soon to see a doctor, with the rule that gave it."""

    level: UrgencyLevel
    title: str
    advice: str
    rule: str
    because: str
    source: Reference

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "title": self.title, "advice": self.advice, "rule": self.rule,
                "because": self.because, "source": self.source.to_dict()}


@dataclass(frozen=True)
class Evidence:
    """What the rules look at: the model's result and the person's answers."""

    status: Status | None
    decision: Condition | None  # the condition the model named; None if rejected or no result
    checklist_score: int | None
    checklist_complete: bool
    red_flags: tuple[str, ...]


@dataclass(frozen=True)
class UrgencyRule:
    """One row of the rule table. ``source=None`` cites the page of the condition the model named."""

    id: str
    level: UrgencyLevel
    applies: Callable[[Evidence], bool]
    because: Callable[[Evidence], str]
    source: Reference | None

    def fire(self, evidence: Evidence) -> Urgency:
        source = self.source
        if source is None:
            assert evidence.decision is not None, f"rule {self.id} cites the model's condition but there is none"
            source = evidence.decision.references[0]
        title, advice = LEVEL_TEXT[self.level]
        return Urgency(self.level, title, advice, self.id, self.because(evidence), source)


def _named(evidence: Evidence) -> str:
    return evidence.decision.name if evidence.decision is not None else "nothing"


def _decision_is(*codes: str) -> Callable[[Evidence], bool]:
    return lambda e: e.decision is not None and e.decision.code in codes


def _decision_group(group: str) -> Callable[[Evidence], bool]:
    return lambda e: e.decision is not None and e.decision.group == group


def _red_flag_rule(flag_id: str) -> UrgencyRule:
    flag = next(f for f in RED_FLAGS if f.id == flag_id)
    return UrgencyRule(f"red-flag-{flag.id.replace('_', '-')}", "urgent", lambda e: flag.id in e.red_flags,
                       lambda e: f"You reported {flag.summary}. {flag.because}", flag.source)


RULES: tuple[UrgencyRule, ...] = (
    UrgencyRule(
        "nice-ng12-melanoma-7pc", "urgent",
        lambda e: e.checklist_score is not None and e.checklist_score >= REFERRAL_SCORE,
        lambda e: (f"A weighted 7-point checklist score of {REFERRAL_SCORE} or more (you scored {e.checklist_score}) "
                   "means a referral within two weeks on the suspected cancer pathway (NICE NG12; the checklist "
                   "was validated in UK general practice by Walter et al., 2013)."),
        NICE_NG12),
    *(_red_flag_rule(flag_id) for flag_id in RED_FLAG_IDS),
    UrgencyRule(
        "nice-ng12-suspected-melanoma", "urgent", _decision_is("mel"),
        lambda e: ("The model named melanoma. NICE NG12 recommends a suspected cancer pathway referral (an "
                   "appointment within two weeks) when dermoscopy suggests melanoma; dermlens treats a model "
                   "reading a dermoscopic image the same way, although the model can be wrong."),
        NICE_NG12),
    UrgencyRule(
        "nice-ng12-suspected-scc", "urgent", _decision_is("scc"),
        lambda e: ("The model named squamous cell carcinoma. NICE NG12 recommends considering a suspected cancer "
                   "pathway referral (an appointment within two weeks) for a skin lesion that raises the "
                   "suspicion of squamous cell carcinoma."),
        NICE_NG12),
    UrgencyRule(
        "nice-ng12-suspected-bcc", "soon", _decision_is("bcc"),
        lambda e: ("The model named basal cell carcinoma. NICE NG12 recommends a routine (not two-week) referral "
                   "for a skin lesion that raises the suspicion of basal cell carcinoma, because it grows slowly "
                   "and very rarely spreads; an urgent referral is considered only when a delay could matter "
                   "because of where the lesion is or how big it is."),
        NICE_NG12),
    UrgencyRule(
        "model-pre-malignant", "soon", _decision_group("pre-malignant"),
        lambda e: (f"The model named {_named(e)}. This is not an emergency, but a small number of these patches "
                   "turn into squamous cell carcinoma, so a doctor should see it within a few weeks."),
        None),
    UrgencyRule(
        "dermlens-uncertain", "soon", lambda e: e.status == "uncertain",
        lambda e: ("The model was not sure about this image (its result is 'uncertain'), so it cannot rule "
                   "anything out; dermlens sends every uncertain result to a doctor, preferably a dermatologist."),
        DERMLENS_MODEL_CARD),
    UrgencyRule(
        "model-inflammatory", "soon", _decision_group("inflammatory"),
        lambda e: f"The model named {_named(e)}, a skin condition that a GP can diagnose and treat.",
        None),
    UrgencyRule(
        "model-benign", "routine", _decision_group("benign"),
        lambda e: (f"The model named {_named(e)}, a harmless type of skin lesion, which does not call for a "
                   "referral by itself. The model can be wrong: see a doctor if the mark changes, bleeds or "
                   "worries you."),
        None),
    UrgencyRule(
        "nice-ng12-7pc-below-threshold", "routine",
        lambda e: e.checklist_complete and e.checklist_score is not None and e.checklist_score < REFERRAL_SCORE,
        lambda e: (f"A weighted 7-point checklist score below {REFERRAL_SCORE} (you scored {e.checklist_score}, with "
                   "all seven features answered) does not call for a two-week referral by itself (NICE NG12); "
                   "keep an eye on the mark and see a doctor if it changes."),
        NICE_NG12),
    UrgencyRule(
        "dermlens-image-rejected", "not_assessed", lambda e: e.status == "rejected",
        lambda e: ("The image was rejected before classification (for example it was blurred, too dark, or not "
                   "a close-up of skin), so the model says nothing about this lesion."),
        DERMLENS_MODEL_CARD),
)

#: Used only when no rule in `RULES` applies: nothing is known yet, so nothing is reassuring.
NO_INFORMATION = UrgencyRule(
    "no-information", "not_assessed", lambda e: True,
    lambda e: ("There is not enough information yet: no usable model result and no answer that calls for a "
               "doctor. If the lesion worries you, see a doctor."),
    DERMLENS_URGENCY_RULES)


def assess_urgency(status: Status | None, decision: str | None, checklist_score: int | None,
                   red_flags: Sequence[str], catalogue: Catalogue | None = None, *,
                   checklist_complete: bool = False) -> tuple[Urgency, list[Urgency]]:
    """The most pressing applicable rule and every rule that applied, most pressing first.

    ``status`` and ``decision`` come from the model (``None`` when there is no result); ``decision`` is the
    class the model names (a HAM10000 code or a catalogue code). ``checklist_complete`` says all seven
    checklist features were answered yes or no, which a score below 3 needs before it counts.

    >>> urgency, applied = assess_urgency("ok", "nv", 4, [])
    >>> urgency.level, urgency.rule
    ('urgent', 'nice-ng12-melanoma-7pc')
    """
    evidence = _evidence(status, decision, checklist_score, red_flags, catalogue, checklist_complete)
    applied = [rule for rule in RULES if rule.applies(evidence)] or [NO_INFORMATION]
    # a stable sort keeps the table order among rules of the same level
    applied.sort(key=lambda rule: -URGENCY_LEVELS.index(rule.level))
    fired = [rule.fire(evidence) for rule in applied]
    return fired[0], fired


def _evidence(status: Status | None, decision: str | None, checklist_score: int | None,
              red_flags: Sequence[str], catalogue: Catalogue | None, checklist_complete: bool) -> Evidence:
    if status is not None and status not in STATUSES:
        raise DermlensError(f"Unknown result status {status!r}; use one of {', '.join(STATUSES)}.")
    if checklist_score is not None and not (isinstance(checklist_score, int) and
                                            0 <= checklist_score <= MAX_CHECKLIST_SCORE):
        raise DermlensError(f"A weighted 7-point checklist score is a whole number from 0 to {MAX_CHECKLIST_SCORE}; "
                            f"got {checklist_score!r}.")
    unknown = [flag for flag in red_flags if flag not in RED_FLAG_IDS]
    if unknown:
        raise AnswerError(f"Unknown red flag(s): {', '.join(map(repr, unknown))}; valid: {', '.join(RED_FLAG_IDS)}.")
    condition = None
    if decision is not None and status != "rejected":
        condition = (catalogue if catalogue is not None else load_catalogue()).resolve(decision)
    return Evidence(status, condition, checklist_score, checklist_complete, tuple(red_flags))


