-- The names of an endpoint's own secrets, beyond its signing secret: what an operator's
-- channel plugin needs (a bot token, an API key). The values are sealed in the vault under
-- the endpoint's channel name, as the signing secret is; only the names are kept here,
-- so the directory can tell each process which secrets the endpoint's plugin reads.
ALTER TABLE endpoints ADD COLUMN secret_names TEXT NOT NULL DEFAULT '[]';  -- JSON array
