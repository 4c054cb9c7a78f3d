"""``/api/v1/projects``: create, list, rename and delete projects and their tags; the prediction key.

Every route here needs the admin token (`dermlens.api.auth`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from dermlens.api.auth import require_admin
from dermlens.projects.schema import Project, ProjectKind, Tag, as_utc

router = APIRouter(prefix="/api/v1/projects", tags=["projects"], dependencies=[Depends(require_admin)])


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    kind: ProjectKind = ProjectKind.multiclass
    description: str = Field("", max_length=1000)


class ProjectPatch(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=1000)


class TagIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)


def project_out(request: Request, project: Project) -> dict[str, Any]:
    workspace = request.app.state.workspace
    published = None
    if project.published_iteration_id is not None:
        published = workspace.iterations.by_id(project.published_iteration_id).number
    return _project_out(project, published, workspace.store.tags(project.id), workspace.store.tag_counts(project.id))


def _project_out(project: Project, published: int | None, tags: list[Tag], counts: dict[int, int]) -> dict[str, Any]:
    """A project with the number of its published iteration, its tags and their image counts."""
    endpoint = None if published is None else {"name": project.published_name, "iteration": published,
                                                "endpoint": f"/api/v1/projects/{project.id}/predict"}
    return {"id": project.id, "name": project.name, "kind": project.kind, "description": project.description,
            "created_at": as_utc(project.created_at).isoformat(), "published": endpoint,
            "tags": [tag_out(t, counts.get(t.id, 0)) for t in tags]}


def tag_out(tag: Tag, images: int) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name, "kind": tag.kind, "images": images}


@router.get("", summary="List projects")
def list_projects(request: Request) -> list[dict[str, Any]]:
    return [_project_out(row.project, row.published, row.tags, row.tag_counts)
            for row in request.app.state.workspace.store.overview()]


@router.post("", status_code=201, summary="Create a project (its prediction key is shown this once)")
def create_project(request: Request, body: ProjectIn) -> dict[str, Any]:
    project, key = request.app.state.workspace.store.create_project(body.name, kind=body.kind,
                                                                    description=body.description)
    return {**project_out(request, project), "prediction_key": key}


@router.get("/{project_id}", summary="One project with its tags and image counts")
def get_project(request: Request, project_id: int) -> dict[str, Any]:
    return project_out(request, request.app.state.workspace.store.project(project_id))


@router.patch("/{project_id}", summary="Rename a project")
def rename_project(request: Request, project_id: int, body: ProjectPatch) -> dict[str, Any]:
    project = request.app.state.workspace.store.rename_project(project_id, body.name, body.description)
    return project_out(request, project)


@router.delete("/{project_id}", status_code=204, summary="Delete a project with its images and iterations")
def delete_project(request: Request, project_id: int) -> None:
    request.app.state.workspace.store.delete_project(project_id)


@router.post("/{project_id}/key", summary="Make a new prediction key (the old one stops working)")
def new_key(request: Request, project_id: int) -> dict[str, str]:
    return {"prediction_key": request.app.state.workspace.store.new_prediction_key(project_id)}


@router.get("/{project_id}/tags", summary="The project's tags with their image counts")
def list_tags(request: Request, project_id: int) -> list[dict[str, Any]]:
    store = request.app.state.workspace.store
    counts = store.tag_counts(project_id)
    return [tag_out(t, counts.get(t.id, 0)) for t in store.tags(project_id)]


@router.post("/{project_id}/tags", status_code=201, summary="Add a tag")
def add_tag(request: Request, project_id: int, body: TagIn) -> dict[str, Any]:
    (tag,) = request.app.state.workspace.store.add_tags(project_id, [body.name])
    return tag_out(tag, 0)


@router.patch("/{project_id}/tags/{tag_id}", summary="Rename a tag")
def rename_tag(request: Request, project_id: int, tag_id: int, body: TagIn) -> dict[str, Any]:
    store = request.app.state.workspace.store
    tag = store.rename_tag(project_id, tag_id, body.name)
    return tag_out(tag, store.tag_counts(project_id).get(tag.id, 0))


@router.delete("/{project_id}/tags/{tag_id}", status_code=204, summary="Delete a tag (its images stay, untagged)")
def delete_tag(request: Request, project_id: int, tag_id: int) -> None:
    request.app.state.workspace.store.delete_tag(project_id, tag_id)
