"""The real ADW system's five tables at three schema points, in SQLite and PostgreSQL.

Written from the schema fact sheet (tac-webbuilder), not from its code:

- ``ddl``: the DDL a fresh install runs: phase_queue_schema.py (v2 phase_queue, queue_config),
  init_db's workflow_history (50 columns), migration 017 planned_features, migration 015 task_logs.
  The SQLite variant is that DDL; the PostgreSQL variant is the PG branch of the same files.
- ``production``: the production PostgreSQL dump of 2025-12-13: v1 phase_queue (parent_issue,
  depends_on_phase), 77-column workflow_history, jsonb/timestamp/numeric/bigint types.
- ``latest``: production plus every later migration: phase_queue with feature_id (nullable),
  depends_on_phases jsonb and current_phase; planned_features.generated_plan (+ workflow_type);
  task_logs.tool_calls.

The SQLite variants of ``production`` and ``latest`` translate the PostgreSQL types (TEXT for
JSON, text and timestamps, INTEGER, REAL) and keep the column order. Columns that the facts say
exist only in PostgreSQL at a point are listed in ``PG_ONLY``. Indexes, triggers and views are
left out: the fixtures hold the columns, their types, defaults and CHECK constraints.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

POINTS = ("ddl", "production", "latest")
TABLES = ("phase_queue", "queue_config", "workflow_history", "planned_features", "task_logs")
ENGINES = ("sqlite", "postgresql")

QUEUE_STATUS = "CHECK (status IN ('queued','ready','running','completed','blocked','failed'))"
RUN_STATUS = "CHECK (status IN ('pending','running','completed','failed'))"
ITEM_TYPE = "CHECK (item_type IN ('session','feature','bug','enhancement'))"
FEATURE_STATUS = "CHECK (status IN ('planned','in_progress','completed','cancelled'))"
FEATURE_PRIORITY = "CHECK (priority IN ('high','medium','low'))"
PHASE_STATUS = "CHECK (phase_status IN ('started','completed','failed','skipped'))"

# One line per column (or per run of columns sharing a definition): "names  pg_def [| sqlite_def]".
# At "ddl" the SQLite definition is the one after "|", or else pg_def as written (valid in both);
# at "production" and "latest" it is pg_def translated by sqlite_definition().
PHASE_QUEUE_DDL = f"""
queue_id            TEXT PRIMARY KEY
feature_id          INTEGER
phase_number        INTEGER NOT NULL
issue_number        INTEGER
status              TEXT DEFAULT 'queued' {QUEUE_STATUS}
depends_on_phases   JSONB DEFAULT '[]'::jsonb | TEXT DEFAULT '[]'
phase_data          JSONB | TEXT
created_at,updated_at  TIMESTAMP DEFAULT NOW() | TIMESTAMP DEFAULT CURRENT_TIMESTAMP
error_message,adw_id  TEXT
pr_number           INTEGER
priority            INTEGER DEFAULT 50
queue_position      INTEGER
ready_timestamp,started_timestamp  TIMESTAMP
"""
QUEUE_TAIL = """
error_message       text
adw_id              varchar(255)
pr_number           integer
priority            integer DEFAULT 50
queue_position      integer
ready_timestamp,started_timestamp  timestamp
"""
PHASE_QUEUE_V1 = f"""
queue_id            varchar(255) PRIMARY KEY
parent_issue        integer NOT NULL
phase_number        integer NOT NULL
issue_number        integer
status              varchar(50) DEFAULT 'queued' {QUEUE_STATUS}
depends_on_phase    integer
phase_data          jsonb
created_at,updated_at  timestamp DEFAULT CURRENT_TIMESTAMP
""" + QUEUE_TAIL
PHASE_QUEUE_V2_MIGRATED = f"""
queue_id            varchar(255) PRIMARY KEY
feature_id          integer
phase_number        integer NOT NULL
issue_number        integer
status              varchar(50) DEFAULT 'queued' {QUEUE_STATUS}
phase_data          jsonb
created_at,updated_at  timestamp DEFAULT CURRENT_TIMESTAMP
""" + QUEUE_TAIL + """
depends_on_phases   jsonb
current_phase       text NOT NULL DEFAULT 'init'
"""
QUEUE_CONFIG_DDL = """
config_key          TEXT PRIMARY KEY
config_value        TEXT NOT NULL
updated_at          TIMESTAMP DEFAULT NOW() | TIMESTAMP DEFAULT CURRENT_TIMESTAMP
"""
QUEUE_CONFIG_PG = """
config_key          varchar(255) PRIMARY KEY
config_value        text NOT NULL
updated_at          timestamp DEFAULT CURRENT_TIMESTAMP
"""
TOKENS = "input_tokens,output_tokens,cached_tokens,cache_hit_tokens,cache_miss_tokens,total_tokens"
COSTS = "estimated_cost_total,actual_cost_total,estimated_cost_per_step,actual_cost_per_step"
SCORES = "nl_input_clarity_score,cost_efficiency_score,performance_score,quality_score"
# init_db: its PG branch differs only in the id (SERIAL); the other types stay as written.
WORKFLOW_HISTORY_DDL = f"""
id                  SERIAL PRIMARY KEY | INTEGER PRIMARY KEY AUTOINCREMENT
adw_id              TEXT NOT NULL UNIQUE
issue_number        INTEGER
nl_input,github_url,gh_issue_state,workflow_template,model_used  TEXT
status              TEXT NOT NULL {RUN_STATUS}
start_time,end_time TEXT
duration_seconds    INTEGER
error_message       TEXT
phase_count         INTEGER
current_phase       TEXT
success_rate        REAL
retry_count         INTEGER DEFAULT 0
worktree_path       TEXT
backend_port,frontend_port  INTEGER
concurrent_workflows,{TOKENS}  INTEGER DEFAULT 0
cache_efficiency_percent,{COSTS},cost_per_token  REAL DEFAULT 0.0
structured_input,cost_breakdown,token_breakdown  TEXT
worktree_reused,steps_completed,steps_total  INTEGER DEFAULT 0
hour_of_day,day_of_week  INTEGER DEFAULT -1
{SCORES}            REAL DEFAULT 0.0
scoring_version     TEXT DEFAULT '1.0'
anomaly_flags,optimization_recommendations  TEXT
created_at,updated_at  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
"""
WORKFLOW_HISTORY_PG = f"""
id                  bigserial PRIMARY KEY
adw_id              varchar(255) NOT NULL UNIQUE
issue_number        integer
nl_input,github_url text
gh_issue_state      varchar(50)
workflow_template,model_used  varchar(255)
status              varchar(50) NOT NULL {RUN_STATUS}
start_time,end_time timestamp
duration_seconds    integer
error_message       text
phase_count         integer
current_phase       varchar(255)
success_rate        double precision
retry_count         integer DEFAULT 0
worktree_path       text
backend_port,frontend_port  integer
concurrent_workflows,{TOKENS}  integer DEFAULT 0
cache_efficiency_percent  double precision DEFAULT 0.0
{COSTS}             numeric(10,4) DEFAULT 0.0
cost_per_token      numeric(10,6) DEFAULT 0.0
structured_input,cost_breakdown,token_breakdown  jsonb
worktree_reused     boolean DEFAULT false
steps_completed,steps_total  integer DEFAULT 0
hour_of_day,day_of_week  integer DEFAULT -1
{SCORES}            double precision DEFAULT 0.0
scoring_version     varchar(50) DEFAULT '1.0'
anomaly_flags,optimization_recommendations  jsonb
workflow_id         varchar(255)
workflow_type       varchar(100) DEFAULT 'planning'
parent_workflow_id,input_hash  varchar(255)
output_summary      text
nl_input_word_count integer
structured_input_completeness_percent  double precision
submission_hour,submission_day_of_week  integer
pr_merged           boolean DEFAULT false
time_to_merge_hours double precision
review_cycles       integer
ci_test_pass_rate   double precision
similar_workflow_ids  jsonb
idle_time_seconds   integer
bottleneck_phase,error_category  varchar(255)
retry_reasons,error_phase_distribution  jsonb
recovery_time_seconds  integer
complexity_estimated,complexity_actual  varchar(100)
phase_number        integer
is_multi_phase      boolean DEFAULT false
created_at,updated_at  timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
branch_name,plan_file,issue_class  text
"""
# The same 17 columns at ddl and production (migration 017 in SQLite; the PG table in the dump).
PLANNED_FEATURES = f"""
id                  serial PRIMARY KEY | INTEGER PRIMARY KEY AUTOINCREMENT
item_type           text NOT NULL {ITEM_TYPE} | TEXT NOT NULL {ITEM_TYPE}
title               text NOT NULL | TEXT NOT NULL
description         text | TEXT
status              text NOT NULL {FEATURE_STATUS} | TEXT NOT NULL DEFAULT 'planned' {FEATURE_STATUS}
priority            text {FEATURE_PRIORITY} | TEXT {FEATURE_PRIORITY}
estimated_hours,actual_hours  real | REAL
session_number,github_issue_number  integer | INTEGER
parent_id           integer REFERENCES planned_features(id) ON DELETE CASCADE
tags                jsonb | TEXT DEFAULT '[]'
completion_notes    text | TEXT
created_at,updated_at  timestamp DEFAULT now() | TIMESTAMP DEFAULT CURRENT_TIMESTAMP
started_at,completed_at  timestamp | TIMESTAMP
"""
PLANNED_FEATURES_LATEST = PLANNED_FEATURES + """
generated_plan      jsonb
workflow_type       text DEFAULT 'adw_sdlc_complete_iso'
"""
# The same 16 columns at ddl (migration 015, DATETIME in SQLite) and production.
TASK_LOGS = f"""
id                  serial PRIMARY KEY | INTEGER PRIMARY KEY AUTOINCREMENT
adw_id              text NOT NULL | TEXT NOT NULL
issue_number        integer NOT NULL | INTEGER NOT NULL
workflow_template   text | TEXT
phase_name          text NOT NULL | TEXT NOT NULL
phase_number        integer | INTEGER
phase_status        text NOT NULL {PHASE_STATUS} | TEXT NOT NULL {PHASE_STATUS}
log_message         text NOT NULL | TEXT NOT NULL
error_message       text | TEXT
started_at,completed_at  timestamp | DATETIME
duration_seconds    real | REAL
tokens_used         integer | INTEGER
cost_usd            real | REAL
captured_at,created_at  timestamp DEFAULT CURRENT_TIMESTAMP | DATETIME DEFAULT CURRENT_TIMESTAMP
"""
TASK_LOGS_LATEST = TASK_LOGS + """
tool_calls          jsonb DEFAULT '[]'::jsonb
"""
SPECS: dict[str, dict[str, str]] = {
    "ddl": {"phase_queue": PHASE_QUEUE_DDL, "queue_config": QUEUE_CONFIG_DDL,
            "workflow_history": WORKFLOW_HISTORY_DDL, "planned_features": PLANNED_FEATURES, "task_logs": TASK_LOGS},
    "production": {"phase_queue": PHASE_QUEUE_V1, "queue_config": QUEUE_CONFIG_PG,
                   "workflow_history": WORKFLOW_HISTORY_PG, "planned_features": PLANNED_FEATURES,
                   "task_logs": TASK_LOGS},
    "latest": {"phase_queue": PHASE_QUEUE_V2_MIGRATED, "queue_config": QUEUE_CONFIG_PG,
               "workflow_history": WORKFLOW_HISTORY_PG, "planned_features": PLANNED_FEATURES_LATEST,
               "task_logs": TASK_LOGS_LATEST},
}
# Columns the facts say exist only in PostgreSQL at a point: migrations that only work on PG
# (add_current_phase_column, add_tool_calls_tracking) or have no SQLite variant (020, 021).
PG_ONLY: dict[tuple[str, str], frozenset[str]] = {
    ("latest", "phase_queue"): frozenset({"current_phase"}),
    ("latest", "workflow_history"): frozenset({"branch_name", "plan_file", "issue_class"}),
    ("latest", "planned_features"): frozenset({"workflow_type"}),
    ("latest", "task_logs"): frozenset({"tool_calls"}),
}

SQLITE_TYPES = {"varchar": "TEXT", "text": "TEXT", "jsonb": "TEXT", "timestamp": "TEXT", "integer": "INTEGER",
                "bigint": "INTEGER", "boolean": "INTEGER", "serial": "INTEGER", "bigserial": "INTEGER",
                "numeric": "REAL", "real": "REAL", "double precision": "REAL"}


def sqlite_definition(pg: str) -> str:
    """A PostgreSQL column definition in SQLite terms: TEXT/INTEGER/REAL, defaults and checks kept."""
    match = re.match(r"(double precision|\w+)(\([\d,]+\))?\s*(.*)", pg)
    base, rest = match[1].lower(), match[3]
    if base in ("serial", "bigserial"):
        rest = rest.replace("PRIMARY KEY", "PRIMARY KEY AUTOINCREMENT")
    rest = rest.replace("::jsonb", "").replace("now()", "CURRENT_TIMESTAMP")
    rest = re.sub(r"DEFAULT (true|false)\b", lambda m: "DEFAULT " + str(int(m[1] == "true")), rest)
    return f"{SQLITE_TYPES[base]} {rest}".strip()


def definitions(point: str, table: str, engine: str) -> list[tuple[str, str]]:
    """(column name, column definition) in table order for ``engine`` at ``point``."""
    if point not in SPECS or table not in SPECS[point] or engine not in ENGINES:
        raise ValueError(f"unknown point/table/engine: {point!r}, {table!r}, {engine!r}")
    result = []
    for line in filter(str.strip, SPECS[point][table].splitlines()):
        names, spec = line.split(None, 1)
        pg, _, explicit = (part.strip() for part in spec.partition("|"))
        if engine == "postgresql":
            definition = pg
        elif point == "ddl":
            definition = explicit or pg
        else:
            definition = sqlite_definition(pg)
        for name in names.split(","):
            if engine == "sqlite" and name in PG_ONLY.get((point, table), ()):
                continue
            result.append((name, definition))
    return result


def columns(point: str, table: str, engine: str | None = None) -> tuple[str, ...]:
    """The column names in order. ``engine`` ("sqlite"/"postgresql") is needed only where they differ."""
    if engine is None:
        if PG_ONLY.get((point, table)):
            raise ValueError(f"{table} at {point!r} differs between engines: pass engine=")
        engine = "postgresql"
    return tuple(name for name, _ in definitions(point, table, engine))


def ddl(point: str, engine: str) -> str:
    """CREATE TABLE statements for the five tables at ``point``."""
    statements = []
    for table in TABLES:
        body = ",\n".join(f"    {name} {definition}" for name, definition in definitions(point, table, engine))
        statements.append(f"CREATE TABLE {table} (\n{body}\n);\n")
    return "\n".join(statements)


def create_sqlite(path: Path | str, point: str) -> None:
    """Create the five tables of ``point`` in the SQLite file at ``path``."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(ddl(point, "sqlite"))
    finally:
        conn.close()


