"""An `Assessment`: the model's prediction put in context for a person.

It adds to a `Prediction` the risk group of the class the model names (malignant, pre-malignant,
benign), and an urgency recommendation from the triage rules (`dermlens.knowledge.urgency`): the
symptoms a person ticked are the first answers of the weighted 7-point checklist, so "it has grown"
counts before any chat. The urgency always names the rule it came from; the model's result can raise
it (a melanoma decision) but never lower what the answers call for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from dermlens.inference.predictor import Prediction
from dermlens.knowledge.catalogue import Catalogue, load_catalogue
from dermlens.knowledge.triage import ResultSummary, TriageStep, next_step, prefill_from_symptoms
from dermlens.knowledge.urgency import Urgency

Sex = Literal["female", "male"]

RISK_LABELS = {
    "malignant": "possibly malignant (a skin cancer)",
    "pre-malignant": "possibly pre-malignant (can turn into a skin cancer)",
    "benign": "probably benign",
    "inflammatory": "an inflammatory skin condition",
}


@dataclass(frozen=True)
class PatientDetails:
    """What a person may tell about themselves and the lesion; every field is optional."""

    age: int | None = None
    sex: Sex | None = None
    site: str | None = None
    itching: bool = False
    bleeding: bool = False
    growth: bool = False
    change: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Risk:
    group: str
    label: str
    condition_code: str
    condition_name: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Assessment:
    prediction: Prediction
    details: PatientDetails
    risk: Risk | None
    triage: TriageStep

    @property
    def urgency(self) -> Urgency:
        return self.triage.urgency

    @property
    def answers(self) -> dict[str, bool | None]:
        """The checklist answers the ticked symptoms gave (the triage continues from them)."""
        return self.triage.answers

    def result_summary(self) -> ResultSummary:
        return ResultSummary.from_prediction(self.prediction)

    def to_dict(self, top_k: int | None = None) -> dict[str, Any]:
        out = self.prediction.to_dict(top_k)
        out["risk"] = None if self.risk is None else self.risk.to_dict()
        out["urgency"] = self.urgency.to_dict()
        out["rules_applied"] = [rule.to_dict() for rule in self.triage.rules_applied]
        out["details"] = self.details.to_dict()
        return out


def risk_of(prediction: Prediction, catalogue: Catalogue) -> Risk | None:
    """The risk group of the class the model names; none for a rejected image."""
    if prediction.decision is None:  # a rejected image: no class was named
        return None
    condition = catalogue.for_model_class(prediction.decision)
    return Risk(group=condition.group, label=RISK_LABELS.get(condition.group, condition.group),
                condition_code=condition.code, condition_name=condition.name)


def assess(prediction: Prediction, details: PatientDetails | None = None,
           catalogue: Catalogue | None = None) -> Assessment:
    """A prediction, the person's details -> risk and urgency (the first triage step).

    >>> assess(predictor.predict("lesion.jpg")).urgency.level   # doctest: +SKIP
    'routine'
    """
    details = details or PatientDetails()
    catalogue = catalogue or load_catalogue()
    answers = prefill_from_symptoms(itching=details.itching, bleeding=details.bleeding,
                                    growth=details.growth, change=details.change)
    step = next_step(answers, ResultSummary.from_prediction(prediction), catalogue)
    return Assessment(prediction=prediction, details=details, risk=risk_of(prediction, catalogue),
                      triage=step)
