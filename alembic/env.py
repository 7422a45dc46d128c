"""Alembic environment: the URL comes from gridmon's settings; migrations are plain SQL/DDL."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from pydantic import ValidationError
from sqlalchemy import create_engine, pool

from gridmon.config import get_settings, settings_error

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    given = config.attributes.get("url")
    if given:
        return str(given)
    try:
        return str(get_settings().sqlalchemy_url)
    except ValidationError as exc:  # `alembic upgrade head` with a bad GRIDMON_* value: say which
        raise SystemExit(settings_error(exc)) from None


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=None, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
