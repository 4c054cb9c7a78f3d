"""Custom-vision projects: tag images, train iterations, inspect them, quick-test, publish, export, and
retrain from corrections. The store is SQLAlchemy (SQLite or PostgreSQL) plus an object store."""
