"""The metadata DB: create or migrate its schema (the only command that does: Alembic, eventindex/migrations/), print
its DDL."""

from __future__ import annotations

from .args import add_command, add_noun
from .output import out


def register(sub) -> None:
    db_sub = add_noun(sub, "db", "the metadata DB", ["eventindex db upgrade",
                                                    "eventindex db ddl --dialect sqlite"])
    p = add_command(db_sub, "upgrade", "create or migrate the schema",
                    ["eventindex db upgrade", "EVENTINDEX_METADATA_URL=postgresql://ei@db/ei eventindex db upgrade"])
    p.set_defaults(func=cmd_upgrade)
    p = add_command(db_sub, "ddl", "print the DDL", ["eventindex db ddl --dialect sqlite > schema.sqlite.sql"])
    p.add_argument("--dialect", choices=["sqlite", "postgresql"], default="postgresql",
                   help="SQL dialect (default postgresql)")
    p.set_defaults(func=cmd_ddl)


def cmd_upgrade(args) -> int:
    from .. import metadata as md
    from ..settings import Settings

    from ..dbopen import where

    url = Settings.from_env().metadata_url
    before = md.schema_of(url)
    after = md.upgrade(url)
    change = f"schema {after} (up to date)" if before == after else f"schema {before} -> {after}"
    out.print(f"metadata DB {where(url)}: {change}", highlight=False)
    return 0


def cmd_ddl(args) -> int:
    from .. import metadata as md

    print(md.ddl(args.dialect), end="")
    return 0
