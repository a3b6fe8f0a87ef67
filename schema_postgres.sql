-- The durable PostgreSQL schema. Embedded into the engine at build time.
--
-- Like schema.sql, a list of versions: each "-- version N" section turns a database of version
-- N-1 into version N, and a new database runs every section in order. The table
-- durable_schema holds the last version applied. Never edit a released section: add a new one.
--
-- The tables are schema.sql's (docs/journal.md), in PostgreSQL's types: times are BIGINT
-- milliseconds since the Unix epoch (UTC); ids are 26-character sortable ULIDs; JSON is stored
-- as TEXT, byte for byte as the engine wrote it; enumerations are their lowercase names.

-- version 1

CREATE TABLE events (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  data        TEXT NOT NULL,
  user_data   TEXT NOT NULL,
  ts          BIGINT NOT NULL,
  v           TEXT,
  dedup_key   TEXT,
  duplicate   SMALLINT NOT NULL DEFAULT 0,
  received_at BIGINT NOT NULL
);
CREATE INDEX events_by_dedup_key ON events (dedup_key, received_at) WHERE dedup_key IS NOT NULL;
CREATE INDEX events_by_name ON events (name, received_at);

CREATE TABLE runs (
  id               TEXT PRIMARY KEY,
  function_id      TEXT NOT NULL,
  event_id         TEXT NOT NULL,
  status           TEXT NOT NULL,
  attempt          INTEGER NOT NULL DEFAULT 0,
  available_at     BIGINT NOT NULL,
  lease_owner      TEXT,
  lease_epoch      BIGINT NOT NULL DEFAULT 0,
  lease_expires_at BIGINT,
  output           TEXT,
  error            TEXT,
  created_at       BIGINT NOT NULL,
  started_at       BIGINT,
  ended_at         BIGINT,
  replay_of        TEXT,
  parent_run_id    TEXT,
  written_at       BIGINT
);
CREATE INDEX runs_due ON runs (available_at) WHERE status IN ('queued', 'sleeping', 'waiting');
CREATE INDEX runs_leased ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_queued ON runs (written_at) WHERE status = 'queued';
CREATE INDEX runs_by_event ON runs (event_id);
CREATE INDEX runs_by_function ON runs (function_id, id);
CREATE INDEX runs_failed ON runs (id) WHERE status = 'failed';
CREATE INDEX runs_cancelled ON runs (id) WHERE status = 'cancelled';
CREATE INDEX runs_by_replay_of ON runs (replay_of) WHERE replay_of IS NOT NULL;
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

CREATE TABLE journal (
  run_id      TEXT NOT NULL,
  seq         BIGINT NOT NULL,
  kind        TEXT NOT NULL,
  step_key    TEXT,
  attempt     INTEGER,
  payload     TEXT,
  started_at  BIGINT,
  recorded_at BIGINT NOT NULL,
  PRIMARY KEY (run_id, seq)
);

CREATE TABLE functions (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  config        TEXT NOT NULL,
  registered_at BIGINT NOT NULL,
  registered_by TEXT NOT NULL
);
CREATE TABLE function_triggers (
  event       TEXT NOT NULL,
  prefix      SMALLINT NOT NULL,
  function_id TEXT NOT NULL,
  filter      TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (event, prefix, function_id, filter)
);
CREATE INDEX function_triggers_by_function ON function_triggers (function_id);

CREATE TABLE waits (
  run_id           TEXT NOT NULL,
  step_key         TEXT NOT NULL,
  event            TEXT NOT NULL,
  match_path       TEXT NOT NULL,
  match_value      TEXT NOT NULL,
  condition        TEXT NOT NULL,
  trigger_event_id TEXT NOT NULL,
  expires_at       BIGINT NOT NULL,
  PRIMARY KEY (run_id, step_key)
);
CREATE INDEX waits_by_event ON waits (event, match_path, match_value);

CREATE TABLE cron_ticks (
  function_id TEXT NOT NULL,
  schedule    TEXT NOT NULL,
  last_tick   BIGINT NOT NULL,
  PRIMARY KEY (function_id, schedule)
);
