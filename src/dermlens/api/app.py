"""`create_app(settings)`: the FastAPI application behind ``dermlens serve``.

The predictor and the condition catalogue are loaded once in the lifespan and shared by every
request; a worker keeps no other state, so any number of them can run behind a load balancer.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from dermlens import DISCLAIMER, __version__
from dermlens.api.errors import install_error_handlers
from dermlens.api.limits import FORM_OVERHEAD, BodySizeLimit, RateLimit, SecurityHeaders
from dermlens.api.settings import ServeSettings

WEB = Path(__file__).resolve().parent.parent / "web"
log = logging.getLogger("dermlens.api")


def keep_uploads_in_memory(max_bytes: int) -> None:
    """Starlette spools uploads over 1 MB to a temporary file; keep every accepted upload in memory
    instead, so a photo never touches the disk (the size limit bounds the memory)."""
    from starlette.formparsers import MultiPartParser

    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, max_bytes)


def open_projects(app: FastAPI, settings: ServeSettings) -> None:
    """Open the projects workspace, fail the jobs whose process died, sweep images a dead process left
    behind, and learn the admin token."""
    from dermlens.api.auth import admin_token
    from dermlens.projects.keys import secret_hash
    from dermlens.projects.orphans import collect_orphans
    from dermlens.projects.workspace import Workspace

    workspace = Workspace.open(settings.data_dir, settings.database_url)
    interrupted = workspace.iterations.recover_interrupted()
    if interrupted:
        log.warning("marked %d interrupted training job(s) as failed", len(interrupted))
    swept = collect_orphans(workspace.database, workspace.store.blobs)
    if swept:
        log.warning("deleted %d stored image object(s) that no project holds", len(swept))
    app.state.workspace = workspace
    app.state.admin_token_hash = secret_hash(admin_token(settings.admin_token, workspace.data_dir))
    if not settings.admin_token:
        log.warning("projects: the admin token is in %s", workspace.data_dir / "admin-token")


def create_app(settings: ServeSettings | None = None, predictor=None) -> FastAPI:
    """The web app and REST API; ``predictor`` (a loaded `Predictor`) skips loading ``settings.model``.

    >>> app = create_app(ServeSettings(model="default"))   # doctest: +SKIP
    """
    from dermlens.api.routes import conditions, info, predict, project_images, project_iterations, projects, triage
    from dermlens.web import iteration_pages, pages, project_access, project_pages

    settings = settings or ServeSettings()
    keep_uploads_in_memory(settings.max_upload_bytes + FORM_OVERHEAD)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from dermlens.api.service import AssessmentService
        from dermlens.inference.predictor import Predictor
        from dermlens.knowledge.catalogue import load_catalogue
        from dermlens.storage import FileStore

        loaded = predictor or Predictor.load(settings.model, threads=settings.threads)
        store = FileStore(settings.keep_uploads_dir) if settings.keep_uploads_dir else None
        app.state.service = AssessmentService(loaded, load_catalogue(), settings, store)
        open_projects(app, settings)
        log.info("dermlens %s serving %s", __version__, settings.model)
        yield

    app = FastAPI(title="dermlens", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"Skin-lesion image classification as decision support. {DISCLAIMER}")
    app.state.settings = settings
    for router in (predict.router, info.router, conditions.router, triage.router, projects.router,
                   project_images.router, project_iterations.router, pages.router, project_access.router,
                   project_pages.router, iteration_pages.router):
        app.include_router(router)
    from swagger_ui_bundle import swagger_ui_path

    # /docs is Swagger UI from the installed package: no CDN, so it works offline
    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    install_error_handlers(app, pages.render_error)
    app.add_exception_handler(project_access.PageRefused, project_access.answer_refusal)
    # outermost first: headers on every answer, then the rate and size limits before any parsing
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes,
                       import_max_bytes=settings.max_import_bytes)
    app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute)
    app.add_middleware(SecurityHeaders)
    return app
