"""DDL of the ADW database tables the console reads, for SQLite and PostgreSQL.

Used by the demo workspace and by the tests; the console itself only reads. The tables
follow the real system's latest schema (phase_queue with current_phase, planned_features
with generated_plan) in the columns the console shows; JSON columns are JSON text, as in
the real SQLite database. The ADW domain facts (phases, statuses) live in ``monitor.adw``.
"""

from __future__ import annotations

_TABLES = """
CREATE TABLE IF NOT EXISTS phase_queue (
    queue_id TEXT PRIMARY KEY,
    feature_id INTEGER,
    phase_number INTEGER,
    issue_number INTEGER,
    status TEXT NOT NULL DEFAULT 'queued',
    depends_on_phases TEXT DEFAULT '[]',
    phase_data TEXT DEFAULT '{{}}',
    created_at TEXT,
    updated_at TEXT,
    error_message TEXT,
    adw_id TEXT,
    pr_number INTEGER,
    priority INTEGER DEFAULT 50,
    queue_position INTEGER,
    ready_timestamp TEXT,
    started_timestamp TEXT,
    current_phase TEXT DEFAULT 'init'
);
CREATE TABLE IF NOT EXISTS queue_config (
    config_key TEXT PRIMARY KEY,
    config_value TEXT,
    updated_at TEXT
);
CREATE TABLE IF NOT EXISTS workflow_history (
    id {serial},
    adw_id TEXT UNIQUE NOT NULL,
    issue_number INTEGER,
    nl_input TEXT,
    github_url TEXT,
    gh_issue_state TEXT,
    workflow_template TEXT,
    model_used TEXT,
    status TEXT,
    start_time TEXT,
    end_time TEXT,
    duration_seconds {real},
    error_message TEXT,
    phase_count INTEGER,
    current_phase TEXT,
    retry_count INTEGER DEFAULT 0,
    worktree_path TEXT,
    input_tokens INTEGER DEFAULT 0,
    output_tokens INTEGER DEFAULT 0,
    total_tokens INTEGER DEFAULT 0,
    actual_cost_total {real},
    estimated_cost_total {real},
    structured_input TEXT,
    cost_breakdown TEXT,
    token_breakdown TEXT,
    anomaly_flags TEXT,
    optimization_recommendations TEXT,
    similar_workflow_ids TEXT,
    created_at TEXT,
    updated_at TEXT
);
CREATE TABLE IF NOT EXISTS planned_features (
    id {serial},
    item_type TEXT,
    title TEXT,
    description TEXT,
    status TEXT,
    priority TEXT,
    estimated_hours {real},
    actual_hours {real},
    session_number INTEGER,
    github_issue_number INTEGER,
    parent_id INTEGER,
    tags TEXT DEFAULT '[]',
    completion_notes TEXT,
    created_at TEXT,
    updated_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    generated_plan TEXT
);
CREATE TABLE IF NOT EXISTS task_logs (
    id {serial},
    adw_id TEXT,
    issue_number INTEGER,
    workflow_template TEXT,
    phase_name TEXT,
    phase_number INTEGER,
    phase_status TEXT,
    log_message TEXT,
    error_message TEXT,
    started_at TEXT,
    completed_at TEXT,
    duration_seconds {real},
    tokens_used INTEGER,
    cost_usd {real},
    created_at TEXT DEFAULT CURRENT_TIMESTAMP
);
"""

SQLITE_SCHEMA = _TABLES.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL")
POSTGRES_SCHEMA = _TABLES.format(serial="SERIAL PRIMARY KEY", real="DOUBLE PRECISION")

