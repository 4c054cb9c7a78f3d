"""Using an iteration: quick test, publish under a name, predict with the project's key, and review and
correct kept predictions so the corrections feed the next iteration.

Loaded models are cached per process by their object key. That is derived, immutable data (an
iteration's model never changes), so workers stay interchangeable.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import case, exists, select

from dermlens import DISCLAIMER
from dermlens.projects.errors import Conflict, Invalid, NotFound, Unauthorized
from dermlens.projects.intake import StoredImage
from dermlens.projects.iterations import Iterations
from dermlens.projects.keys import secret_matches
from dermlens.projects.quick import tag_probabilities
from dermlens.projects.schema import Correction, Iteration, Label, PredictionRecord, Project, Tag, as_utc
from dermlens.projects.store import ProjectStore


@dataclass(frozen=True)
class TagPrediction:
    """An iteration's answer for one image: every tag with its probability, most probable first."""

    iteration: int
    tags: tuple[tuple[str, float], ...]
    prediction_id: int | None = None
    disclaimer: str = DISCLAIMER

    def to_dict(self) -> dict:
        return {"iteration": self.iteration, "prediction_id": self.prediction_id,
                "predictions": [{"tag": t, "probability": p} for t, p in self.tags], "disclaimer": self.disclaimer}


@functools.lru_cache(maxsize=8)
def _load_model(path: str):
    from dermlens.inference.onnx_model import OnnxModel

    return OnnxModel.load(path)


