import type pg from 'pg';
import { type Migration, latestVersion, pendingMigrations } from '../audit/index.ts';
import { AirlockError } from '../common/index.ts';

// The shared PostgreSQL store's schema, versioned like the SQLite one (src/audit/schema.ts):
// one list, applied in one transaction under an advisory lock, its version the highest row
// of airlock.schema_migrations. Everything lives in the schema `airlock`.
//
// Append-only by construction: every table's rows are refused UPDATE, DELETE and TRUNCATE by
// triggers that fire ALWAYS (also with session_replication_role = replica), and the role
// the hosts log in with (a member of airlock_writer) may only SELECT and INSERT. Even the
// work queues are insert-only: an answer to an ask is a row whose primary key makes the
// first answer win. A superuser can still disable the triggers; `verifySharedStore` is
// what catches that.

const TABLES_V1 = ['hosts', 'host_keys', 'events', 'checkpoints', 'global_log'];

const appendOnly = (t: string) => `
CREATE TRIGGER ${t}_append_only BEFORE UPDATE OR DELETE ON airlock.${t} FOR EACH ROW EXECUTE FUNCTION airlock.refuse_change();
CREATE TRIGGER ${t}_no_truncate BEFORE TRUNCATE ON airlock.${t} FOR EACH STATEMENT EXECUTE FUNCTION airlock.refuse_change();
ALTER TABLE airlock.${t} ENABLE ALWAYS TRIGGER ${t}_append_only;
ALTER TABLE airlock.${t} ENABLE ALWAYS TRIGGER ${t}_no_truncate;`;

const grants = (tables: string[]) => `
REVOKE ALL ON ${tables.map((t) => `airlock.${t}`).join(', ')} FROM PUBLIC;
GRANT SELECT, INSERT ON ${tables.map((t) => `airlock.${t}`).join(', ')} TO airlock_writer;
GRANT SELECT ON ${tables.map((t) => `airlock.${t}`).join(', ')} TO airlock_reader;`;

const V1 = `
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airlock_writer') THEN CREATE ROLE airlock_writer NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'airlock_reader') THEN CREATE ROLE airlock_reader NOLOGIN; END IF;
END $$;
GRANT USAGE ON SCHEMA airlock TO airlock_writer, airlock_reader;
CREATE FUNCTION airlock.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'airlock.% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege'; END $$;

-- one row per host's log (its audit.logId), and the public keys its checkpoints are signed with
CREATE TABLE airlock.hosts (log_id text PRIMARY KEY, hostname text NOT NULL, first_seen timestamptz NOT NULL DEFAULT now());
CREATE TABLE airlock.host_keys (
  log_id text NOT NULL REFERENCES airlock.hosts, key_id text NOT NULL, public_key text NOT NULL,
  PRIMARY KEY (log_id, key_id));
-- each host's hash chain, exactly as its local SQLite holds it (data is the canonical JSON text)
CREATE TABLE airlock.events (
  log_id text NOT NULL, seq bigint NOT NULL, id text NOT NULL UNIQUE, ts text NOT NULL, type text NOT NULL,
  session text, severity text NOT NULL, decision text, rule text, data text NOT NULL,
  prev_hash text NOT NULL, hash text NOT NULL, PRIMARY KEY (log_id, seq));
CREATE INDEX events_session ON airlock.events (session, log_id, seq);
CREATE INDEX events_type ON airlock.events (type, log_id, seq);
CREATE TABLE airlock.checkpoints (
  log_id text NOT NULL, id bigint NOT NULL, size bigint NOT NULL, root text NOT NULL, ts text NOT NULL,
  reason text NOT NULL, key_id text NOT NULL, signature text NOT NULL, PRIMARY KEY (log_id, id));
-- the global log: one leaf per host checkpoint, in the order they reached the shared store
CREATE TABLE airlock.global_log (
  gseq bigint PRIMARY KEY, log_id text NOT NULL, checkpoint_id bigint NOT NULL, leaf text NOT NULL,
  UNIQUE (log_id, checkpoint_id));
${TABLES_V1.map(appendOnly).join('\n')}
${grants(TABLES_V1)}
GRANT SELECT ON airlock.schema_migrations TO airlock_writer, airlock_reader;
`;

