-- The admin console: its users, the failed sign-ins that lock an account, and the plugins
-- admins upload, every version kept so a rollback is one click. Times are Unix milliseconds.

CREATE TABLE admin_users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,  -- an argon2id PHC string
    created_at    BIGINT  NOT NULL
);

-- One row per failed sign-in, by the username as typed, whether or not such a user exists:
-- so a locked name says nothing about which accounts exist.
CREATE TABLE login_failures (
    username  TEXT    NOT NULL,
    failed_at BIGINT  NOT NULL
);
CREATE INDEX login_failures_by_user ON login_failures (username, failed_at);
-- Forgetting old failures deletes by time alone.
CREATE INDEX login_failures_by_age ON login_failures (failed_at);

CREATE TABLE plugin_versions (
    name        TEXT    NOT NULL,
    version     BIGINT  NOT NULL,
    world       TEXT    NOT NULL CHECK (world IN ('adapter', 'channel')),
    sha256      TEXT    NOT NULL,
    component   BYTEA   NOT NULL,
    uploaded_by TEXT    NOT NULL,
    uploaded_at BIGINT  NOT NULL,
    PRIMARY KEY (name, version)
);

-- Which version of each uploaded plugin runs, and whether it may run at all.
CREATE TABLE plugin_settings (
    name           TEXT    PRIMARY KEY,
    active_version BIGINT  NOT NULL,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE
);
