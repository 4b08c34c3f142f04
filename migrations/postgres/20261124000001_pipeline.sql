-- The store on PostgreSQL: notifications (which double as the stream), deliveries (which
-- double as the delivery queue), the record of every attempt, idempotency keys and API
-- tokens. The same tables as migrations/sqlite, with PostgreSQL types. Times are Unix
-- milliseconds (BIGINT).
--
-- Identifiers and kinds compare bytewise (COLLATE "C"), as SQLite compares them, so the
-- kind-prefix filter and the (time, id) page cursors mean the same on both, and their
-- indexes serve range scans whatever the database's locale.

CREATE TABLE notifications (
    -- The stream position: the router reads notifications in this order. Accepts commit
    -- in this order too (they hold an advisory lock until they commit).
    seq             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              TEXT    COLLATE "C" NOT NULL UNIQUE,
    kind            TEXT    COLLATE "C" NOT NULL,
    source          TEXT    NOT NULL,
    attributes      TEXT    NOT NULL,  -- JSON array of [name, value] pairs
    payload         TEXT    NOT NULL,
    idempotency_key TEXT,
    created_at      BIGINT  NOT NULL
);
-- The API's listings: newest first, optionally by kind (or kind prefix) or source.
CREATE INDEX notifications_by_kind ON notifications (kind, seq);
CREATE INDEX notifications_by_source ON notifications (source, seq);

-- How far each stream consumer has read; committed with the work it did.
CREATE TABLE stream_cursors (
    consumer TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);

CREATE TABLE deliveries (
    id              TEXT    COLLATE "C" PRIMARY KEY,
    notification_id TEXT    COLLATE "C" NOT NULL,
    channel         TEXT    NOT NULL,
    route           TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    -- Attempts made before the last replay: the retry schedule restarts from here.
    retry_base      BIGINT  NOT NULL DEFAULT 0,
    -- A pending delivery is due at next_at. While a process holds it in memory, next_at is
    -- the end of that lease and lease_owner names the process.
    next_at         BIGINT  NOT NULL,
    lease_owner     TEXT,
    last_error      TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (channel, next_at) WHERE state = 'pending';
-- A notification's deliveries, and the "has a delivery in this state" filter.
CREATE INDEX deliveries_by_notification ON deliveries (notification_id, state);
-- Dead letters, most recently dead first, of all channels or of one.
CREATE INDEX deliveries_dead ON deliveries (updated_at, id) WHERE state = 'dead';
CREATE INDEX deliveries_dead_by_channel ON deliveries (channel, updated_at, id)
    WHERE state = 'dead';

CREATE TABLE attempts (
    delivery_id TEXT    COLLATE "C" NOT NULL,
    attempt     BIGINT  NOT NULL,
    started_at  BIGINT  NOT NULL,
    duration_ms BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL,  -- delivered | retry | failed | error
    status      INTEGER,           -- the HTTP status, when there was one
    detail      TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

-- Idempotency keys, per scope: a request's Idempotency-Key header (scope `request:...`,
-- response = the first answer) or a notification's own key (scope `notification:<source>`,
-- response = the notification id).
CREATE TABLE idempotency_keys (
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    response    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE TABLE api_tokens (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    digest     BYTEA   NOT NULL UNIQUE,  -- SHA-256 of the token; the token itself is never stored
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT
);
