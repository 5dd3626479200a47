"""Schema migrations: numbered ``sql/NNN_name.sql`` files applied in order, each exactly once.

Each file runs in its own transaction and is recorded in ``schema_migrations`` with its checksum
in that same transaction, so a failing file leaves the schema as it was and names the file and
the failing statement. Running ``migrate`` again is a no-op. A recorded file whose contents
changed afterwards is reported (never silently re-applied).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import sqlalchemy as sa

_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    filename    text PRIMARY KEY,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


class MigrationError(RuntimeError):
    """A migration file failed; the schema is as it was before that file."""


def sql_dir() -> Path:
    """The DDL folder: ``macro_pipeline/sql``. In a checkout it is a symlink to the repository's
    top-level ``sql/`` (where the files live and are edited); a wheel holds a copy of the files
    there (``package-data`` in ``pyproject.toml`` follows the link), so an installed package needs
    no checkout."""
    return Path(__file__).resolve().parents[1] / "sql"


@dataclass(frozen=True)
class MigrationFile:
    filename: str
    path: Path
    sha256: str


def discover(directory: Path | None = None) -> list[MigrationFile]:
    directory = directory or sql_dir()
    if not directory.is_dir():
        raise MigrationError(f"DDL folder {directory} does not exist: the package is installed without its "
                             "sql/ files (build the wheel from a checkout with `pip wheel .`)")
    files = []
    for path in sorted(directory.glob("*.sql")):
        if not _FILE.match(path.name):
            raise MigrationError(f"{path}: migration files are named NNN_lowercase_name.sql")
        files.append(MigrationFile(path.name, path, hashlib.sha256(path.read_bytes()).hexdigest()))
    if not files:
        raise MigrationError(f"DDL folder {directory} holds no NNN_name.sql file: refusing to report an empty "
                             "schema as up to date")
    numbers = [f.filename[:3] for f in files]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"duplicate migration numbers in {directory}: {numbers}")
    return files


def split_statements(sql: str) -> list[str]:
    """Split on semicolons outside quotes, comments and dollar-quoted bodies."""
    statements, buf, i, n = [], [], 0, len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            buf.append("\n")
            continue
        if c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'" and sql.startswith("''", j):
                    j += 2
                    continue
                if sql[j] == "'":
                    break
                j += 1
            buf.append(sql[i : j + 1])
            i = j + 1
            continue
        m = re.match(r"\$[A-Za-z_]*\$", sql[i:])
        if m:
            tag = m.group(0)
            j = sql.find(tag, i + len(tag))
            j = n if j < 0 else j + len(tag)
            buf.append(sql[i:j])
            i = j
            continue
        if c == ";":
            stmt = "".join(buf).strip()
            if stmt:
                statements.append(stmt)
            buf = []
        else:
            buf.append(c)
        i += 1
    tail = "".join(buf).strip()
    if tail:
        statements.append(tail)
    return statements


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[tuple[str, str]]  # (filename, applied_at)
    pending: list[str]
    changed: list[str]  # applied files whose contents differ from what was applied


def status(engine: sa.Engine, directory: Path | None = None) -> MigrationStatus:
    files = discover(directory)
    with engine.begin() as conn:
        conn.exec_driver_sql(_BOOTSTRAP)
        rows = conn.exec_driver_sql(
            "SELECT filename, sha256, applied_at FROM schema_migrations ORDER BY filename"
        ).all()
    applied = {r.filename: r for r in rows}
    return MigrationStatus(
        applied=[(r.filename, r.applied_at.isoformat()) for r in rows],
        pending=[f.filename for f in files if f.filename not in applied],
        changed=[
            f.filename for f in files if f.filename in applied and applied[f.filename].sha256 != f.sha256
        ],
    )


def migrate(engine: sa.Engine, directory: Path | None = None) -> list[str]:
    """Apply pending files in order; returns the filenames applied (empty: nothing to do)."""
    files = discover(directory)
    done: list[str] = []
    with engine.begin() as conn:
        conn.exec_driver_sql(_BOOTSTRAP)
    for f in files:
        with engine.begin() as conn:
            # one migrator at a time; the lock is released at commit/rollback
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7170001)")
            seen = conn.execute(
                sa.text("SELECT 1 FROM schema_migrations WHERE filename = :f"), {"f": f.filename}
            ).first()
            if seen:
                continue
            # DDL goes to the driver verbatim (no parameters: '%' in a plpgsql body is literal)
            cursor = conn.connection.dbapi_connection.cursor()
            for number, statement in enumerate(split_statements(f.path.read_text()), start=1):
                try:
                    cursor.execute(statement)
                except psycopg2.Error as exc:
                    first_line = statement.strip().splitlines()[0][:120]
                    detail = str(exc).strip().splitlines()[0]
                    raise MigrationError(
                        f"{f.filename}: statement {number} failed ({first_line!r}): {detail}; "
                        f"the file was rolled back, the schema is unchanged"
                    ) from exc
            conn.execute(
                sa.text("INSERT INTO schema_migrations (filename, sha256) VALUES (:f, :h)"),
                {"f": f.filename, "h": f.sha256},
            )
        done.append(f.filename)
    return done
