"""Schema migrations with Alembic: one history per service, under services/<name>/migrations."""
from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from kernel.db import create_engine

ROOT = Path(__file__).resolve().parent.parent


def _alembic(service: str, url: str) -> AlembicConfig:
    storage = importlib.import_module(f"services.{service}.storage")
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ROOT / "kernel" / "alembic"))
    cfg.set_main_option("version_locations", str(ROOT / "services" / service / "migrations" / "versions"))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes.update(service=service, target_metadata=storage.metadata, engine=create_engine(url))
    return cfg


def upgrade(service: str, url: str) -> None:
    cfg = _alembic(service, url)
    try:
        command.upgrade(cfg, "head")
    finally:
        cfg.attributes["engine"].dispose()


def revision(service: str, url: str, message: str) -> None:
    """Autogenerate a revision from the difference between storage.py and the database at url."""
    cfg = _alembic(service, url)
    try:
        command.revision(cfg, message=message, autogenerate=True)
    finally:
        cfg.attributes["engine"].dispose()


# FTS5 keeps each index in these shadow tables, named "<index>_<suffix>".
FTS5_SHADOW_SUFFIXES = ("data", "idx", "content", "docsize", "config")


def unmodelled_names(conn) -> set[str]:
    """Search structures a migration creates by hand because SQLAlchemy models cannot
    declare them: SQLite virtual tables (FTS5) with their shadow tables, and PostgreSQL
    trigram (GIN) indexes. Schema comparisons skip them (see `comparison_options`)."""
    if conn.dialect.name == "sqlite":
        virtual = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'").scalars().all()
        return {*virtual, *(f"{name}_{suffix}" for name in virtual for suffix in FTS5_SHADOW_SUFFIXES)}
    if conn.dialect.name == "postgresql":
        return set(conn.exec_driver_sql(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexdef LIKE '%gin_trgm_ops%'").scalars())
    return set()


def comparison_options(conn) -> dict:
    """Options of an Alembic comparison (autogenerate, drift tests) that skip `unmodelled_names`.

    Looked up on first use, inside the comparison's transaction: a plain upgrade never asks."""
    skipped: set[str] | None = None

    def include_name(name, type_, parent_names):
        nonlocal skipped
        if type_ not in ("table", "index"):
            return True
        if skipped is None:
            skipped = unmodelled_names(conn)
        return name not in skipped

    return {"include_name": include_name}
