"""``POST /api/v1/triage``: one stateless step of the triage dialogue, and answers to free questions.

The client sends every answer so far and the model's result (as the predict call returned it); the
server keeps nothing, so any worker can answer any turn.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from dermlens.api.errors import ClientError
from dermlens.api.schemas import ErrorOut
from dermlens.errors import DermlensError
from dermlens.inference.predictor import Status
from dermlens.knowledge.answers import answer_question
from dermlens.knowledge.triage import QUESTIONS, ResultSummary, next_step

router = APIRouter(prefix="/api/v1", tags=["triage"])


class ResultIn(BaseModel):
    status: Status | None = None
    decision: str | None = Field(None, max_length=40)
    top_code: str | None = Field(None, max_length=40)
    top_probability: float | None = Field(None, ge=0, le=1)


class TriageIn(BaseModel):
    answers: dict[str, bool | Literal["yes", "no", "unsure"] | None] = Field(
        default_factory=dict, description="Answers so far by question id: yes, no, unsure (or true/false/null).")
    result: ResultIn | None = Field(None, description="The model's result, as /api/v1/predict returned it.")
    question: str | None = Field(None, max_length=500, description="A free-text question about the condition.")


def triage_questions() -> list[dict[str, Any]]:
    """The checklist items, then the red flags, as the pages show them."""
    return [question.to_dict() for question in QUESTIONS]


def _summary(result: dict[str, Any] | None) -> ResultSummary | None:
    if not result or not result.get("status"):
        return None
    probability = result.get("top_probability")
    try:
        probability = None if probability in (None, "") else float(probability)
    except ValueError:
        raise ClientError(422, "invalid_request", "result.top_probability must be a number") from None
    try:
        return ResultSummary(status=result["status"], decision=result.get("decision") or None,
                             top_code=result.get("top_code") or None, top_probability=probability)
    except DermlensError as error:
        raise ClientError(422, "invalid_request", f"result: {error}") from None


def run_triage(answers: dict[str, Any], result: dict[str, Any] | None, question: str | None, catalogue):
    """(answers, result, question) -> (the next `TriageStep`, an `Answer` to the question or None)."""
    summary = _summary(result)
    try:
        step = next_step(answers, summary, catalogue)
    except DermlensError as error:
        raise ClientError(422, "invalid_request", str(error)) from None
    answer = None
    if question:
        condition = summary.decision or summary.top_code if summary else None
        answer = answer_question(question, condition=condition, catalogue=catalogue)
    return step, answer


@router.post("/triage", summary="The next triage question, the advice so far, and answers to questions",
             responses={422: {"model": ErrorOut}})
def triage(request: Request, body: TriageIn) -> dict[str, Any]:
    """Walks through the weighted 7-point checklist and red flags; every urgency names its rule."""
    result = body.result.model_dump() if body.result else None
    step, answer = run_triage(body.answers, result, body.question, request.app.state.service.catalogue)
    out = step.to_dict()
    out["answer"] = None if answer is None else answer.to_dict()
    return out
