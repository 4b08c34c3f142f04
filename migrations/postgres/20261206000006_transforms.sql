-- Transforms: a third plugin world, and the record of which transforms ran in an attempt.

ALTER TABLE plugin_versions DROP CONSTRAINT plugin_versions_world_check;
ALTER TABLE plugin_versions ADD CONSTRAINT plugin_versions_world_check
    CHECK (world IN ('adapter', 'channel', 'transform'));

-- The transforms that ran before the channel, in order, as a JSON list of names (the
-- names in the routes file, each with its plugin); NULL when none ran.
ALTER TABLE attempts ADD COLUMN transforms TEXT;
