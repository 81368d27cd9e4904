-- Text search indexed in the background, as on SQLite: keeping the trigram index of migration
-- 0003 up to date cost about a millisecond and a half of database time per finished run (some
-- four thousand trigrams), all of it on the path that records runs. The index now covers only
-- the runs marked `search_indexed`; the server marks finished runs in batches when it is idle
-- (`Store::index_search`), and a text search reads the runs not marked yet directly.
ALTER TABLE runs ADD COLUMN search_indexed BOOLEAN NOT NULL DEFAULT false;
UPDATE runs SET search_indexed = true WHERE ended_at IS NOT NULL;

CREATE INDEX runs_unindexed ON runs (created_at) WHERE NOT search_indexed;

-- The trigram index, where migration 0003 could create it, becomes partial.
DO $$
DECLARE
    trgm_schema name;
BEGIN
    IF to_regclass('runs_search_trgm') IS NULL THEN
        RETURN;
    END IF;
    SELECT n.nspname INTO trgm_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    DROP INDEX runs_search_trgm;
    EXECUTE format('CREATE INDEX runs_search_trgm ON runs USING gin (search_text %I.gin_trgm_ops) '
                   'WHERE search_indexed', trgm_schema);
END
$$;