// Answers given on any host to an ask waiting on another: the first row per ask wins (primary
// key), and every insert wakes the asking host's shipper (NOTIFY airlock_answers).
const V2 = `
-- a host's data text as jsonb, or NULL when it is not JSON: one hostile row must not break every host's listing
CREATE FUNCTION airlock.try_jsonb(t text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN t::jsonb; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE TABLE airlock.answers (
  log_id text NOT NULL REFERENCES airlock.hosts, ask_id bigint NOT NULL,
  decision text NOT NULL CHECK (decision IN ('allow', 'deny')), by text NOT NULL, reason text NOT NULL,
  ts timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (log_id, ask_id));
CREATE FUNCTION airlock.notify_answer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('airlock_answers', NEW.log_id); RETURN NULL; END $$;
CREATE TRIGGER answers_notify AFTER INSERT ON airlock.answers FOR EACH ROW EXECUTE FUNCTION airlock.notify_answer();
${appendOnly('answers')}
${grants(['answers'])}
`;

// Review approvals given on one host for a proposal on another: insert-only, one row per
// (proposal, content hash, approver), bound to the hash the approver saw. The proposal's host
// applies it through its own review rules (hash, separation of duties, blocking findings) and
// records the outcome in its chain; the insert wakes that host's shipper like an answer does.
const V3 = `
CREATE TABLE airlock.review_approvals (
  log_id text NOT NULL REFERENCES airlock.hosts, proposal_id bigint NOT NULL, hash text NOT NULL, by text NOT NULL,
  from_log_id text NOT NULL, reason text, ts timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (log_id, proposal_id, hash, by));
CREATE TRIGGER review_approvals_notify AFTER INSERT ON airlock.review_approvals FOR EACH ROW EXECUTE FUNCTION airlock.notify_answer();
${appendOnly('review_approvals')}
${grants(['review_approvals'])}
`;

// Ingest speed (issue 18): every index on airlock.events is paid on every shipped event. Two of
// v1's indexes served no query (the session listing groups the whole table; the work queues
// read a handful of event types); they made a third of each insert's work. The queues' types
// keep one partial index, which holds a few rows per session instead of every event. A query
// in queue.ts or review-queue.ts that filters on another type must add it here (a new version).
const WORK_TYPES = [
  'command.ask',
  'command.answer',
  'command.timeout',
  'review.proposed',
  'review.approved',
  'review.rejected',
  'review.applied',
  'review.relay_refused',
];
const V4 = `
DROP INDEX airlock.events_session;
DROP INDEX airlock.events_type;
CREATE INDEX events_work ON airlock.events (type, log_id, session) WHERE type IN (${WORK_TYPES.map((t) => `'${t}'`).join(', ')});
`;
// Decisions across hosts carry the signed statement they were given as (src/store/decisions.ts):
// the waiting host applies a row only when the signature verifies against a key its org policy
// trusts. Rows from before v5 have none and are refused.
const signed = (t: string) =>
  `ALTER TABLE airlock.${t} ADD COLUMN statement text, ADD COLUMN key_id text, ADD COLUMN signature text;`;
const V5 = [signed('answers'), signed('review_approvals')].join('\n');

