"""What differs between the databases for the repository's statements.

Parameter limits: SQL Server takes at most 2,100 parameters in one
statement, SQLite 32,766 (999 before 3.32), PostgreSQL's protocol 65,535;
a statement with a list of values (``IN (...)``) is cut into batches that
fit, with room left for the statement's other parameters.

Upserts: a user's settings are saved with the database's own upsert
(``INSERT ... ON CONFLICT DO UPDATE`` on PostgreSQL and SQLite, ``MERGE ...
WITH (HOLDLOCK)`` on SQL Server), so two first saves at the same moment
cannot both try to insert.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from .tables import user_settings

__all__ = ["batches", "max_parameters", "settings_upsert"]

T = TypeVar("T")

_SPARE = 100  # parameters left for the rest of a statement


def max_parameters(dialect: str) -> int:
    """How many values of a list one statement may carry on ``dialect``."""
    if dialect == "mssql":
        return 2100 - _SPARE
    if dialect == "sqlite":
        return (32766 if sqlite3.sqlite_version_info >= (3, 32) else 999) - _SPARE
    return 65535 - _SPARE


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def settings_upsert(dialect: str, user_id: str, values: Mapping[str, Any]) -> sa.Executable:
    """One statement that inserts the user's settings or replaces them."""
    if dialect in ("postgresql", "sqlite"):
        module: Any = postgresql if dialect == "postgresql" else sqlite_dialect
        insert = module.insert(user_settings).values(user_id=user_id, **values)
        upsert: sa.Executable = insert.on_conflict_do_update(
            index_elements=[user_settings.c.user_id], set_=values
        )
        return upsert
    if dialect == "mssql":
        names = list(values)
        assignments = ", ".join(f"{name} = :{name}" for name in names)
        columns = ", ".join(["user_id", *names])
        placeholders = ", ".join(f":{name}" for name in ["user_id", *names])
        return sa.text(
            "MERGE user_settings WITH (HOLDLOCK) AS target "
            "USING (SELECT :user_id AS user_id) AS source ON target.user_id = source.user_id "
            f"WHEN MATCHED THEN UPDATE SET {assignments} "
            f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({placeholders});"
        ).bindparams(
            *(
                sa.bindparam(name, value, type_=user_settings.c[name].type)
                for name, value in values.items()
            ),
            sa.bindparam("user_id", user_id, type_=user_settings.c.user_id.type),
        )
    raise ValueError(f"no upsert for {dialect}")
