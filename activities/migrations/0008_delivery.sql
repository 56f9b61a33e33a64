-- Delivery state on both notification outboxes, and every delivery attempt. One mechanism
-- for `notifications` (visits) and `plan_notifications` (plans): the same columns, the same
-- statuses, one history table naming the stream. See activities/relay.py and
-- docs/notifications.md.
--
--   pending     waiting for next_attempt_at (now, a retry's backoff, the end of quiet hours)
--   delivering  claimed by relay claimed_by until claimed_until (a lease): a relay that dies
--               mid-send frees its rows when the lease ends; next_attempt_at = claimed_until
--   delivered   every person the notification reaches has it (delivered_at, channel)
--   dead        a permanent failure, or the retries ran out: last_error says why
--
-- attempts counts claims (a relay killed mid-send has used one); retry_from is attempts when
-- the row was last re-driven by hand (`visits notifications retry`), so the retry budget
-- starts again while the history keeps its numbers.

ALTER TABLE notifications
    ADD COLUMN status          text        NOT NULL DEFAULT 'pending'
        CONSTRAINT notifications_status_check
        CHECK (status IN ('pending', 'delivering', 'delivered', 'dead')),
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN claimed_until   timestamptz,
    ADD COLUMN claimed_by      text,
    ADD COLUMN delivered_at    timestamptz,
    ADD COLUMN channel         text,
    ADD COLUMN last_error      text,
    ADD COLUMN resolution      jsonb,
    ADD COLUMN retry_from      int         NOT NULL DEFAULT 0 CHECK (retry_from >= 0),
    ADD CONSTRAINT notifications_claim_matches_status
        CHECK ((status = 'delivering') = (claimed_by IS NOT NULL AND claimed_until IS NOT NULL));

ALTER TABLE plan_notifications
    ADD COLUMN status          text        NOT NULL DEFAULT 'pending'
        CONSTRAINT plan_notifications_status_check
        CHECK (status IN ('pending', 'delivering', 'delivered', 'dead')),
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN claimed_until   timestamptz,
    ADD COLUMN claimed_by      text,
    ADD COLUMN delivered_at    timestamptz,
    ADD COLUMN channel         text,
    ADD COLUMN last_error      text,
    ADD COLUMN resolution      jsonb,
    ADD COLUMN retry_from      int         NOT NULL DEFAULT 0 CHECK (retry_from >= 0),
    ADD CONSTRAINT plan_notifications_claim_matches_status
        CHECK ((status = 'delivering') = (claimed_by IS NOT NULL AND claimed_until IS NOT NULL));

-- Rows marked sent before the relay existed (EventLog.mark_sent) count as delivered.
UPDATE notifications SET status = 'delivered', delivered_at = sent_at WHERE sent_at IS NOT NULL;
UPDATE plan_notifications SET status = 'delivered', delivered_at = sent_at WHERE sent_at IS NOT NULL;

-- What a relay claims: rows due now, pending or with an expired lease, oldest due first.
-- It replaces the index of unsent rows (sent_at IS NULL), which dead rows would stay in.
-- Every claim and outcome rewrites a row, so the outboxes keep few indexes: besides the
-- primary key only this one and the dead letters' (rows enter it once, when they die).
DROP INDEX notifications_pending_idx;
DROP INDEX plan_notifications_pending_idx;
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at, id)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX plan_notifications_due_idx ON plan_notifications (next_attempt_at, id)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX notifications_dead_idx ON notifications (created_at) WHERE status = 'dead';
CREATE INDEX plan_notifications_dead_idx ON plan_notifications (created_at) WHERE status = 'dead';

-- Every attempt of every notification, per person told: when, on which channel, by which
-- relay, how it ended and how long it took. `stream` says which outbox the id is in.
--   delivered   the channel took it (2xx, SMTP 250)
--   retry       a passing failure (connection refused, timeout, HTTP 5xx, SMTP 4xx)
--   dead        a permanent failure (no address, unknown person, HTTP 4xx, SMTP 5xx)
--   postponed   the person's quiet hours: tried again when they end
--   expired     the relay's lease ran out before it recorded an outcome (killed mid-send?)
CREATE TABLE notification_attempts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id uuid        NOT NULL,
    stream          text        NOT NULL CHECK (stream IN ('visit', 'plan')),
    attempt         int         NOT NULL CHECK (attempt >= 1),
    at              timestamptz NOT NULL,
    relay           text        NOT NULL,
    channel         text,
    person_id       text,
    outcome         text        NOT NULL
        CHECK (outcome IN ('delivered', 'retry', 'dead', 'postponed', 'expired')),
    error           text,
    duration_ms     int         CHECK (duration_ms >= 0)
);

CREATE INDEX notification_attempts_notification_idx ON notification_attempts (notification_id, attempt, id);
