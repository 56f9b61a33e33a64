-- The directory of people: who works here, whom they report to, how to reach them, who
-- stands in while they are away. Reference data, not the log: an import updates rows in
-- place. The checks repeat the rules of domain.people.Person (and the directory's own: a
-- rep has a manager, names point at people of the directory) so a hand-typed statement
-- cannot store what the application would refuse.

CREATE TABLE people (
    id           text        PRIMARY KEY CHECK (id <> ''),
    name_zh      text        NOT NULL DEFAULT '',
    name_en      text        NOT NULL DEFAULT '',
    role         text        NOT NULL CHECK (role IN ('rep', 'manager', 'director', 'auditor')),
    -- The org tree (rep → manager → director). Deferred: an import inserts in any order.
    manager_id   text        REFERENCES people (id) DEFERRABLE INITIALLY DEFERRED
                             CHECK (manager_id <> id),
    active       boolean     NOT NULL DEFAULT true,
    email        text        NOT NULL DEFAULT '',  -- confidential, like the three below
    mobile       text        NOT NULL DEFAULT '',
    dingtalk_id  text        NOT NULL DEFAULT '',
    wecom_id     text        NOT NULL DEFAULT '',
    channel      text        NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'dingtalk', 'wecom', 'webhook')),
    language     text        NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en')),
    quiet_from   time,                                   -- local times; may run over midnight
    quiet_to     time,
    away_from    date,                                   -- local dates, both included
    away_to      date,
    deputy_id    text        REFERENCES people (id) DEFERRABLE INITIALLY DEFERRED
                             CHECK (deputy_id <> id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT people_rep_has_manager CHECK (role <> 'rep' OR manager_id IS NOT NULL),
    CONSTRAINT people_quiet_hours CHECK (
        (quiet_from IS NULL) = (quiet_to IS NULL) AND (quiet_from IS NULL OR quiet_from <> quiet_to)
    ),
    CONSTRAINT people_absence CHECK (
        (away_from IS NULL) = (away_to IS NULL)
        AND (away_from IS NULL OR (away_to >= away_from AND deputy_id IS NOT NULL))
    )
);

-- The tree is walked from both ends: a person's manager, a manager's team; and by role
-- (the directors, the active reps).
CREATE INDEX people_manager_idx ON people (manager_id);
CREATE INDEX people_role_idx ON people (role);

COMMENT ON TABLE people IS
    'The directory of people (domain.people.Person): the org tree, how to reach each person, '
    'absences and deputies. Loaded by `visits people import`, all or nothing.';
COMMENT ON COLUMN people.email IS
    'Confidential, with mobile, dingtalk_id and wecom_id: shown only to the person, their managers '
    'up the tree and directors (domain.people.may_see_contacts). Not granted to visitflow_auditor.';

-- Auditors read the directory to know who acted and who was told, but not how to reach
-- them: the grant names every column except the contact details. As in 0004, a role or a
-- privilege the migrating user lacks is reported in a NOTICE.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'visitflow_auditor') THEN
        BEGIN
            GRANT SELECT (id, name_zh, name_en, role, manager_id, active, channel, language,
                          quiet_from, quiet_to, away_from, away_to, deputy_id, created_at, updated_at)
                ON people TO visitflow_auditor;
        EXCEPTION
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'visitflow: SELECT on people not granted to visitflow_auditor (%); '
                             'grant it by hand', SQLERRM;
        END;
    ELSE
        RAISE NOTICE 'visitflow: role visitflow_auditor does not exist; people not granted to it';
    END IF;
END
$$;
