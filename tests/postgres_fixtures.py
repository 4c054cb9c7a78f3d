"""Pytest plugin: a fresh, empty PostgreSQL database per test, on the server named by DERMLENS_TEST_DATABASE_URL.

Loaded from tests/conftest.py (``pytest_plugins = ["postgres_fixtures"]``). The server is the throwaway one that
``.ci/postgres`` starts (``.ci/run`` does so for CI; locally: ``eval "$(.ci/postgres start)"``). Its URL names a
role allowed to create databases, e.g. ``postgresql+psycopg://dermlens:secret@127.0.0.1:54321/dermlens``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

URL_VARIABLE = "DERMLENS_TEST_DATABASE_URL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _server_url() -> str:
    url = os.environ.get(URL_VARIABLE, "").strip()
    if url:
        return url
    if _in_ci():
        pytest.fail(f"{URL_VARIABLE} is not set but CI is: CI must run the postgres tests against a real "
                    f"PostgreSQL server (.ci/run starts one with .ci/postgres)", pytrace=False)
    pytest.skip(f'{URL_VARIABLE} is not set: start a throwaway PostgreSQL with  eval "$(.ci/postgres start)"  '
                f'(stop it with  eval "$(.ci/postgres stop)")')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL (``postgresql+psycopg://...``) of a new empty database, dropped after the test."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    server = make_url(_server_url())
    if server.get_backend_name() != "postgresql":
        pytest.fail(f"{URL_VARIABLE} must be a postgresql URL, not {server.drivername}", pytrace=False)
    # libpq's own URL form for psycopg (make_url quotes the password and user name when rendering).
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"dermlens_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        pytest.fail(f"cannot create a test database on {server.render_as_string()} ({URL_VARIABLE}): {error}",
                    pytrace=False)
    try:
        yield server.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        # WITH (FORCE) (PostgreSQL 13+) ends the test's leftover connections first (an engine not disposed).
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