class Publishing:
    """Quick test, publish, predict, review and correct."""

    def __init__(self, store: ProjectStore, cache_dir: Path | None = None) -> None:
        self.store = store
        self.iterations = Iterations(store)
        self.cache_dir = Path(cache_dir or Path(tempfile.gettempdir()) / "dermlens-models")

    def model_path(self, iteration: Iteration) -> Path:
        """A local copy of the iteration's ONNX model (object keys are immutable, so a copy stays valid)."""
        path = self.cache_dir / iteration.model_key
        if not path.is_file():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.part")
            partial.write_bytes(self.store.blobs.get(iteration.model_key))
            partial.replace(path)
        return path

    def classify(self, iteration: Iteration, image: StoredImage) -> list[tuple[str, float]]:
        model = _load_model(str(self.model_path(iteration)))
        logits = model.logits(model.preprocessing.normalize(model.preprocessing.prepare(image.pixels)[None]))
        multiclass = iteration.config.get("project_kind", "multiclass") == "multiclass"
        probabilities = tag_probabilities(logits, multiclass, model.temperature)[0]
        order = np.argsort(-probabilities, kind="stable")
        return [(model.classes[i], float(probabilities[i])) for i in order]

    def quick_test(self, project_id: int, number: int, image: StoredImage) -> TagPrediction:
        """An iteration's tags for one image; nothing is kept."""
        iteration = self.iterations.completed(project_id, number)
        return TagPrediction(iteration.number, tuple(self.classify(iteration, image)))

    def publish(self, project_id: int, number: int, name: str) -> Project:
        iteration = self.iterations.completed(project_id, number)
        name = " ".join(name.split())[:100]
        if not name:
            raise Invalid("give the published iteration a name")
        with self.store.database.session() as session:
            project = session.get(Project, project_id)
            project.published_iteration_id, project.published_name = iteration.id, name
            session.commit()
            return project

    def unpublish(self, project_id: int) -> None:
        with self.store.database.session() as session:
            project = session.get(Project, project_id)
            if project is None:
                raise NotFound(f"there is no project {project_id}")
            project.published_iteration_id, project.published_name = None, None
            session.commit()

    def check_key(self, project_id: int, key: str | None) -> Project:
        """The project, if ``key`` is its prediction key; Unauthorized otherwise (a wrong key and a
        missing project look the same to a caller)."""
        with self.store.database.session() as session:
            project = session.get(Project, project_id)
            if project is None or not secret_matches(key, project.prediction_key_hash):
                raise Unauthorized("this project needs its prediction key: send it in the Prediction-Key header")
            return project

    def predict(self, project_id: int, key: str | None, image: StoredImage, *, keep: bool = False) -> TagPrediction:
        """The published iteration's answer; with ``keep`` the image and answer are kept for review."""
        project = self.check_key(project_id, key)
        if project.published_iteration_id is None:
            raise Conflict("this project has no published iteration; publish one first")
        iteration = self.iterations.by_id(project.published_iteration_id)
        tags = self.classify(iteration, image)
        prediction_id = None
        if keep:
            image_id, _ = self.store.add_image(project_id, image, source="prediction")
            with self.store.database.session() as session:
                record = PredictionRecord(project_id=project_id, iteration_id=iteration.id, image_id=image_id,
                                          source="endpoint", probabilities=dict(tags), top_tag=tags[0][0],
                                          top_probability=tags[0][1])
                session.add(record)
                session.commit()
                prediction_id = record.id
        return TagPrediction(iteration.number, tuple(tags), prediction_id)

    def review(self, project_id: int, *, include_reviewed: bool = False, limit: int = 100) -> list[dict]:
        """Kept predictions to review: those that disagree with the image's tag first, then the least
        confident, so a person spends the first clicks where the model was wrong."""
        self.store.project(project_id)
        with self.store.database.session() as session:
            tag_names = dict(session.execute(select(Tag.id, Tag.name).where(Tag.project_id == project_id)).all())
            top_tag_id = select(Tag.id).where(Tag.project_id == project_id,
                                              Tag.name == PredictionRecord.top_tag).scalar_subquery()
            labelled = exists().where(Label.image_id == PredictionRecord.image_id)
            agrees = exists().where(Label.image_id == PredictionRecord.image_id, Label.tag_id == top_tag_id)
            wrong = case((labelled & ~agrees, 0), else_=1)
            query = (select(PredictionRecord).where(PredictionRecord.project_id == project_id,
                                                    PredictionRecord.source == "endpoint")
                     .order_by(wrong, PredictionRecord.top_probability, PredictionRecord.id).limit(limit))
            if not include_reviewed:
                query = query.where(PredictionRecord.reviewed.is_(False))
            records = list(session.scalars(query))
            labels: dict[int, list[str]] = {}
            for image_id, tag_id in session.execute(select(Label.image_id, Label.tag_id).where(
                    Label.image_id.in_([r.image_id for r in records]))):
                labels.setdefault(image_id, []).append(tag_names[tag_id])
        return [{"id": r.id, "image_id": r.image_id, "predicted": r.top_tag, "probability": r.top_probability,
                 "probabilities": r.probabilities, "tags": sorted(labels.get(r.image_id, [])),
                 "wrong": bool(labels.get(r.image_id)) and r.top_tag not in labels.get(r.image_id, []),
                 "reviewed": r.reviewed, "created_at": as_utc(r.created_at).isoformat()} for r in records]

    def correct(self, project_id: int, prediction_id: int, tag_id: int, *, by: str = "") -> None:
        """Tag a kept prediction's image with ``tag_id`` (replacing its tag in a multiclass project):
        the image joins the training set of the next iteration."""
        with self.store.database.session() as session:
            record = session.get(PredictionRecord, prediction_id)
            if record is None or record.project_id != project_id or record.image_id is None:
                raise NotFound(f"project {project_id} has no kept prediction {prediction_id}")
            image_id = record.image_id
        self.store.set_labels(project_id, [image_id], add=[tag_id], labelled_by=by)
        with self.store.database.session() as session:
            record = session.get(PredictionRecord, prediction_id)
            record.reviewed = True
            session.add(Correction(prediction_id=prediction_id, tag_id=tag_id, corrected_by=by[:100]))
            session.commit()

    def confirm(self, project_id: int, prediction_id: int, *, by: str = "") -> None:
        """The prediction was right: tag the image with the predicted tag."""
        with self.store.database.session() as session:
            record = session.get(PredictionRecord, prediction_id)
            if record is None or record.project_id != project_id:
                raise NotFound(f"project {project_id} has no kept prediction {prediction_id}")
            tag = session.scalar(select(Tag).where(Tag.project_id == project_id, Tag.name == record.top_tag))
        if tag is None:
            raise Conflict(f"the tag {record.top_tag!r} no longer exists; choose another tag")
        self.correct(project_id, prediction_id, tag.id, by=by)
