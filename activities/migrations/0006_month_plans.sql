-- Monthly plans: their own event log with the guarantees of visit_events (append-only,
-- gapless per plan, hash-chained), a read model, and an outbox for their reminders and
-- escalations. The trigger functions are the plan log's own, so the visit log's never change.

CREATE TABLE plan_events (
    plan_id        text        NOT NULL,                            -- <rep_id>-<YYYY-MM>
    seq            bigint      NOT NULL CHECK (seq >= 1),
    event_id       uuid        NOT NULL,
    type           text        NOT NULL,
    schema_version int         NOT NULL CHECK (schema_version >= 1),
    occurred_at    timestamptz NOT NULL,                            -- the workflow's time
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),  -- the database's time
    actor_id       text        NOT NULL,
    actor_role     text        NOT NULL,
    command_id     text        NOT NULL,
    payload        jsonb       NOT NULL,
    prev_hash      text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash           text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT plan_events_pkey PRIMARY KEY (plan_id, seq),
    CONSTRAINT plan_events_event_id_key UNIQUE (event_id)
);

CREATE INDEX plan_events_command_idx ON plan_events (plan_id, command_id);

COMMENT ON TABLE plan_events IS
    'The monthly plans'' event log: append-only (triggers refuse UPDATE, DELETE, TRUNCATE), '
    'gapless per plan, each row hash-chained to the one before it (domain.chain, stream plan_id).';

-- SQLSTATE VF001: any attempt to change or remove recorded plan events.
CREATE FUNCTION plan_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        RAISE EXCEPTION 'plan_events is append-only: % refused', TG_OP
            USING ERRCODE = 'VF001',
                  HINT = 'Recorded events are never changed; append a correcting event instead.';
    END IF;
    RAISE EXCEPTION 'plan_events is append-only: % of event % (plan %, seq %) refused',
        TG_OP, OLD.event_id, OLD.plan_id, OLD.seq
        USING ERRCODE = 'VF001',
              HINT = 'Recorded events are never changed; append a correcting event instead.';
END;
$$;

CREATE TRIGGER plan_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON plan_events
    FOR EACH ROW EXECUTE FUNCTION plan_events_refuse_change();

CREATE TRIGGER plan_events_no_truncate
    BEFORE TRUNCATE ON plan_events
    FOR EACH STATEMENT EXECUTE FUNCTION plan_events_refuse_change();

-- Each new row must be the plan's next seq and chain from its predecessor's hash, with the
-- SQLSTATEs of the visit log: 23505 on plan_events_pkey (seq taken), VF002 (a gap), VF003
-- (a prev_hash that is not the previous row's hash).
CREATE FUNCTION plan_events_check_next() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head_seq  bigint;
    head_hash text;
BEGIN
    SELECT e.seq, e.hash INTO head_seq, head_hash
      FROM plan_events e
     WHERE e.plan_id = NEW.plan_id
     ORDER BY e.seq DESC
     LIMIT 1;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := repeat('0', 64);
    END IF;
    IF NEW.seq <= head_seq THEN
        RAISE EXCEPTION 'seq % of plan % is already recorded (the log is at seq %)',
            NEW.seq, NEW.plan_id, head_seq
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'plan_events_pkey';
    END IF;
    IF NEW.seq <> head_seq + 1 THEN
        RAISE EXCEPTION 'seq % of plan % leaves a gap: the next seq is %',
            NEW.seq, NEW.plan_id, head_seq + 1
            USING ERRCODE = 'VF002';
    END IF;
    IF NEW.prev_hash IS DISTINCT FROM head_hash THEN
        RAISE EXCEPTION 'seq % of plan % has prev_hash %, but the hash of seq % is %',
            NEW.seq, NEW.plan_id, NEW.prev_hash, head_seq, head_hash
            USING ERRCODE = 'VF003';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER plan_events_next_in_chain
    BEFORE INSERT ON plan_events
    FOR EACH ROW EXECUTE FUNCTION plan_events_check_next();

-- The `month_plans` read model: one row per plan, the columns of
-- domain.month_plan.MonthPlanSummary. Derived from the log, so it may be updated.
CREATE TABLE month_plans (
    plan_id           text        PRIMARY KEY,
    rep_id            text        NOT NULL,
    manager_id        text        NOT NULL,
    director_id       text,
    month             text        NOT NULL CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    status            text        NOT NULL,
    revision          int         NOT NULL CHECK (revision >= 0),
    planned           int         NOT NULL CHECK (planned >= 0),
    approved          int         NOT NULL CHECK (approved >= 0),
    declined          int         NOT NULL CHECK (declined >= 0),
    started           int         NOT NULL CHECK (started >= 0),
    not_started       int         NOT NULL CHECK (not_started >= 0),
    due_at            timestamptz NOT NULL,
    submitted_at      timestamptz,
    late              boolean     NOT NULL,
    reminded          boolean     NOT NULL,
    escalation_level  int         NOT NULL CHECK (escalation_level >= 0),
    last_seq          bigint      NOT NULL CHECK (last_seq >= 1),
    head_hash         text        NOT NULL,
    updated_at        timestamptz NOT NULL,                            -- the last event's time
    updated_in_db_at  timestamptz NOT NULL DEFAULT clock_timestamp(),  -- when this row was written
    CONSTRAINT month_plans_rep_month_key UNIQUE (rep_id, month)
);

CREATE INDEX month_plans_manager_idx ON month_plans (manager_id, month);
CREATE INDEX month_plans_month_idx ON month_plans (month, status);

-- The plans' notification outbox, written with the MonthPlanReminderSent/MonthPlanEscalated
-- event that causes it; the columns of `notifications`, the stream named plan_id.
CREATE TABLE plan_notifications (
    id              uuid        PRIMARY KEY,  -- the event_id of the causing event
    plan_id         text        NOT NULL,
    seq             bigint      NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('reminder', 'escalation')),
    recipient_id    text        NOT NULL,
    recipient_role  text        NOT NULL,
    level           int,
    concern         text        NOT NULL,
    message         text        NOT NULL,
    due_at          timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    attempts        int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    CONSTRAINT plan_notifications_event_fkey
        FOREIGN KEY (plan_id, seq) REFERENCES plan_events (plan_id, seq),
    CONSTRAINT plan_notifications_level_matches_kind
        CHECK ((kind = 'escalation') = (level IS NOT NULL))
);

CREATE INDEX plan_notifications_pending_idx ON plan_notifications (created_at, id) WHERE sent_at IS NULL;

-- Auditors read the plans' log and read model, as they read the visits' (0004).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'visitflow_auditor') THEN
        BEGIN
            GRANT SELECT ON plan_events, month_plans TO visitflow_auditor;
        EXCEPTION
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'visitflow: SELECT on plan_events, month_plans not granted to '
                             'visitflow_auditor (%); grant it by hand', SQLERRM;
        END;
    END IF;
END
$$;
