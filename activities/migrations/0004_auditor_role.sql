-- A read-only role for auditors. Roles belong to the whole server, so another database
-- may have created it already; and managed servers may refuse CREATE ROLE or GRANT to the
-- migrating user: then the migration says so in a NOTICE and goes on (grant by hand).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'visitflow_auditor') THEN
        BEGIN
            CREATE ROLE visitflow_auditor NOLOGIN;
        EXCEPTION
            -- Another database's migration created it between our check and our CREATE.
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'visitflow: role visitflow_auditor not created (%); create it by hand',
                    SQLERRM;
        END;
    END IF;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'visitflow_auditor') THEN
        BEGIN
            GRANT SELECT ON visit_events, visits TO visitflow_auditor;
        EXCEPTION
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'visitflow: SELECT not granted to visitflow_auditor (%); grant it by hand',
                    SQLERRM;
        END;
    END IF;
END
$$;
