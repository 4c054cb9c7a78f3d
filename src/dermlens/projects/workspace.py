"""`Workspace`: everything projects need, opened from a data directory and an optional database URL.

``data_dir`` holds the SQLite database (unless ``database_url`` names PostgreSQL), the object store
(images, features, models) and a cache of models loaded for prediction. Many server workers, on one
machine or several sharing the folder and the database, can open the same workspace at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dermlens.projects.database import Database, default_data_dir, sqlite_url
from dermlens.projects.iterations import Iterations
from dermlens.projects.publishing import Publishing
from dermlens.projects.store import ProjectStore
from dermlens.storage import FileStore


@dataclass
class Workspace:
    data_dir: Path
    database: Database
    store: ProjectStore
    iterations: Iterations
    publishing: Publishing

    @classmethod
    def open(cls, data_dir: str | Path | None = None, database_url: str | None = None) -> Workspace:
        """Open (creating if needed) the workspace.

        >>> workspace = Workspace.open(tempfile.mkdtemp())   # doctest: +SKIP
        """
        data_dir = Path(data_dir) if data_dir else default_data_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        database = Database.open(database_url or sqlite_url(data_dir))
        store = ProjectStore(database, FileStore(data_dir / "objects"))
        return cls(data_dir, database, store, Iterations(store), Publishing(store, data_dir / "cache" / "models"))

    @property
    def database_url(self) -> str:
        return self.database.engine.url.render_as_string(hide_password=False)
