-- The notification outbox: written in the same transaction as the ReminderSent/Escalated
-- event that causes it, then delivered by a relay. Not the log: sent_at and attempts change.

CREATE TABLE notifications (
    id              uuid        PRIMARY KEY,  -- the event_id of the causing event
    visit_id        text        NOT NULL,
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
    CONSTRAINT notifications_event_fkey
        FOREIGN KEY (visit_id, seq) REFERENCES visit_events (visit_id, seq),
    CONSTRAINT notifications_level_matches_kind
        CHECK ((kind = 'escalation') = (level IS NOT NULL))
);

CREATE INDEX notifications_pending_idx ON notifications (created_at, id) WHERE sent_at IS NULL;
