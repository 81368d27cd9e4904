-- The trigram index of run texts is filled in the background instead of on every write.
--
-- Indexing a run's text costs far more than storing the run, and the triggers of 0003 paid it up
-- to three times per run (its inputs when created, then out and in again when it finished).
-- Now a run is indexed once, after it finished, by `SqliteStore::index_search`, which the
-- server calls every second for the runs finished since. `search_indexed` says whether the
-- index holds the run's current `search_text`; a text search reads the index for the indexed
-- runs and checks the others (the few finished within the last second, and runs still going)
-- directly, so every run stays findable.
DROP TRIGGER runs_search_insert;
DROP TRIGGER runs_search_update;
DROP TRIGGER runs_search_delete;

-- Every run stored so far is in the index: the triggers put it there.
ALTER TABLE runs ADD COLUMN search_indexed INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET search_indexed = 1;

-- The runs the index does not hold yet, for the indexer and for text searches.
CREATE INDEX runs_unindexed ON runs (created_at) WHERE search_indexed = 0;

-- An indexed run that is deleted or whose text changes leaves the index first (an
-- external-content index is told which text leaves it); a changed text is indexed again later.
CREATE TRIGGER runs_search_delete AFTER DELETE ON runs WHEN old.search_indexed = 1 BEGIN
    INSERT INTO runs_search (runs_search, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;

CREATE TRIGGER runs_search_update AFTER UPDATE OF search_text ON runs WHEN old.search_indexed = 1 BEGIN
    INSERT INTO runs_search (runs_search, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    UPDATE runs SET search_indexed = 0 WHERE rowid = new.rowid;
END;
