-- Transforms: a third plugin world, and the record of which transforms ran in an attempt.

-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt with the new
-- one; its rows are copied unchanged.
CREATE TABLE plugin_versions_new (
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    world       TEXT    NOT NULL CHECK (world IN ('adapter', 'channel', 'transform')),
    sha256      TEXT    NOT NULL,
    component   BLOB    NOT NULL,
    uploaded_by TEXT    NOT NULL,
    uploaded_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
INSERT INTO plugin_versions_new
    SELECT name, version, world, sha256, component, uploaded_by, uploaded_at FROM plugin_versions;
DROP TABLE plugin_versions;
ALTER TABLE plugin_versions_new RENAME TO plugin_versions;

-- The transforms that ran before the channel, in order, as a JSON list of names (the
-- names in the routes file, each with its plugin); NULL when none ran.
ALTER TABLE attempts ADD COLUMN transforms TEXT;
