"""The tables of a custom-vision project store (SQLAlchemy 2 ORM, SQLite or PostgreSQL).

A project has tags; images belong to a project and carry labels (image x tag, who and when); an
iteration is one training of the project's tagged images; a kept prediction may get a correction,
which becomes a label for the next iteration. Image pixels live in the object store under their
content hash (`ImageRecord.blob_key`); the database holds only what describes them.

The schema is created and upgraded by Alembic (`dermlens/projects/migrations`), never by
``create_all``, so a database made by an older dermlens is upgraded in place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import ClassVar

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def image_key(sha256: str) -> str:
    """The object-store key of an image's pixels."""
    return f"{sha256}.png"


FEATURES_PREFIX = "features-"  # cached backbone features of an image: features-<backbone>-<size>-<sha256>.npy


def export_prefix(iteration_id: int) -> str:
    """The object-store keys of an iteration's exports start with this (then the format)."""
    return f"export-{iteration_id}-"


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time dermlens stores is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ProjectKind(str, Enum):
    multiclass = "multiclass"  # exactly one tag per image
    multilabel = "multilabel"  # any number of tags per image


class TagKind(str, Enum):
    regular = "regular"
    negative = "negative"  # an image that matches none of the other tags (multilabel projects)


class IterationKind(str, Enum):
    quick = "quick"  # a head on cached pretrained features: seconds to a few minutes
    advanced = "advanced"  # fine-tuning the backbone within a time budget


class IterationStatus(str, Enum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"


class PredictionSource(str, Enum):
    quick_test = "quick_test"
    endpoint = "endpoint"  # the published prediction endpoint
    suggestion = "suggestion"  # an iteration's guess for an untagged image


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {datetime: DateTime(timezone=True), dict: JSON}


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(1000), default="")
    kind: Mapped[str] = mapped_column(String(20), default=ProjectKind.multiclass.value)
    #: sha256 of the prediction key; the key itself is shown once, when it is made
    prediction_key_hash: Mapped[str] = mapped_column(String(64))
    #: no foreign key (projects and iterations would point at each other); the store keeps it valid
    published_iteration_id: Mapped[int | None] = mapped_column(Integer, default=None)
    published_name: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tags: Mapped[list[Tag]] = relationship(back_populates="project", cascade="all, delete-orphan",
                                           passive_deletes=True, order_by="Tag.id")


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20), default=TagKind.regular.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    project: Mapped[Project] = relationship(back_populates="tags")


class ImageRecord(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)  # of the stored pixels (PNG)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(200), default="upload")  # how it came: upload, zip, csv...
    original_name: Mapped[str] = mapped_column(String(255), default="")  # shown, never used as a path
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    labels: Mapped[list[Label]] = relationship(cascade="all, delete-orphan", passive_deletes=True)

    @property
    def blob_key(self) -> str:
        return image_key(self.sha256)


class Label(Base):
    __tablename__ = "labels"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True,
                                        index=True)
    labelled_by: Mapped[str] = mapped_column(String(100), default="")
    labelled_at: Mapped[datetime] = mapped_column(default=utcnow)


class Iteration(Base):
    __tablename__ = "iterations"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... within the project
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=IterationStatus.queued.value, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    message: Mapped[str] = mapped_column(String(1000), default="")
    config: Mapped[dict] = mapped_column(default=dict)  # kind, budget, backbone, tags and image counts
    metrics: Mapped[dict | None] = mapped_column(default=None)
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    model_key: Mapped[str | None] = mapped_column(String(200), default=None)  # the ONNX model's object
    checkpoint_key: Mapped[str | None] = mapped_column(String(200), default=None)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)  # host:pid that runs it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)


class PredictionRecord(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    iteration_id: Mapped[int] = mapped_column(ForeignKey("iterations.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), default=None)
    source: Mapped[str] = mapped_column(String(20))
    probabilities: Mapped[dict] = mapped_column()  # tag name -> probability
    top_tag: Mapped[str] = mapped_column(String(100))
    top_probability: Mapped[float] = mapped_column(Float)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Correction(Base):
    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id", ondelete="CASCADE"), index=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"))
    corrected_by: Mapped[str] = mapped_column(String(100), default="")
    corrected_at: Mapped[datetime] = mapped_column(default=utcnow)
