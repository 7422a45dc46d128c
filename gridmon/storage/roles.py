"""The application's least-privilege database role, made by the schema owner.

Migrations run as the owner (GRIDMON_DATABASE_OWNER_URL); the bridge's workers, the scans and the
API connect as a role that can read and write rows and nothing else: no DDL, no TRUNCATE, no
changing `alembic_version`, no superuser shortcuts. `grant_app_role` creates the role if needed and
grants it exactly that, now and for tables later migrations create (default privileges of the
owner). Temporary tables stay allowed: the ingest path stages each batch in one.

The role sees its own sessions in `pg_stat_activity` (what the scan's safe upper bound needs):
ingest and scan connect as the same role.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

ROW_PRIVILEGES = sql.SQL("SELECT, INSERT, UPDATE, DELETE")


def grant_app_role(conn: psycopg.Connection, role: str, password: str | None = None) -> bool:
    """Create `role` (LOGIN, no other attribute) if missing and grant it row access to the current
    database's `public` schema, as the connected owner. Returns True when the role was created."""
    name = sql.Identifier(role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None
    if not exists:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT").format(name))
    if password is not None:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(password)))
    database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    for statement in (
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(database[0]), name),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(name),
        sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA public TO {}").format(ROW_PRIVILEGES, name),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(name),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {} ON TABLES TO {}").format(ROW_PRIVILEGES, name),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {}").format(name),
    ):
        conn.execute(statement)
    if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() != (None,):
        # The app may see which revision it runs on, never change it.
        conn.execute(sql.SQL("REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {}").format(name))
    return not exists


def drop_app_role(conn: psycopg.Connection, role: str) -> None:
    """Remove the role and what was granted to it in the current database (tests, decommissioning).
    A role granted in several databases must be dropped from each with `DROP OWNED` first."""
    name = sql.Identifier(role)
    conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(name))