// A forged row must not hold a decision's slot (issue 18): any writer could insert one first
// into a primary key of (ask) or (proposal, hash, reviewer), and the signed decision after it
// was refused as a duplicate. v6 keys both tables by an identity id (insertion order) and lets
// any number of rows name one ask or approval; the waiting host takes the first that verifies
// (src/store/relay-rows.ts). The writer may not choose the id (column grants leave it out), and
// the indexes let it read rows claiming a trusted key apart from the rest, each in id order.
const multiRow = (t: string, slot: string, columns: string[]) => `
ALTER TABLE airlock.${t} DROP CONSTRAINT ${t}_pkey;
ALTER TABLE airlock.${t} ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;
CREATE INDEX ${t}_by_key ON airlock.${t} (log_id, ${slot}key_id, id);
CREATE INDEX ${t}_in_order ON airlock.${t} (log_id, ${slot}id);
REVOKE INSERT ON airlock.${t} FROM airlock_writer;
GRANT INSERT (${columns.join(', ')}) ON airlock.${t} TO airlock_writer;`;
const SIGNED_COLUMNS = ['statement', 'key_id', 'signature', 'ts'];
const V6 =
  multiRow('answers', 'ask_id, ', ['log_id', 'ask_id', 'decision', 'by', 'reason', ...SIGNED_COLUMNS]) +
  multiRow('review_approvals', '', ['log_id', 'proposal_id', 'hash', 'by', 'from_log_id', 'reason', ...SIGNED_COLUMNS]);

// v6 left one denial of service open: copying a trusted key id is free, so a writer's flood of
// rows claiming it (bad signatures) was read 100 per poll ahead of the real answer. v7 lets the
// SERVER say who wrote each row: written_by defaults to session_user (the login role; SET ROLE
// changes current_user, never session_user) and the writer's column grant leaves it out, so a
// writer cannot set it. The waiting host reads each writer role's rows apart (relay-rows.ts):
// one role's flood delays only what that role writes itself. Rows from before v7 share one
// writer name that no role can log in as. The by-writer indexes replace v6's by-key ones.
const byWriter = (t: string, slot: string) => `
ALTER TABLE airlock.${t} ADD COLUMN written_by name NOT NULL DEFAULT '(before v7)';
ALTER TABLE airlock.${t} ALTER COLUMN written_by SET DEFAULT session_user;
DROP INDEX airlock.${t}_by_key;
CREATE INDEX ${t}_by_writer ON airlock.${t} (log_id, ${slot}written_by, key_id, id);`;
const V7 = byWriter('answers', 'ask_id, ') + byWriter('review_approvals', '');

// The sessions listing over every host read every event (GROUP BY over airlock.events). v8 keeps
// one row per (host, session) in airlock.session_summary, maintained by the server from the rows
// it inserts into the append-only events table: a statement-level trigger (one aggregate per COPY
// batch, not a row trigger per event) upserts it as the table's owner (SECURITY DEFINER). The
// writer role may only SELECT it, so a host cannot write a summary its events do not back; a
// direct UPDATE (a superuser's) is refused unless it comes from that trigger, DELETE and TRUNCATE
// always. The same trigger NOTIFYs airlock_events with '<log id> <kind>' (kind: events, sessions,
// asks) in the inserting transaction, whichever path inserted (COPY or the INSERT fallback):
// the console's live views listen to it, and re-read the store rather than trust the payload.
// It does not depend on v7 (forged rows).
export const EVENTS_CHANNEL = 'airlock_events';
const SUMMARY_AGGREGATE = (from: string) => `SELECT log_id, session, min(seq), max(seq), min(ts), count(*),
    sum(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END),
    max(CASE WHEN type = 'session.start' THEN data END), max(CASE WHEN type = 'session.stop' THEN data END),
    max(CASE WHEN type = 'session.stop' THEN ts END), max(CASE WHEN type = 'session.result' THEN data END),
    max(CASE WHEN type = 'session.failed' THEN data END)
  FROM ${from} WHERE session IS NOT NULL GROUP BY log_id, session`;
