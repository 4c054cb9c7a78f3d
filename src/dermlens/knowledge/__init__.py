"""Condition knowledge, urgency rules, the triage dialogue and offline question answering.

The condition pages are reviewed data files (``conditions/*.yaml``); every urgency recommendation comes
from a named rule with a cited source (`dermlens.knowledge.urgency`), never from the model alone. Nothing
here needs the network or a web framework.
"""

from dermlens.knowledge.answers import Answer, answer_question
from dermlens.knowledge.catalogue import (
    Catalogue,
    Condition,
    KnowledgeFileError,
    Reference,
    RiskGroup,
    UnknownConditionError,
    load_catalogue,
)
from dermlens.knowledge.checklist import CHECKLIST, RED_FLAGS, AnswerError
from dermlens.knowledge.triage import ResultSummary, TriageQuestion, TriageStep, next_step, prefill_from_symptoms
from dermlens.knowledge.urgency import Urgency, UrgencyLevel, assess_urgency

__all__ = [
    "CHECKLIST",
    "RED_FLAGS",
    "Answer",
    "AnswerError",
    "Catalogue",
    "Condition",
    "KnowledgeFileError",
    "Reference",
    "ResultSummary",
    "RiskGroup",
    "TriageQuestion",
    "TriageStep",
    "UnknownConditionError",
    "Urgency",
    "UrgencyLevel",
    "answer_question",
    "assess_urgency",
    "load_catalogue",
    "next_step",
    "prefill_from_symptoms",
]
