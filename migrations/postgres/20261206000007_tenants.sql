-- Tenants ("applications") and the endpoints they register at run time, beside the
-- operator's YAML channels. An endpoint's deliveries are ordinary deliveries whose channel
-- is `endpoint:<id>` (a name no YAML channel can have); its signing secrets are sealed in
-- `channel_secrets` under that same channel name, so the vault's key rotation covers them.

CREATE TABLE tenants (
    id         TEXT    COLLATE "C" PRIMARY KEY,  -- chosen by the operator, e.g. their customer's id
    name       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    -- Set when deleted: the row stays a while so every process's directory sees the
    -- deletion (it reads changes by updated_at), then retention removes it.
    deleted_at BIGINT
);

CREATE TABLE endpoints (
    id              TEXT    COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT    COLLATE "C" NOT NULL,
    description     TEXT    NOT NULL,
    -- The destination: a URL (delivered by the `webhook` plugin) or any channel plugin
    -- with its config. `url` is NULL for the latter.
    url             TEXT,
    plugin          TEXT    NOT NULL,
    config          TEXT    NOT NULL,  -- JSON object
    allowed_hosts   TEXT    NOT NULL,  -- JSON array
    -- What it receives: kind globs (an empty list takes every kind) and attribute filters
    -- (name -> accepted values), as JSON.
    kinds           TEXT    NOT NULL,
    attributes      TEXT    NOT NULL,
    transforms      TEXT    NOT NULL,  -- JSON array of transform names
    rate_limit      TEXT,              -- `50/s`, `3000/m`, `10/h`
    retry_schedule  TEXT,              -- JSON array of delays such as "5s"; NULL: default
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- While a rotated-out signing secret is still sent beside the new one.
    previous_secret_until BIGINT,
    -- Since when every attempt has failed (NULL while it delivers): auto-disable counts
    -- from here.
    failing_since   BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    deleted_at      BIGINT
);
CREATE INDEX endpoints_by_tenant ON endpoints (tenant_id, created_at);
CREATE INDEX endpoints_by_update ON endpoints (updated_at);
CREATE INDEX tenants_by_update ON tenants (updated_at);

-- The tenant a notification was sent for, if any.
ALTER TABLE notifications ADD COLUMN tenant TEXT;


-- A tenant-scoped API token reaches only its tenant's endpoints, deliveries and sends.
ALTER TABLE api_tokens ADD COLUMN tenant TEXT;

-- Endpoints' deliveries: partial indexes, so the operator's own channels' deliveries (the
-- hot path) pay nothing for them. Queries repeat each condition word for word, which is
-- how SQLite sees they may use them.
-- A tenant's listing, newest first, and bulk recover.
CREATE INDEX deliveries_by_endpoint ON deliveries (channel, id)
    WHERE channel LIKE 'endpoint:%';
-- Which endpoints have deliveries due: endpoints are too many to ask one by one.
CREATE INDEX deliveries_endpoints_due ON deliveries (next_at, channel)
    WHERE state = 'pending' AND NOT on_broker AND channel LIKE 'endpoint:%';
