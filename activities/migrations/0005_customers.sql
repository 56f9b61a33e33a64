-- The customer registry: one row per customer, its tier, who owns it, whom to call.
-- Reference data, not the log: an import updates rows in place. The checks repeat the rules
-- of domain.customers.CustomerRecord so a hand-typed statement cannot store what the
-- application would refuse.

CREATE TABLE customers (
    id            text        PRIMARY KEY CHECK (id <> ''),
    name          text        NOT NULL CHECK (name <> ''),
    tier          text        NOT NULL CHECK (tier IN ('core', 'potential', 'regular', 'assist')),
    grade         text        CHECK (grade IN ('A', 'B', 'C', 'D')),  -- optional
    owner_rep_id  text        NOT NULL CHECK (owner_rep_id <> ''),
    manager_id    text        NOT NULL CHECK (manager_id <> ''),     -- the owning rep's manager
    region        text        NOT NULL DEFAULT '',
    contacts      jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(contacts) = 'array'),  -- confidential
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Who may see a customer's contacts is decided by these two columns.
CREATE INDEX customers_owner_rep_idx ON customers (owner_rep_id);
CREATE INDEX customers_manager_idx ON customers (manager_id);

COMMENT ON COLUMN customers.contacts IS
    'Confidential: shown only to the owning rep, their manager and directors '
    '(domain.customers.may_see_contacts). Not granted to visitflow_auditor.';

-- Auditors read the registry to make sense of visits, but not the contacts: they are not
-- among the people allowed to see them, so the grant names every column except contacts.
-- As in 0004, a role or a privilege the migrating user lacks is reported in a NOTICE.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'visitflow_auditor') THEN
        BEGIN
            GRANT SELECT (id, name, tier, grade, owner_rep_id, manager_id, region, created_at, updated_at)
                ON customers TO visitflow_auditor;
        EXCEPTION
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'visitflow: SELECT on customers not granted to visitflow_auditor (%); '
                             'grant it by hand', SQLERRM;
        END;
    ELSE
        RAISE NOTICE 'visitflow: role visitflow_auditor does not exist; customers not granted to it';
    END IF;
END
$$;
