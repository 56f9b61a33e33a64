-- The event log: one row per event, append-only and gapless, enforced here rather than by
-- convention, so a bug or a hand-typed statement cannot rewrite history.

CREATE TABLE visit_events (
    visit_id       text        NOT NULL,
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
    CONSTRAINT visit_events_pkey PRIMARY KEY (visit_id, seq),
    CONSTRAINT visit_events_event_id_key UNIQUE (event_id)
);

CREATE INDEX visit_events_command_idx ON visit_events (visit_id, command_id);

COMMENT ON TABLE visit_events IS
    'The visitflow event log: append-only (triggers refuse UPDATE, DELETE, TRUNCATE), '
    'gapless per visit, each row hash-chained to the one before it.';

-- SQLSTATE VF001: any attempt to change or remove recorded events.
CREATE FUNCTION visit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        RAISE EXCEPTION 'visit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'VF001',
                  HINT = 'Recorded events are never changed; append a correcting event instead.';
    END IF;
    RAISE EXCEPTION 'visit_events is append-only: % of event % (visit %, seq %) refused',
        TG_OP, OLD.event_id, OLD.visit_id, OLD.seq
        USING ERRCODE = 'VF001',
              HINT = 'Recorded events are never changed; append a correcting event instead.';
END;
$$;

CREATE TRIGGER visit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON visit_events
    FOR EACH ROW EXECUTE FUNCTION visit_events_refuse_change();

CREATE TRIGGER visit_events_no_truncate
    BEFORE TRUNCATE ON visit_events
    FOR EACH STATEMENT EXECUTE FUNCTION visit_events_refuse_change();

-- Each new row must be the visit's next seq and chain from its predecessor's hash.
-- SQLSTATE 23505 on visit_events_pkey: the seq is taken (the same code the primary key
-- gives, so a concurrent writer and a stale one read alike); VF002: a gap; VF003: a
-- prev_hash that is not the previous row's hash. A row-level BEFORE trigger sees the rows
-- inserted earlier by the same statement, so multi-row inserts are checked one by one.
CREATE FUNCTION visit_events_check_next() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head_seq  bigint;
    head_hash text;
BEGIN
    SELECT e.seq, e.hash INTO head_seq, head_hash
      FROM visit_events e
     WHERE e.visit_id = NEW.visit_id
     ORDER BY e.seq DESC
     LIMIT 1;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := repeat('0', 64);
    END IF;
    IF NEW.seq <= head_seq THEN
        RAISE EXCEPTION 'seq % of visit % is already recorded (the log is at seq %)',
            NEW.seq, NEW.visit_id, head_seq
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'visit_events_pkey';
    END IF;
    IF NEW.seq <> head_seq + 1 THEN
        RAISE EXCEPTION 'seq % of visit % leaves a gap: the next seq is %',
            NEW.seq, NEW.visit_id, head_seq + 1
            USING ERRCODE = 'VF002';
    END IF;
    IF NEW.prev_hash IS DISTINCT FROM head_hash THEN
        RAISE EXCEPTION 'seq % of visit % has prev_hash %, but the hash of seq % is %',
            NEW.seq, NEW.visit_id, NEW.prev_hash, head_seq, head_hash
            USING ERRCODE = 'VF003';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER visit_events_next_in_chain
    BEFORE INSERT ON visit_events
    FOR EACH ROW EXECUTE FUNCTION visit_events_check_next();
