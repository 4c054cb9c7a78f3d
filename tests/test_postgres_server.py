"""The test PostgreSQL server is real and usable through SQLAlchemy + psycopg 3 (fixture: tests/postgres_fixtures.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select, text

pytestmark = pytest.mark.postgres


def test_fresh_database_round_trip(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert connection.dialect.name == "postgresql"
            assert connection.dialect.driver == "psycopg"
            assert engine.dialect.server_version_info >= (13,)
            assert int(connection.execute(text("SHOW server_version_num")).scalar_one()) >= 130000
            # The database is fresh and empty: no tables of ours yet.
            assert connection.execute(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")).scalar_one() == 0

        metadata = MetaData()
        lesions = Table("lesions", metadata, Column("id", Integer, primary_key=True), Column("label", String(16)))
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(insert(lesions), [{"label": "nv"}, {"label": "mel"}])
        with engine.connect() as connection:
            rows = connection.execute(select(lesions.c.id, lesions.c.label).order_by(lesions.c.id)).all()
        assert [(row.id, row.label) for row in rows] == [(1, "nv"), (2, "mel")]
    finally:
        engine.dispose()
