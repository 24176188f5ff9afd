"""Schema migrations with Alembic: one history per service, under services/<name>/migrations."""
from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from kernel.db import create_engine

ROOT = Path(__file__).resolve().parent.parent


def modelled(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate compares models only: objects that exist in the database without a
    model (trigram search tables and indexes written by hand in a migration) are never
    proposed for dropping."""
    return not (reflected and compare_to is None)


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
