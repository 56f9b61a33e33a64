-- The `visits` read model: one row per visit, the columns of domain.summary.VisitSummary.
-- Derived from the log (EventStore.rebuild_read_model rewrites it), so it may be updated.

CREATE TABLE visits (
    visit_id          text        PRIMARY KEY,
    status            text        NOT NULL,
    outcome           text,
    rep_id            text        NOT NULL,
    manager_id        text        NOT NULL,
    director_id       text,
    customer_id       text        NOT NULL,
    customer_name     text        NOT NULL,
    scheduled_start   timestamptz NOT NULL,
    report_due_at     timestamptz,
    report_late       boolean     NOT NULL,
    next_due_at       timestamptz,
    next_due_concern  text,
    open_items        int         NOT NULL CHECK (open_items >= 0),
    escalated         text[]      NOT NULL DEFAULT '{}',
    escalation_level  int         NOT NULL CHECK (escalation_level >= 0),
    last_seq          bigint      NOT NULL CHECK (last_seq >= 1),
    head_hash         text        NOT NULL,
    updated_at        timestamptz NOT NULL,                            -- the last event's time
    updated_in_db_at  timestamptz NOT NULL DEFAULT clock_timestamp()   -- when this row was written
);

CREATE INDEX visits_rep_idx ON visits (rep_id, scheduled_start);
CREATE INDEX visits_manager_idx ON visits (manager_id, scheduled_start);
CREATE INDEX visits_status_idx ON visits (status, scheduled_start);
-- The overdue list reads open visits by their next deadline.
CREATE INDEX visits_open_due_idx ON visits (next_due_at) WHERE status <> 'closed';
