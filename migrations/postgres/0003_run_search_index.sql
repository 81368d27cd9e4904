-- Text search of runs (the runs list's text filter, `search_text LIKE '%text%'`). A GIN trigram
-- index (pg_trgm) lets the planner find the runs containing a text without reading every run.
--
-- pg_trgm ships in PostgreSQL's contrib package and is a trusted extension: any role that may
-- create objects in the database may install it. Where it cannot be installed (no contrib
-- package, no privilege), the store still opens, without the index, and the same LIKE filter
-- scans the runs as before; a warning says so. To add the index later, install the extension
-- and create the index below by hand, naming the schema pg_trgm is in.
--
-- The extension goes to the first schema of the search path unless it is installed already;
-- its operator class is named with its schema, wherever that is.
DO $$
DECLARE
    trgm_schema name;
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'coflow: cannot install pg_trgm (%): searching runs by text reads every run. '
            'Install the extension and index runs.search_text with gin_trgm_ops to make it fast.',
            SQLERRM;
    END;
    SELECT n.nspname INTO trgm_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NULL THEN
        RETURN;
    END IF;
    BEGIN
        EXECUTE format('CREATE INDEX runs_search_trgm ON runs USING gin (search_text %I.gin_trgm_ops)',
                       trgm_schema);
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'coflow: cannot use pg_trgm in schema % (%): searching runs by text reads '
            'every run. Grant USAGE on that schema and index runs.search_text with gin_trgm_ops.',
            trgm_schema, SQLERRM;
    END;
END
$$;
