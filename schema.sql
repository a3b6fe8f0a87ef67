-- The durable SQLite schema. Embedded into the engine at build time.
--
-- The file is a list of versions. Each "-- version N" section turns a database of version
-- N-1 into version N; a new database runs every section in order. PRAGMA user_version holds
-- the last version applied. Never edit a released section: add a new one.
--
-- Conventions: times are INTEGER milliseconds since the Unix epoch (UTC); ids are 26-character
-- sortable ULIDs; JSON is stored as TEXT; enumerations are stored as their lowercase names.
-- docs/journal.md specifies the journal's entries.

-- version 1

-- Every accepted event, duplicates included. An event and the runs it starts are inserted in
-- one transaction.
CREATE TABLE events (
  id          TEXT PRIMARY KEY,          -- engine-assigned ULID, returned to the sender
  name        TEXT NOT NULL,
  data        TEXT NOT NULL,             -- JSON object
  user_data   TEXT NOT NULL,             -- JSON object (the event's "user")
  ts          INTEGER NOT NULL,          -- when it happened, per the sender (default: received_at)
  v           TEXT,                      -- the sender's schema version of the event
  dedup_key   TEXT,                      -- the sender's "id", if any
  duplicate   INTEGER NOT NULL DEFAULT 0,-- 1: dedup_key was seen within the window; no runs
  received_at INTEGER NOT NULL
);
CREATE INDEX events_by_dedup_key ON events (dedup_key, received_at) WHERE dedup_key IS NOT NULL;
CREATE INDEX events_by_name ON events (name, received_at);

-- One row per run: a projection of its journal kept in the same transactions, for the queue
-- (which run is due, who holds it) and for queries.
CREATE TABLE runs (
  id               TEXT PRIMARY KEY,     -- ULID
  function_id      TEXT NOT NULL,
  event_id         TEXT NOT NULL,        -- events.id of the event that started it
  status           TEXT NOT NULL,        -- queued | running | sleeping | completed | failed | cancelled
  attempt          INTEGER NOT NULL DEFAULT 0,  -- failures so far of what is being retried
  available_at     INTEGER NOT NULL,     -- queued/sleeping: the earliest time it may be claimed
  lease_owner      TEXT,                 -- running: the worker process holding it
  lease_epoch      INTEGER NOT NULL DEFAULT 0,  -- fencing token: +1 on every claim or recovery
  lease_expires_at INTEGER,              -- running: taken over by others after this
  output           TEXT,                 -- completed: JSON the function returned
  error            TEXT,                 -- failed: JSON {"name","message","step"?}
  created_at       INTEGER NOT NULL,
  started_at       INTEGER,              -- first claimed
  ended_at         INTEGER               -- completed, failed or cancelled
);
-- The queue: claims read it in available_at order (the store names it with INDEXED BY).
CREATE INDEX runs_due ON runs (available_at) WHERE status IN ('queued', 'sleeping');
CREATE INDEX runs_leased ON runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_by_event ON runs (event_id);
CREATE INDEX runs_by_function ON runs (function_id, created_at);

-- The append-only log of each run: the source of truth that replays read. Memoized step
-- results are the step_completed entries.
CREATE TABLE journal (
  run_id      TEXT NOT NULL,
  seq         INTEGER NOT NULL,          -- 0, 1, 2, ... per run
  kind        TEXT NOT NULL,             -- run_started | step_completed | step_failed | ...
  step_key    TEXT,                      -- step entries: "id" or "id:n"
  attempt     INTEGER,                   -- step_failed / body_failed: which attempt (0-based)
  payload     TEXT,                      -- JSON; see docs/journal.md
  started_at  INTEGER,                   -- step entries: when the step body started
  recorded_at INTEGER NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- version 2

-- The functions each worker process registered when it started, so that an event ingested by
-- any process (a `durable serve` API process, another worker) starts runs for them.
CREATE TABLE functions (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  config        TEXT NOT NULL,           -- JSON: triggers, retries, backoff, on_failure (see the API)
  registered_at INTEGER NOT NULL,
  registered_by TEXT NOT NULL            -- the worker process (host:pid:random)
);
-- Which events start which functions: an exact name, or (prefix = 1) every name that starts
-- with `event` ("image/" for the trigger "image/*"), and only those for which `filter` (an
-- expression, docs/expressions.md; '' for none) is true. Ingest looks the event's name up here.
CREATE TABLE function_triggers (
  event       TEXT NOT NULL,
  prefix      INTEGER NOT NULL,
  function_id TEXT NOT NULL,
  filter      TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (event, prefix, function_id, filter)
) WITHOUT ROWID;
CREATE INDEX function_triggers_by_function ON function_triggers (function_id);

-- A replay is a new run of the same function and event; it names the run it replays.
ALTER TABLE runs ADD COLUMN replay_of TEXT;
CREATE INDEX runs_by_replay_of ON runs (replay_of) WHERE replay_of IS NOT NULL;

-- Listings go newest first (ids are time-ordered ULIDs), filtered by function or status. The
-- rare statuses an operator looks for have partial indexes, which cost nothing to the runs
-- that never enter them; completed runs are most runs (a scan by id finds them at once), and
-- the queue's indexes hold the rest. (Every index on runs costs each commit of a run's
-- progress a page write; see docs/performance.md.)
DROP INDEX runs_by_function;
CREATE INDEX runs_by_function ON runs (function_id, id);
CREATE INDEX runs_failed ON runs (id) WHERE status = 'failed';
CREATE INDEX runs_cancelled ON runs (id) WHERE status = 'cancelled';

-- version 3

-- Waits for an event (step.wait_for_event, step.invoke): one row per waiting step, from the
-- commit that suspends the run until the wait is resolved (by a matching event, in the
-- transaction that stores it) or times out. docs/journal.md describes the entries around it.
CREATE TABLE waits (
  run_id           TEXT NOT NULL,
  step_key         TEXT NOT NULL,
  event            TEXT NOT NULL,        -- the awaited event's name
  match_path       TEXT NOT NULL,        -- "data.invoiceId": this field of the awaited event ...
  match_value      TEXT NOT NULL,        -- ... must be this JSON (the run's event's field); '' and '': no match
  condition        TEXT NOT NULL,        -- an expression over `event` and `async` ('' for none)
  trigger_event_id TEXT NOT NULL,        -- the run's event, bound to `event` in the condition
  expires_at       INTEGER NOT NULL,     -- the timeout; no event resolves it after this
  PRIMARY KEY (run_id, step_key)
) WITHOUT ROWID;
CREATE INDEX waits_by_event ON waits (event, match_path, match_value);

-- step.invoke: a run started by another run's step names that run.
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
CREATE INDEX runs_by_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

-- Cron triggers (on_cron): the last tick fired of each function's schedule. A tick starts its
-- run only in the transaction that moves last_tick forward to it, so whatever the number of
-- processes firing the same schedule, and across restarts, each tick starts one run.
CREATE TABLE cron_ticks (
  function_id TEXT NOT NULL,
  schedule    TEXT NOT NULL,             -- the trigger's text, "TZ=Europe/Paris 0 8 * * *"
  last_tick   INTEGER NOT NULL,
  PRIMARY KEY (function_id, schedule)
) WITHOUT ROWID;

-- Waiting runs are in the queue too: they are claimed when their wait times out.
DROP INDEX runs_due;
CREATE INDEX runs_due ON runs (available_at) WHERE status IN ('queued', 'sleeping', 'waiting');

-- version 4

-- Clock steps (docs/operations.md): when a run's available_at or lease was last set, by the
-- writer's clock. The engine's own delays (a queued run's due time: at once, or a retry's
-- backoff; a lease's TTL) are relative to that moment, so a value later than a reader's clock
-- means a clock that ran ahead and came back: those delays are then moved back with it
-- (RunQueue::correct_ahead_times). Sleeping and waiting runs keep their available_at, which
-- is the user's deadline. NULL in runs written before version 4.
ALTER TABLE runs ADD COLUMN written_at INTEGER;
-- The queued runs by written_at, so that those a clock ahead wrote are found with one probe,
-- which finds nothing unless the clock stepped back. Only runs entering or leaving the queue
-- (not yet claimed at ingest, retried, recovered) pay for it: a claim at ingest, a step, a
-- sleep or a wait do not touch it (docs/performance.md).
CREATE INDEX runs_queued ON runs (written_at) WHERE status = 'queued';
