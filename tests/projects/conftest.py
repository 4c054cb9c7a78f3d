"""A project store on SQLite and, for tests marked to, on a real PostgreSQL server."""

from __future__ import annotations

import pytest

from dermlens.projects.workspace import Workspace


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def workspace(request, tmp_path) -> Workspace:
    """A fresh workspace: SQLite in tmp_path, or a fresh PostgreSQL database (with the files in tmp_path)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    opened = Workspace.open(tmp_path / "data", url)
    yield opened
    opened.database.engine.dispose()
