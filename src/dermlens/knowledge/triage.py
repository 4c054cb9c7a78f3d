"""The triage assistant's dialogue, one stateless step at a time.

The client sends every answer so far (and what it was told about the model's result); `next_step` returns
the next question, the weighted 7-point checklist score, the urgency from `dermlens.knowledge.urgency`
with every rule that applied, and a short plain-language summary. The server keeps nothing between steps.

The questions come in a fixed order: the seven checklist features (`CHECKLIST`), then the red flags
(`RED_FLAGS`). An answer is yes, no or "don't know"; a "don't know" counts as answered but scores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dermlens import DISCLAIMER
from dermlens.data.labels import display_name
from dermlens.errors import DermlensError
from dermlens.knowledge.catalogue import Catalogue, load_catalogue
from dermlens.knowledge.checklist import (
    CHECKLIST,
    RED_FLAGS,
    REFERRAL_SCORE,
    Answer,
    AnswerError,
    checklist_complete,
    checklist_score,
    normalise_answers,
    red_flags_raised,
)
from dermlens.knowledge.urgency import STATUSES, Status, Urgency, assess_urgency

__all__ = [
    "CHECKLIST",
    "QUESTIONS",
    "RED_FLAGS",
    "AnswerError",
    "ResultSummary",
    "TriageAnswers",
    "TriageQuestion",
    "TriageStep",
    "next_step",
    "prefill_from_symptoms",
]

#: Question id -> ``True`` (yes), ``False`` (no) or ``None`` (don't know).
TriageAnswers = Mapping[str, Answer]
QuestionKind = Literal["checklist", "red_flag"]


@dataclass(frozen=True)
class ResultSummary:
    """What the client tells the server about the model's result (the server keeps no state).

    ``decision`` is the class the model names, ``top_code`` and ``top_probability`` the most probable
    class; a rejected image has neither.
    """

    status: Status
    decision: str | None = None
    top_code: str | None = None
    top_probability: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise DermlensError(f"Unknown result status {self.status!r}; use one of {', '.join(STATUSES)}.")
        if self.top_probability is not None and not 0.0 <= float(self.top_probability) <= 1.0:
            raise DermlensError(f"top_probability must be between 0 and 1; got {self.top_probability!r}.")

    @classmethod
    def from_prediction(cls, prediction: Any) -> ResultSummary:
        """From a `dermlens.inference.predictor.Prediction` (or anything with the same attributes)."""
        top = prediction.top[0] if prediction.top else None
        return cls(status=prediction.status, decision=prediction.decision,
                   top_code=None if top is None else top.code,
                   top_probability=None if top is None else float(top.probability))

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "decision": self.decision, "top_code": self.top_code,
                "top_probability": self.top_probability}


@dataclass(frozen=True)
class TriageQuestion:
    """One question of the dialogue, as the client shows it."""

    id: str
    kind: QuestionKind
    text: str
    help: str
    weight: int | None  # checklist points for a "yes"; None for a red flag

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "text": self.text, "help": self.help, "weight": self.weight}


QUESTIONS: tuple[TriageQuestion, ...] = (
    *(TriageQuestion(item.id, "checklist", item.question, item.help, item.weight) for item in CHECKLIST),
    *(TriageQuestion(flag.id, "red_flag", flag.question, flag.help, None) for flag in RED_FLAGS),
)


@dataclass(frozen=True)
class TriageStep:
    """Where the dialogue stands: the next question (None when done), the score and the advice so far."""

    question: TriageQuestion | None
    progress: tuple[int, int]  # (answered, total)
    score: int
    done: bool
    urgency: Urgency
    rules_applied: tuple[Urgency, ...]
    summary: str
    answers: dict[str, Answer] = field(default_factory=dict)  # normalised; send them back with the next answer

    def to_dict(self) -> dict[str, Any]:
        return {"question": None if self.question is None else self.question.to_dict(),
                "progress": {"answered": self.progress[0], "total": self.progress[1]},
                "score": self.score, "done": self.done, "urgency": self.urgency.to_dict(),
                "rules_applied": [u.to_dict() for u in self.rules_applied], "summary": self.summary,
                "answers": dict(self.answers)}


def next_step(answers: Mapping[str, object], result: ResultSummary | None = None,
              catalogue: Catalogue | None = None) -> TriageStep:
    """The next step of the dialogue for the answers so far (ids from `CHECKLIST` and `RED_FLAGS`).

    Answers may be ``True``/``False``/``None`` or ``"yes"``/``"no"``/``"unsure"``; an unknown id is an
    error that lists the valid ones.

    >>> step = next_step({"change_in_size": "yes"}, ResultSummary("ok", "nv", "nv", 0.91))
    >>> step.question.id, step.score, step.progress
    ('irregular_shape', 2, (1, 11))
    """
    catalogue = catalogue if catalogue is not None else load_catalogue()
    normalised = normalise_answers(answers)
    score = checklist_score(normalised)
    complete = checklist_complete(normalised)
    flags = red_flags_raised(normalised)
    urgency, applied = assess_urgency(
        None if result is None else result.status, None if result is None else result.decision,
        score, flags, catalogue, checklist_complete=complete)
    question = next((q for q in QUESTIONS if q.id not in normalised), None)
    return TriageStep(question=question, progress=(len(normalised), len(QUESTIONS)), score=score,
                      done=question is None, urgency=urgency, rules_applied=tuple(applied),
                      summary=_summary(normalised, score, flags, result, urgency, catalogue), answers=normalised)


def prefill_from_symptoms(itching: bool, bleeding: bool, growth: bool, change: bool) -> dict[str, bool]:
    """Checklist answers implied by the home page's symptom checkboxes; only ticked boxes fill anything.

    growth -> change in size, bleeding -> oozing or bleeding, itching -> change in sensation. An unticked
    box is not a "no" (the person may not have thought about it), so it leaves the question to be asked.
    ``change`` fills nothing: it does not say whether the size, shape or colour changed, and guessing would
    add points the person never gave (a guessed major feature is worth 2), so the dialogue asks those three
    questions first instead.

    >>> prefill_from_symptoms(itching=True, bleeding=False, growth=True, change=True)
    {'change_in_size': True, 'change_in_sensation': True}
    """
    del change  # deliberately unused; see the docstring
    ticked = {"change_in_size": growth, "oozing": bleeding, "change_in_sensation": itching}
    return {item.id: True for item in CHECKLIST if ticked.get(item.id)}


def _summary(answers: Mapping[str, Answer], score: int, flags: list[str], result: ResultSummary | None,
             urgency: Urgency, catalogue: Catalogue) -> str:
    sentences = [_checklist_sentence(answers, score), _red_flag_sentence(answers, flags),
                 _result_sentence(result, catalogue),
                 f"Recommendation: {urgency.title.lower()}. {urgency.advice}", f"Why: {urgency.because}", DISCLAIMER]
    return " ".join(s for s in sentences if s)


def _checklist_sentence(answers: Mapping[str, Answer], score: int) -> str:
    answered = [item for item in CHECKLIST if item.id in answers]
    if not answered:
        return "You have not answered the checklist questions yet."
    text = (f"Your weighted 7-point checklist score is {score}" if len(answered) == len(CHECKLIST)
            else f"Your weighted 7-point checklist score so far is {score} ({len(answered)} of 7 features answered)")
    text += f"; {REFERRAL_SCORE} or more means a referral within two weeks."
    unsure = [item for item in answered if answers[item.id] is None]
    if unsure:
        could_be = score + sum(item.weight for item in unsure)
        text += (f" You were not sure about {_join([item.label for item in unsure])}; if the answer were yes, "
                 f"the score would be {could_be}, so ask a doctor to check.")
    return text


def _red_flag_sentence(answers: Mapping[str, Answer], flags: list[str]) -> str:
    if flags:
        return f"You reported {_join([f.summary for f in RED_FLAGS if f.id in flags])}."
    if all(flag.id in answers for flag in RED_FLAGS):
        return "You reported none of the other warning signs we asked about."
    return ""


def _result_sentence(result: ResultSummary | None, catalogue: Catalogue) -> str:
    if result is None:
        return ""
    if result.status == "rejected":
        return "The photo could not be assessed, so this advice rests on your answers only."
    top = ""
    if result.top_code is not None:
        top = _name(result.top_code, catalogue)
        if result.top_probability is not None:
            top += f" ({result.top_probability:.0%})"
    if result.status == "ok":
        return f"The model found the image most similar to {top}." if top else ""
    text = "The model was not sure about this image"
    if top:
        text += f"; the most similar class was {top}"
    if result.decision is not None and result.decision != result.top_code:
        text += f", but it could not rule out {_name(result.decision, catalogue)}"
    return text + "."


def _name(code: str, catalogue: Catalogue) -> str:
    try:
        return catalogue.resolve(code).name
    except DermlensError:
        return display_name(code)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
