"""Health, the model card, the condition knowledge, the triage dialogue and the OpenAPI docs over HTTP."""

from __future__ import annotations

import httpx

from dermlens import DISCLAIMER
from dermlens.data.labels import HAM10000_CLASSES
from dermlens.inference.predictor import Predictor


def get(server, path: str) -> httpx.Response:
    return httpx.get(server.url + path, timeout=30)


def test_health_names_the_model(server):
    body = get(server, "/api/v1/health").json()
    assert body["status"] == "ok" and body["model"]


def test_model_card_summary(server):
    body = get(server, "/api/v1/model").json()
    assert [c["code"] for c in body["classes"]] == list(HAM10000_CLASSES)
    preprocessing = Predictor.load().model.preprocessing
    assert body["input_size"] == [preprocessing.width, preprocessing.height]
    assert body["held_out"]["balanced_accuracy"] > 0.5
    assert 0 < body["abstention"]["min_confidence"] < 1
    assert body["not_skin_check"]["threshold"] > 0
    assert DISCLAIMER in body["summary"] and body["disclaimer"] == DISCLAIMER


def test_conditions_cover_every_model_class(server):
    conditions = get(server, "/api/v1/conditions").json()
    covered = {c["model_class"] for c in conditions if c["model_class"]}
    assert covered == set(HAM10000_CLASSES)
    assert {"scc", "rosacea", "lupus", "atopic_dermatitis"} <= {c["code"] for c in conditions}
    melanoma = get(server, "/api/v1/conditions/mel").json()
    assert melanoma["group"] == "malignant"
    assert melanoma["causes"] and melanoma["signs"] and melanoma["see_a_doctor"]
    assert all(r["url"].startswith("https://") for r in melanoma["references"])


def test_triage_walks_the_checklist_statelessly(server):
    result = {"status": "ok", "decision": "nv", "top_code": "nv", "top_probability": 0.9}
    answers: dict[str, str] = {}
    asked = []
    for _ in range(20):
        step = httpx.post(f"{server.url}/api/v1/triage", json={"answers": answers, "result": result}).json()
        if step["done"]:
            break
        asked.append(step["question"]["id"])
        # yes to the three major criteria only: 6 points
        answers[step["question"]["id"]] = "yes" if len(asked) <= 3 else "no"
    assert step["done"] and len(asked) == len(set(asked)) >= 7
    assert step["score"] == 6
    assert step["urgency"]["level"] == "urgent" and step["urgency"]["rule"]
    assert DISCLAIMER in step["summary"]


def test_triage_answers_a_question_from_the_condition_pages(server):
    body = httpx.post(f"{server.url}/api/v1/triage", json={
        "answers": {}, "result": {"status": "ok", "decision": "mel", "top_code": "mel", "top_probability": 0.7},
        "question": "What are the risk factors?"}).json()
    answer = body["answer"]
    assert answer["found"] and answer["condition_code"] == "mel"
    assert answer["source"]["url"].startswith("https://")
    melanoma = httpx.get(f"{server.url}/api/v1/conditions/mel").json()
    assert any(cause in answer["text"] for cause in melanoma["causes"])


def test_openapi_documents_the_v1_api_and_docs_work_offline(server):
    spec = get(server, "/openapi.json").json()
    for path in ("/api/v1/predict", "/api/v1/health", "/api/v1/model", "/api/v1/conditions",
                 "/api/v1/conditions/{code}", "/api/v1/triage"):
        assert path in spec["paths"], path
    assert {"413", "415"} <= set(spec["paths"]["/api/v1/predict"]["post"]["responses"])
    docs = get(server, "/docs")
    assert docs.status_code == 200 and "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert get(server, "/static/swagger/swagger-ui-bundle.js").status_code == 200
