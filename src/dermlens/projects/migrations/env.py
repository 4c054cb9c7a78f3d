"""Alembic environment: dermlens passes an open connection (`dermlens.projects.database.Database.migrate`)."""

from alembic import context

from dermlens.projects.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run dermlens migrations through dermlens.projects.database.Database.migrate")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
