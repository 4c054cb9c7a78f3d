"""Iterations as jobs in the database: queue one, claim it, report progress, finish or fail it.

The row is the job: any process that can reach the database can run it (`dermlens.projects.jobs`),
a page or API call reads its progress from the row, and a job whose runner died (no heartbeat for
`STALE_AFTER`) is marked failed at the next start, so nothing waits forever on a dead process.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from dermlens.projects.errors import Conflict, Invalid, NotFound
from dermlens.projects.schema import Iteration, IterationKind, IterationStatus, Project, Tag, as_utc, utcnow
from dermlens.projects.store import ProjectStore

MIN_IMAGES_PER_TAG = 5
IMBALANCE_WARNING = 10.0  # largest over smallest tag
STALE_AFTER = timedelta(seconds=90)
MAX_BUDGET_MINUTES = 24 * 60


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def runner_is_gone(worker: str | None) -> bool:
    """Whether the process named ``host:pid`` ran on this host and no longer exists."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(int(pid))


def _is_zombie(pid: int) -> bool:
    """A killed process that nobody has reaped yet still answers signal 0; Linux says it is a zombie."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rpartition(")")[2].split()[:1] == ["Z"]


class Iterations:
    """Queue, run and read iterations of a project store."""

    def __init__(self, store: ProjectStore) -> None:
        self.store = store
        self.database = store.database

    def training_set(self, project_id: int) -> tuple[list[Tag], dict[int, int], list[str]]:
        """The tags an iteration would learn, images per tag, and warnings; refuses what cannot train."""
        tags = self.store.tags(project_id)
        counts = self.store.tag_counts(project_id)
        used = [t for t in tags if counts.get(t.id, 0) > 0]
        if len(used) < 2:
            raise Invalid(f"an iteration needs at least 2 tags with images; this project has "
                          f"{len(used)}. Tag more images.")
        few = [f"{t.name} ({counts[t.id]})" for t in used if counts[t.id] < MIN_IMAGES_PER_TAG]
        if few:
            raise Invalid(f"every tag needs at least {MIN_IMAGES_PER_TAG} images to train; too few: "
                          f"{', '.join(few)}. Add images to those tags, or delete the tags.")
        warnings = []
        sizes = [counts[t.id] for t in used]
        if max(sizes) / min(sizes) > IMBALANCE_WARNING:
            largest = max(used, key=lambda t: counts[t.id])
            smallest = min(used, key=lambda t: counts[t.id])
            warnings.append(f"the tags are unbalanced: {largest.name} has {counts[largest.id]} images and "
                            f"{smallest.name} {counts[smallest.id]}; the iteration weights tags equally, but "
                            f"more images of {smallest.name} would help most")
        return used, counts, warnings

    def queue(self, project_id: int, kind: IterationKind | str = IterationKind.quick, *,
              budget_minutes: float = 10.0, backbone: str = "efficientnet_lite0") -> Iteration:
        """A new iteration in the queue (refused when the tags cannot train)."""
        try:
            kind = IterationKind(kind)
        except ValueError:
            raise Invalid(f"training kind {kind!r} is unknown; use quick or advanced") from None
        if kind is IterationKind.advanced and not 1 <= budget_minutes <= MAX_BUDGET_MINUTES:
            raise Invalid(f"an advanced iteration's budget is 1 to {MAX_BUDGET_MINUTES} minutes")
        project = self.store.project(project_id)
        if kind is IterationKind.advanced and project.kind == "multilabel":
            raise Invalid("advanced training fine-tunes a single-tag classifier; a multilabel project can "
                          "train quick iterations")
        tags, counts, warnings = self.training_set(project_id)
        config = {"kind": kind.value, "backbone": backbone, "tags": [t.name for t in tags],
                  "tag_ids": [t.id for t in tags], "images_per_tag": {t.name: counts[t.id] for t in tags},
                  "project_kind": project.kind}
        if kind is IterationKind.advanced:
            config["budget_minutes"] = float(budget_minutes)
        with self.database.session() as session:
            for _ in range(5):
                number = (session.scalar(select(func.max(Iteration.number)).where(
                    Iteration.project_id == project_id)) or 0) + 1
                iteration = Iteration(project_id=project_id, number=number, kind=kind.value, config=config,
                                      warnings=warnings, message="waiting for a worker")
                session.add(iteration)
                try:
                    session.commit()
                    return iteration
                except IntegrityError:  # two requests took the same number: take the next
                    session.rollback()
            raise Conflict("could not number the new iteration; try again")

    def list(self, project_id: int) -> list[Iteration]:
        self.store.project(project_id)
        with self.database.session() as session:
            return list(session.scalars(select(Iteration).where(Iteration.project_id == project_id)
                                        .order_by(Iteration.number)))

    def get(self, project_id: int, number: int) -> Iteration:
        with self.database.session() as session:
            found = session.scalar(select(Iteration).where(Iteration.project_id == project_id,
                                                           Iteration.number == number))
            if found is None:
                self.store.project(project_id)
                raise NotFound(f"project {project_id} has no iteration {number}")
            return found

    def by_id(self, iteration_id: int) -> Iteration:
        with self.database.session() as session:
            found = session.get(Iteration, iteration_id)
            if found is None:
                raise NotFound(f"there is no iteration with id {iteration_id}")
            return found

    def completed(self, project_id: int, number: int) -> Iteration:
        iteration = self.get(project_id, number)
        if iteration.status != IterationStatus.completed.value:
            raise Conflict(f"iteration {number} is {iteration.status}; only a completed iteration can do that")
        return iteration

    def delete(self, project_id: int, number: int) -> None:
        iteration = self.get(project_id, number)
        if iteration.status in (IterationStatus.queued.value, IterationStatus.running.value):
            raise Conflict(f"iteration {number} is {iteration.status}; wait until it ends")
        with self.database.session() as session:
            project = session.get(Project, project_id)
            if project.published_iteration_id == iteration.id:
                raise Conflict(f"iteration {number} is published as {project.published_name!r}; unpublish it first")
            session.delete(session.get(Iteration, iteration.id))
            session.commit()
        self.store.forget_iteration(iteration)

    # the job side -------------------------------------------------------------------------------
    def claim(self, worker: str | None = None, *, only: int | None = None) -> Iteration | None:
        """Take the oldest queued iteration (or the iteration with id ``only``) for this process; None when
        there is none to take.

        A compare-and-set on the status: of several workers claiming at once, exactly one wins.
        """
        worker = worker or worker_name()
        with self.database.session() as session:
            queued = select(Iteration.id).where(Iteration.status == IterationStatus.queued.value)
            if only is not None:
                queued = queued.where(Iteration.id == only)
            for candidate in session.scalars(queued.order_by(Iteration.id).limit(5)).all():
                now = utcnow()
                won = session.execute(update(Iteration).where(
                    Iteration.id == candidate, Iteration.status == IterationStatus.queued.value).values(
                    status=IterationStatus.running.value, worker=worker, started_at=now, heartbeat_at=now,
                    message="starting")).rowcount
                session.commit()
                if won:
                    return session.get(Iteration, candidate)
        return None

    def report(self, iteration_id: int, progress: float, message: str) -> None:
        """Progress (0..1) and what is happening; also the heartbeat that shows the runner is alive."""
        with self.database.session() as session:
            session.execute(update(Iteration).where(Iteration.id == iteration_id).values(
                progress=max(0.0, min(1.0, float(progress))), message=message[:1000], heartbeat_at=utcnow()))
            session.commit()

    def finish(self, iteration_id: int, *, metrics: dict, model_key: str, checkpoint_key: str | None) -> None:
        with self.database.session() as session:
            session.execute(update(Iteration).where(Iteration.id == iteration_id).values(
                status=IterationStatus.completed.value, progress=1.0, message="completed", metrics=metrics,
                model_key=model_key, checkpoint_key=checkpoint_key, finished_at=utcnow(), heartbeat_at=utcnow()))
            session.commit()

    def fail(self, iteration_id: int, message: str) -> None:
        with self.database.session() as session:
            session.execute(update(Iteration).where(Iteration.id == iteration_id).values(
                status=IterationStatus.failed.value, message=message[:1000], finished_at=utcnow()))
            session.commit()

    def recover_interrupted(self, stale_after: timedelta = STALE_AFTER) -> list[int]:
        """Mark failed every running iteration whose runner is gone: its process on this host no longer
        exists, or it has not reported for ``stale_after`` (killed, or its machine stopped). -> their ids."""
        now = utcnow()
        with self.database.session() as session:
            running = session.scalars(select(Iteration).where(Iteration.status == IterationStatus.running.value))
            stale = [it for it in running if runner_is_gone(it.worker)
                     or (as_utc(it.heartbeat_at) if it.heartbeat_at else now - 2 * stale_after) < now - stale_after]
            for iteration in stale:
                iteration.status = IterationStatus.failed.value
                iteration.message = ("interrupted: the process training it stopped before it finished "
                                     f"(last heard from {iteration.worker}); train a new iteration")
                iteration.finished_at = now
            session.commit()
            return [it.id for it in stale]