const V8 = `
CREATE TABLE airlock.session_summary (
  log_id text NOT NULL, session text NOT NULL, first_seq bigint NOT NULL, last_seq bigint NOT NULL,
  start text NOT NULL, events bigint NOT NULL, denials bigint NOT NULL,
  start_data text, stop_data text, stop_ts text, result_data text, fail_data text,
  PRIMARY KEY (log_id, session));
CREATE INDEX session_summary_start ON airlock.session_summary (start);
CREATE FUNCTION airlock.summary_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1 THEN RETURN NEW; END IF;
  RAISE EXCEPTION 'airlock.session_summary is kept by the server from airlock.events: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER session_summary_guard BEFORE UPDATE OR DELETE ON airlock.session_summary FOR EACH ROW EXECUTE FUNCTION airlock.summary_guard();
CREATE TRIGGER session_summary_no_truncate BEFORE TRUNCATE ON airlock.session_summary FOR EACH STATEMENT EXECUTE FUNCTION airlock.refuse_change();
ALTER TABLE airlock.session_summary ENABLE ALWAYS TRIGGER session_summary_guard;
ALTER TABLE airlock.session_summary ENABLE ALWAYS TRIGGER session_summary_no_truncate;
CREATE FUNCTION airlock.summarize_events() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE n record;
BEGIN
  FOR n IN
    WITH up AS (
      INSERT INTO airlock.session_summary AS s ${SUMMARY_AGGREGATE('new_rows')}
      ON CONFLICT (log_id, session) DO UPDATE SET first_seq = least(s.first_seq, excluded.first_seq),
        last_seq = greatest(s.last_seq, excluded.last_seq), start = least(s.start, excluded.start),
        events = s.events + excluded.events, denials = s.denials + excluded.denials,
        start_data = greatest(s.start_data, excluded.start_data), stop_data = greatest(s.stop_data, excluded.stop_data),
        stop_ts = greatest(s.stop_ts, excluded.stop_ts), result_data = greatest(s.result_data, excluded.result_data),
        fail_data = greatest(s.fail_data, excluded.fail_data)
      RETURNING s.log_id, (s.xmax = 0) AS created),
    fresh AS (SELECT log_id, bool_or(created) AS created FROM up GROUP BY log_id),
    kinds AS (SELECT log_id, bool_or(type IN ('session.start', 'session.stop', 'session.result', 'session.failed')) AS sessions,
        bool_or(type IN ('command.ask', 'command.answer', 'command.timeout')) AS asks
      FROM new_rows GROUP BY log_id)
    SELECT k.log_id, k.sessions OR coalesce(c.created, false) AS sessions, k.asks FROM kinds k LEFT JOIN fresh c USING (log_id)
  LOOP
    PERFORM pg_notify('${EVENTS_CHANNEL}', left(n.log_id, 64) || ' events');
    IF n.sessions THEN PERFORM pg_notify('${EVENTS_CHANNEL}', left(n.log_id, 64) || ' sessions'); END IF;
    IF n.asks THEN PERFORM pg_notify('${EVENTS_CHANNEL}', left(n.log_id, 64) || ' asks'); END IF;
  END LOOP;
  RETURN NULL;
END $$;
-- the trigger first: it waits for inserts in flight and holds new ones off until this commits, so the backfill misses none
CREATE TRIGGER events_summarize AFTER INSERT ON airlock.events REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION airlock.summarize_events();
ALTER TABLE airlock.events ENABLE ALWAYS TRIGGER events_summarize;
INSERT INTO airlock.session_summary ${SUMMARY_AGGREGATE('airlock.events')};
REVOKE ALL ON airlock.session_summary FROM PUBLIC;
GRANT SELECT ON airlock.session_summary TO airlock_writer, airlock_reader;
`;

export const PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'hosts, their keys, events, checkpoints and the global log; append-only; writer and reader roles',
    sql: V1,
  },
  { version: 2, what: 'answers to asks across hosts (first answer wins; NOTIFY wakes the asking host)', sql: V2 },
  {
    version: 3,
    what: "review approvals across hosts (bound to the proposal hash; NOTIFY wakes the proposal's host)",
    sql: V3,
  },
  {
    version: 4,
    what: "events: one partial index for the work queues' event types instead of two full ones (ingest speed)",
    sql: V4,
  },
  {
    version: 5,
    what: "signed decisions: answers and review approvals carry the approving host's signed statement",
    sql: V5,
  },
  {
    version: 6,
    what: 'answers and review approvals: many rows per ask or approval (a forged row holds no slot), keyed by an identity id',
    sql: V6,
  },
  {
    version: 7,
    what: 'answers and review approvals: the server stamps the writing login role (written_by), which the waiting host reads apart',
    sql: V7,
  },
  {
    version: 8,
    what: "session_summary: one row per host's session, kept by a trigger on events (no writer grant); NOTIFY airlock_events",
    sql: V8,
  },
];