async def create_postgres(url: str, point: str) -> None:
    """Create the five tables of ``point`` in the PostgreSQL database at ``url``."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(ddl(point, "postgresql"))
    finally:
        await conn.close()


def _insert_sql(table: str, row: Mapping[str, Any], mark) -> str:
    marks = ", ".join(mark(i) for i in range(1, len(row) + 1))
    return f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks}) RETURNING *"


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _pg_value(value: Any, pg_type: str) -> Any:
    """``value`` as asyncpg wants it for a parameter of ``pg_type`` (its default codecs)."""
    if value is None:
        return None
    if isinstance(value, (dict, list)) or (pg_type in ("json", "jsonb") and not isinstance(value, str)):
        return json.dumps(value)  # a str for jsonb is taken to be JSON text already
    if pg_type == "timestamp" and isinstance(value, (str, dt.datetime)):  # all are without time zone
        value = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value  # UTC wall time
    if pg_type == "numeric" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    if pg_type == "bool" and isinstance(value, int):
        return bool(value)
    if pg_type in ("float4", "float8") and isinstance(value, int):
        return float(value)
    return value


def insert_sqlite(path: Path | str, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Insert ``row`` (JSON values as JSON text) and commit; the stored row."""
    conn = sqlite3.connect(path)
    try:
        conn.row_factory = sqlite3.Row
        with conn:
            return dict(conn.execute(_insert_sql(table, row, lambda i: "?"),
                                     [_sqlite_value(v) for v in row.values()]).fetchone())
    finally:
        conn.close()


async def insert_postgres(url: str, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """Insert ``row``, converting each value for its column's type as PostgreSQL reports it
    (dict/list to JSON text, ISO strings to naive UTC datetimes, numbers to Decimal for numeric,
    0/1 to bool); the stored row (jsonb comes back as JSON text)."""
    conn = await asyncpg.connect(url)
    try:
        statement = await conn.prepare(_insert_sql(table, row, lambda i: f"${i}"))
        types = [parameter.name for parameter in statement.get_parameters()]
        stored = await statement.fetchrow(*(_pg_value(v, t) for v, t in zip(row.values(), types, strict=True)))
        return dict(stored)
    finally:
        await conn.close()
