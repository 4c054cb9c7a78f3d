"""`ProjectStore`: projects, tags, images and labels, over one database and one object store.

Every method is one short transaction, so any number of stateless server workers can share the
store. Image bytes are written to the object store first and the database row committed after:
a process killed in between leaves at most an unreferenced object, never a row without its image.

>>> from dermlens.projects.database import Database
>>> from dermlens.storage import FileStore
>>> store = ProjectStore(Database.open("sqlite:///:memory:"), FileStore(tempfile.mkdtemp()))
>>> project, key = store.create_project("lentigo vs keratosis")
>>> [t.name for t in store.add_tags(project.id, ["akiec", "bkl"])]
['akiec', 'bkl']
"""

from __future__ import annotations

import contextlib
import tempfile  # noqa: F401 (used by the example above)
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError

from dermlens.projects.database import Database
from dermlens.projects.errors import Conflict, Invalid, NotFound
from dermlens.projects.intake import StoredImage
from dermlens.projects.keys import new_secret, secret_hash
from dermlens.projects.schema import (
    FEATURES_PREFIX,
    ImageRecord,
    Iteration,
    Label,
    PredictionRecord,
    Project,
    ProjectKind,
    Tag,
    TagKind,
    export_prefix,
    image_key,
)
from dermlens.storage import ObjectStore

ImageFilter = str  # "all", "tagged", "untagged", "suggested" or "tag:<id>"


@dataclass
class ImageRow:
    """An image with its tags (and, for untagged images, the latest iteration's suggestion)."""

    image: ImageRecord
    tag_ids: list[int] = field(default_factory=list)
    suggestion: PredictionRecord | None = None


@dataclass
class AddedImages:
    """What an upload did: new images, duplicates of images already there, and files refused."""

    added: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)


@dataclass
class ProjectOverview:
    """A project as the project list shows it: its counts, its tags and its published iteration's number."""

    project: Project
    images: int
    iterations: int
    published: int | None  # the number of the published iteration
    tags: list[Tag] = field(default_factory=list)
    tag_counts: dict[int, int] = field(default_factory=dict)  # images per tag id (0 for a tag without any)


def _clean_name(name: str, what: str) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise Invalid(f"a {what} name cannot be empty")
    if len(name) > 100:
        raise Invalid(f"a {what} name has at most 100 characters")
    return name