export const PG_SCHEMA_VERSION = latestVersion(PG_MIGRATIONS);

async function currentVersion(c: pg.ClientBase): Promise<number> {
  const t = await c.query<{ t: string | null }>("SELECT to_regclass('airlock.schema_migrations')::text AS t");
  if (!t.rows[0]?.t) return 0;
  const r = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM airlock.schema_migrations');
  return Number(r.rows[0]?.v ?? 0);
}

/**
 * Brings the shared store to the latest version (run by its owner: `airlock db migrate`);
 * refuses a database newer than this Airlock knows. Concurrent migrators serialize on an
 * advisory lock; the second finds nothing to do.
 */
export async function migratePg(
  c: pg.ClientBase,
  where: string,
  migrations: readonly Migration[] = PG_MIGRATIONS,
): Promise<number> {
  if (pendingMigrations(migrations, await currentVersion(c), where).length === 0) return currentVersion(c);
  await c.query('BEGIN');
  try {
    await c.query("SELECT pg_advisory_xact_lock(hashtext('airlock.migrate'))");
    await c.query(`CREATE SCHEMA IF NOT EXISTS airlock;
      CREATE TABLE IF NOT EXISTS airlock.schema_migrations (version integer PRIMARY KEY, what text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const m of pendingMigrations(migrations, await currentVersion(c), where)) {
      await c.query(m.sql);
      await c.query('INSERT INTO airlock.schema_migrations (version, what) VALUES ($1, $2)', [m.version, m.what]);
    }
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {
      /* the connection is gone: the server rolled back */
    });
    throw e;
  }
  return currentVersion(c);
}

/** Refuses to use a store that is behind (needs its owner to migrate) or ahead (needs a newer Airlock). */
export async function requireCurrentSchema(c: pg.ClientBase, where: string): Promise<void> {
  const v = await currentVersion(c);
  pendingMigrations(PG_MIGRATIONS, v, where); // throws when newer
  if (v < PG_SCHEMA_VERSION) {
    throw new AirlockError(
      'BAD_STATE',
      `${where} has schema version ${v}; this Airlock needs ${PG_SCHEMA_VERSION}`,
      "run `airlock db migrate` once as the database owner (the hosts' writer role may only insert)",
    );
  }
}

const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Creates the login role one host (or the console) writes under, a member of airlock_writer and
 * nothing else (run by the owner: `airlock db add-host`). The server stamps each decision row with
 * it (v7), so one host's flood never delays another's answers. No password is set here: the
 * owner gives it with `\password NAME` in psql (or uses certificate or peer authentication).
 */
export async function createHostRole(c: pg.ClientBase, name: string): Promise<void> {
  if (!ROLE_NAME.test(name) || name.startsWith('pg_') || name.startsWith('airlock_writer'))
    throw new AirlockError(
      'USAGE',
      `${JSON.stringify(name)} is not a host role name`,
      'use lower-case letters, digits and _ (at most 63), such as airlock_host_web1',
    );
  const exists = await c.query<{ member: boolean }>(
    "SELECT pg_has_role(oid, 'airlock_writer', 'MEMBER') AS member FROM pg_roles WHERE rolname = $1",
    [name],
  );
  if (exists.rows.length)
    throw new AirlockError(
      'BAD_STATE',
      `role ${name} already exists${exists.rows[0]!.member ? ' (a member of airlock_writer)' : ''}`,
      'give each host a role of its own: pick another name',
    );
  // an identifier cannot be a bound parameter; the name matched ROLE_NAME, so quoting it is exact
  await c.query(`CREATE ROLE "${name}" LOGIN IN ROLE airlock_writer`);
}
