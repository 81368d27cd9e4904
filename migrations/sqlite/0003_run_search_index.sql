-- Text search of runs (the runs list's text filter). A trigram index over `search_text` finds
-- the runs containing a text of 3 or more characters without reading every run. Shorter texts,
-- which a trigram index cannot look up, and texts in very many runs (see `SqliteStore`) are
-- still found by reading runs newest first.
--
-- External content: the index stores trigrams and rowids only and reads the text from `runs`.
-- `runs` has indexes, so VACUUM copies its rows with their rowids and the two stay paired.
-- `case_sensitive 1`: the stored and the searched texts are both lowercased before they get
-- here, so trigrams compare byte for byte, as `instr` did.
CREATE VIRTUAL TABLE runs_search USING fts5 (
    search_text,
    content = 'runs',
    tokenize = 'trigram case_sensitive 1'
);

-- Kept in step with `runs` by triggers. An external-content index is told which text leaves
-- it ('delete' with the old values): every write to `runs.search_text` goes through these.
CREATE TRIGGER runs_search_insert AFTER INSERT ON runs BEGIN
    INSERT INTO runs_search (rowid, search_text) VALUES (new.rowid, new.search_text);
END;

CREATE TRIGGER runs_search_delete AFTER DELETE ON runs BEGIN
    INSERT INTO runs_search (runs_search, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
END;

CREATE TRIGGER runs_search_update AFTER UPDATE OF search_text ON runs BEGIN
    INSERT INTO runs_search (runs_search, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
    INSERT INTO runs_search (rowid, search_text) VALUES (new.rowid, new.search_text);
END;

-- Indexes the runs stored before this migration.
INSERT INTO runs_search (runs_search) VALUES ('rebuild');