class ProjectStore:
    """Projects, tags, images and labels."""

    def __init__(self, database: Database, blobs: ObjectStore) -> None:
        self.database = database
        self.blobs = blobs

    # projects ---------------------------------------------------------------------------------
    def create_project(self, name: str, *, kind: ProjectKind | str = ProjectKind.multiclass,
                       description: str = "") -> tuple[Project, str]:
        """A new project and its prediction key (shown this once; only its hash is kept)."""
        try:
            kind = ProjectKind(kind)
        except ValueError:
            raise Invalid(f"project kind {kind!r} is unknown; use multiclass or multilabel") from None
        key = new_secret()
        project = Project(name=_clean_name(name, "project"), kind=kind.value, description=description[:1000],
                          prediction_key_hash=secret_hash(key))
        with self.database.session() as session:
            session.add(project)
            self._commit(session, f"a project named {project.name!r} already exists; choose another name")
            if kind is ProjectKind.multilabel:
                session.add(Tag(project_id=project.id, name="Negative", kind=TagKind.negative.value))
                session.commit()
        return project, key

    def projects(self) -> list[Project]:
        with self.database.session() as session:
            return list(session.scalars(select(Project).order_by(Project.id)))

    def overview(self) -> list[ProjectOverview]:
        """Every project with its counts, tags and published iteration: one grouped query each, not per project."""
        with self.database.session() as session:
            projects = list(session.scalars(select(Project).order_by(Project.id)))
            images = dict(session.execute(select(ImageRecord.project_id, func.count())
                                          .group_by(ImageRecord.project_id)).all())
            iterations = dict(session.execute(select(Iteration.project_id, func.count())
                                              .group_by(Iteration.project_id)).all())
            published = dict(session.execute(select(Iteration.id, Iteration.number)
                                             .join(Project, Project.published_iteration_id == Iteration.id)).all())
            tags: dict[int, list[Tag]] = {}
            for tag in session.scalars(select(Tag).order_by(Tag.id)):
                tags.setdefault(tag.project_id, []).append(tag)
            counts = dict(session.execute(select(Label.tag_id, func.count()).group_by(Label.tag_id)).all())
        return [ProjectOverview(p, images.get(p.id, 0), iterations.get(p.id, 0), published.get(p.published_iteration_id),
                                tags.get(p.id, []), {t.id: counts.get(t.id, 0) for t in tags.get(p.id, [])})
                for p in projects]

    def project(self, project_id: int) -> Project:
        with self.database.session() as session:
            return self._project(session, project_id)

    def rename_project(self, project_id: int, name: str, description: str | None = None) -> Project:
        with self.database.session() as session:
            project = self._project(session, project_id)
            project.name = _clean_name(name, "project")
            if description is not None:
                project.description = description[:1000]
            self._commit(session, f"a project named {project.name!r} already exists; choose another name")
            return project

    def delete_project(self, project_id: int) -> None:
        """Delete the project and everything in it (images stay in the object store while another
        project still holds the same picture)."""
        with self.database.session() as session:
            project = self._project(session, project_id)
            hashes = set(session.scalars(select(ImageRecord.sha256).where(ImageRecord.project_id == project_id)))
            iterations = list(session.scalars(select(Iteration).where(Iteration.project_id == project_id)))
            session.delete(project)
            session.commit()
        self._forget_images(hashes)
        for iteration in iterations:
            self.forget_iteration(iteration)

    def forget_iteration(self, iteration: Iteration) -> None:
        """Delete a deleted iteration's objects: its model, its checkpoint and its exports."""
        for key in (iteration.model_key, iteration.checkpoint_key, *self.blobs.keys(export_prefix(iteration.id))):
            if key:
                self.blobs.delete(key)

    def _forget_images(self, hashes: set[str]) -> None:
        """Delete the pixels, and the features computed from them, of deleted images that no project
        holds any more."""
        with self.database.session() as session:
            still_used = set(session.scalars(select(ImageRecord.sha256).where(ImageRecord.sha256.in_(hashes))))
        gone = hashes - still_used
        if not gone:
            return
        derived = [key for key in self.blobs.keys(FEATURES_PREFIX) if key.rsplit("-", 1)[-1][:-4] in gone]
        for key in [image_key(sha) for sha in gone] + derived:
            self.blobs.delete(key)

    def new_prediction_key(self, project_id: int) -> str:
        """Replace the project's prediction key; the old one stops working at once."""
        key = new_secret()
        with self.database.session() as session:
            self._project(session, project_id).prediction_key_hash = secret_hash(key)
            session.commit()
        return key

    # tags -------------------------------------------------------------------------------------
    def tags(self, project_id: int) -> list[Tag]:
        with self.database.session() as session:
            self._project(session, project_id)
            return list(session.scalars(select(Tag).where(Tag.project_id == project_id).order_by(Tag.id)))

    def tag_counts(self, project_id: int) -> dict[int, int]:
        """Images per tag id (tags with none are listed with 0)."""
        with self.database.session() as session:
            rows = session.execute(select(Tag.id, func.count(Label.image_id)).outerjoin(Label, Label.tag_id == Tag.id)
                                   .where(Tag.project_id == project_id).group_by(Tag.id))
            return {tag_id: count for tag_id, count in rows}

    def add_tags(self, project_id: int, names: Iterable[str]) -> list[Tag]:
        with self.database.session() as session:
            self._project(session, project_id)
            tags = [Tag(project_id=project_id, name=_clean_name(n, "tag")) for n in names]
            session.add_all(tags)
            self._commit(session, "a tag of that name already exists in this project")
            return tags

    def rename_tag(self, project_id: int, tag_id: int, name: str) -> Tag:
        with self.database.session() as session:
            tag = self._tag(session, project_id, tag_id)
            tag.name = _clean_name(name, "tag")
            self._commit(session, f"a tag named {tag.name!r} already exists in this project")
            return tag

    def delete_tag(self, project_id: int, tag_id: int) -> None:
        """Delete a tag; its images stay in the project, untagged."""
        with self.database.session() as session:
            session.delete(self._tag(session, project_id, tag_id))
            session.commit()

    def tag_named(self, project_id: int, names: Sequence[str], *, create: bool = False) -> list[Tag]:
        """The tags with these names (created when ``create``, else an unknown one is an error)."""
        existing = {t.name: t for t in self.tags(project_id)}
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing and not create:
            raise Invalid(f"the project has no tag {missing[0]!r}; tags are: {', '.join(existing) or 'none yet'}")
        if missing:
            existing.update({t.name: t for t in self.add_tags(project_id, missing)})
        return [existing[n] for n in names]

    # images -----------------------------------------------------------------------------------
    def add_image(self, project_id: int, image: StoredImage, *, source: str = "upload",
                  tag_ids: Sequence[int] = (), labelled_by: str = "") -> tuple[int, bool]:
        """Store one prepared image (deduplicated by content) and tag it; -> (image id, is it new)."""
        self.blobs.put(image_key(image.sha256), image.png)  # the object first, then the row that points at it
        try:
            recorded = self._record_image(project_id, image, source, tag_ids, labelled_by)
        except IntegrityError:  # another worker stored the same picture at the same moment
            return self.add_image(project_id, image, source=source, tag_ids=tag_ids, labelled_by=labelled_by)
        except BaseException:
            with contextlib.suppress(Exception):  # the database itself may be what failed; the sweep is there
                self._forget_images({image.sha256})  # refused (a wrong tag, a deleted project): keep no pixels
            raise
        if not self.blobs.exists(image_key(image.sha256)):  # another worker's refused copy of the same picture
            self.blobs.put(image_key(image.sha256), image.png)  # was forgotten before this row was committed
        return recorded

    def _record_image(self, project_id: int, image: StoredImage, source: str, tag_ids: Sequence[int],
                      labelled_by: str) -> tuple[int, bool]:
        with self.database.session() as session:
            project = self._project(session, project_id)
            self._check_tags(session, project, tag_ids)
            found = session.scalar(select(ImageRecord).where(ImageRecord.project_id == project_id,
                                                             ImageRecord.sha256 == image.sha256))
            new = found is None
            if new:
                found = ImageRecord(project_id=project_id, sha256=image.sha256, width=image.width,
                                    height=image.height, source=source[:200], original_name=image.name)
                session.add(found)
                session.flush()
            if tag_ids:
                self._set_labels(session, project, found.id, tag_ids, labelled_by, replace=project.kind == "multiclass")
            session.commit()
            return found.id, new

    def image(self, project_id: int, image_id: int) -> ImageRecord:
        with self.database.session() as session:
            found = session.get(ImageRecord, image_id)
            if found is None or found.project_id != project_id:
                raise NotFound(f"project {project_id} has no image {image_id}")
            return found

    def image_bytes(self, project_id: int, image_id: int) -> bytes:
        return self.blobs.get(self.image(project_id, image_id).blob_key)

    def delete_images(self, project_id: int, image_ids: Sequence[int]) -> int:
        with self.database.session() as session:
            self._project(session, project_id)
            doomed = list(session.scalars(select(ImageRecord).where(ImageRecord.project_id == project_id,
                                                                    ImageRecord.id.in_(image_ids))))
            for record in doomed:
                session.delete(record)
            session.commit()
        self._forget_images({r.sha256 for r in doomed})
        return len(doomed)

    def images(self, project_id: int, which: ImageFilter = "all", *, limit: int = 200,
               offset: int = 0) -> tuple[list[ImageRow], int]:
        """One page of the project's images and the total matching ``which``.

        ``suggested`` lists untagged images that the latest iteration has a guess for, the most
        uncertain first, so a person confirms the easy ones (at the end) in bulk.
        """
        with self.database.session() as session:
            self._project(session, project_id)
            query = select(ImageRecord).where(ImageRecord.project_id == project_id)
            has_label = exists().where(Label.image_id == ImageRecord.id)
            suggestions: dict[int, PredictionRecord] = {}
            if which == "tagged":
                query = query.where(has_label)
            elif which in ("untagged", "suggested"):
                query = query.where(~has_label)
            elif which.startswith("tag:"):
                tag = self._tag(session, project_id, _int(which[4:], "tag"))
                query = query.where(exists().where(Label.image_id == ImageRecord.id, Label.tag_id == tag.id))
            elif which != "all":
                raise Invalid(f"unknown image filter {which!r}: use all, tagged, untagged, suggested or tag:<id>")
            if which == "suggested":
                suggestions = self._suggestions(session, project_id)
                query = query.where(ImageRecord.id.in_(list(suggestions)))
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            if which == "suggested":
                records = list(session.scalars(query))
                records.sort(key=lambda r: (suggestions[r.id].top_probability, r.id))
                records = records[offset:offset + limit]
            else:
                records = list(session.scalars(query.order_by(ImageRecord.id.desc()).offset(offset).limit(limit)))
            labels: dict[int, list[int]] = {}
            for image_id, tag_id in session.execute(select(Label.image_id, Label.tag_id)
                                                    .where(Label.image_id.in_([r.id for r in records]))):
                labels.setdefault(image_id, []).append(tag_id)
            if which != "suggested" and records:
                suggestions = self._suggestions(session, project_id)
            return [ImageRow(r, sorted(labels.get(r.id, [])), suggestions.get(r.id)) for r in records], total

    def set_labels(self, project_id: int, image_ids: Sequence[int], *, add: Sequence[int] = (),
                   remove: Sequence[int] = (), labelled_by: str = "") -> int:
        """Bulk tagging: add and remove tags on many images at once (in a multiclass project adding a tag
        replaces the image's tag). -> how many images were changed."""
        with self.database.session() as session:
            project = self._project(session, project_id)
            self._check_tags(session, project, [*add, *remove])
            found = set(session.scalars(select(ImageRecord.id).where(ImageRecord.project_id == project_id,
                                                                     ImageRecord.id.in_(image_ids))))
            unknown = [i for i in image_ids if i not in found]
            if unknown:
                raise NotFound(f"project {project_id} has no image {unknown[0]}")
            if remove:
                session.execute(delete(Label).where(Label.image_id.in_(found), Label.tag_id.in_(remove)))
            for image_id in found:
                if add:
                    self._set_labels(session, project, image_id, add, labelled_by,
                                     replace=project.kind == "multiclass")
            session.commit()
            return len(found)

    def accept_suggestions(self, project_id: int, image_ids: Sequence[int], labelled_by: str = "") -> int:
        """Tag each of these untagged images with its suggestion (the newest iteration's top tag, when the
        project still has that tag); the others are left alone. -> how many images were tagged."""
        with self.database.session() as session:
            project = self._project(session, project_id)
            suggestions = self._suggestions(session, project_id)
            by_name = {t.name: t.id for t in session.scalars(select(Tag).where(Tag.project_id == project_id))}
            wanted = [i for i in set(image_ids) if i in suggestions and suggestions[i].top_tag in by_name]
            untagged = sorted(session.scalars(select(ImageRecord.id).where(
                ImageRecord.project_id == project_id, ImageRecord.id.in_(wanted),
                ~exists().where(Label.image_id == ImageRecord.id))))
            for image_id in untagged:
                self._set_labels(session, project, image_id, [by_name[suggestions[image_id].top_tag]], labelled_by,
                                 replace=project.kind == "multiclass")
            session.commit()
            return len(untagged)

    def labelled_images(self, project_id: int) -> list[tuple[ImageRecord, list[int]]]:
        """Every tagged image with its tag ids: what an iteration trains on."""
        with self.database.session() as session:
            records = {r.id: r for r in session.scalars(select(ImageRecord).where(ImageRecord.project_id == project_id))}
            labels: dict[int, list[int]] = {}
            for image_id, tag_id in session.execute(select(Label.image_id, Label.tag_id).join(ImageRecord)
                                                    .where(ImageRecord.project_id == project_id)):
                labels.setdefault(image_id, []).append(tag_id)
            return [(records[i], sorted(t)) for i, t in sorted(labels.items())]

    def untagged_images(self, project_id: int) -> list[ImageRecord]:
        with self.database.session() as session:
            return list(session.scalars(select(ImageRecord).where(
                ImageRecord.project_id == project_id, ~exists().where(Label.image_id == ImageRecord.id))))

    # helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _commit(session, conflict: str) -> None:
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            raise Conflict(conflict) from None

    @staticmethod
    def _project(session, project_id: int) -> Project:
        project = session.get(Project, project_id)
        if project is None:
            raise NotFound(f"there is no project {project_id}")
        return project

    @staticmethod
    def _tag(session, project_id: int, tag_id: int) -> Tag:
        tag = session.get(Tag, tag_id)
        if tag is None or tag.project_id != project_id:
            raise NotFound(f"project {project_id} has no tag {tag_id}")
        return tag

    @staticmethod
    def _check_tags(session, project: Project, tag_ids: Sequence[int]) -> None:
        if not tag_ids:
            return
        known = set(session.scalars(select(Tag.id).where(Tag.project_id == project.id)))
        unknown = [t for t in tag_ids if t not in known]
        if unknown:
            raise NotFound(f"project {project.id} has no tag {unknown[0]}")

    @staticmethod
    def _set_labels(session, project: Project, image_id: int, tag_ids: Sequence[int], labelled_by: str,
                    *, replace: bool) -> None:
        if project.kind == "multiclass" and len(set(tag_ids)) > 1:
            raise Invalid("a multiclass project gives each image one tag; choose one")
        current = set(session.scalars(select(Label.tag_id).where(Label.image_id == image_id)))
        if replace:
            stale = current - set(tag_ids)
            if stale:
                session.execute(delete(Label).where(Label.image_id == image_id, Label.tag_id.in_(stale)))
        for tag_id in set(tag_ids) - current:
            session.add(Label(image_id=image_id, tag_id=tag_id, labelled_by=labelled_by[:100]))

    @staticmethod
    def _suggestions(session, project_id: int) -> dict[int, PredictionRecord]:
        """The newest completed iteration's guesses for images, by image id."""
        latest = session.scalar(select(func.max(PredictionRecord.iteration_id)).where(
            PredictionRecord.project_id == project_id, PredictionRecord.source == "suggestion"))
        if latest is None:
            return {}
        rows = session.scalars(select(PredictionRecord).where(PredictionRecord.iteration_id == latest,
                                                              PredictionRecord.source == "suggestion"))
        return {r.image_id: r for r in rows if r.image_id is not None}


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise Invalid(f"{text!r} is not a {what} id") from None
