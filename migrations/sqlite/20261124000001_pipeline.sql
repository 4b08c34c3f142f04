-- The embedded store: notifications (which double as the stream), deliveries (which double
-- as the delivery queue), the record of every attempt, idempotency keys and API tokens.
-- Times are Unix milliseconds.

CREATE TABLE notifications (
    -- The stream position: the router reads notifications in this order.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    attributes      TEXT    NOT NULL,  -- JSON array of [name, value] pairs
    payload         TEXT    NOT NULL,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX notifications_by_kind ON notifications (kind, seq);
CREATE INDEX notifications_by_source ON notifications (source, seq);

-- How far each stream consumer has read; committed with the work it did.
CREATE TABLE stream_cursors (
    consumer TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
);

CREATE TABLE deliveries (
    id              TEXT    PRIMARY KEY,
    notification_id TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    route           TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- Attempts made before the last replay: the retry schedule restarts from here.
    retry_base      INTEGER NOT NULL DEFAULT 0,
    -- A pending delivery is due at next_at. While a process holds it in memory, next_at is
    -- the end of that lease and lease_owner names the process.
    next_at         INTEGER NOT NULL,
    lease_owner     TEXT,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (channel, next_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_notification ON deliveries (notification_id);
CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';

CREATE TABLE attempts (
    delivery_id TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,  -- delivered | retry | failed | error
    status      INTEGER,
    detail      TEXT,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;

-- Idempotency keys, per scope: a request's Idempotency-Key header (scope `request:...`,
-- response = the first answer) or a notification's own key (scope `notification:<source>`,
-- response = the notification id).
CREATE TABLE idempotency_keys (
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    response    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE TABLE api_tokens (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    digest     BLOB    NOT NULL UNIQUE,  -- SHA-256 of the token; the token itself is never stored
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
