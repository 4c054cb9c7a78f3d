"""Opening the project database: SQLite in the data directory by default, PostgreSQL by URL.

Opening runs the Alembic migrations up to the newest schema, so a fresh data directory and one made by
an older dermlens both end up current. Several server workers may open the same database at once:
Alembic's version table and PostgreSQL's transactional DDL keep that safe; SQLite runs in WAL mode
with a busy timeout so a writer waits instead of failing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dermlens.errors import DermlensError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseError(DermlensError):
    """The project database cannot be opened or is not a dermlens database."""


def default_data_dir() -> Path:
    """``DERMLENS_DATA_DIR``, else ``~/.local/share/dermlens``: projects, images and models live here."""
    configured = os.environ.get("DERMLENS_DATA_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "dermlens"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'projects.db'}"


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@dataclass
class Database:
    """An engine and its session factory, on a database migrated to the current schema."""

    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Database:
        """Connect to ``url`` and bring its schema up to date.

        >>> db = Database.open("sqlite:///:memory:")
        >>> sorted(db.engine.dialect.name for _ in [0])
        ['sqlite']
        """
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise DatabaseError(f"{url!r} is not a database URL (e.g. postgresql+psycopg://user:pass@host/db "
                                f"or sqlite:////path/projects.db)") from None
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        elif parsed.get_backend_name() == "postgresql":
            engine = create_engine(url, pool_pre_ping=True)
        else:
            raise DatabaseError(f"dermlens stores projects in SQLite or PostgreSQL, not {parsed.get_backend_name()}")
        database = cls(engine, sessionmaker(engine, expire_on_commit=False))
        if migrate:
            database.migrate()
        return database

    def migrate(self) -> None:
        """Run the Alembic migrations up to ``head``."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as error:
            raise DatabaseError(f"cannot open the project database {self.engine.url.render_as_string()}: "
                                f"{error.orig}") from None

    def session(self) -> Session:
        return self.sessions()
