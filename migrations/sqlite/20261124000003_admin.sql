-- The admin console: its users, the failed sign-ins that lock an account, and the plugins
-- admins upload, every version kept so a rollback is one click. Times are Unix milliseconds.

CREATE TABLE admin_users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,  -- an argon2id PHC string
    created_at    INTEGER NOT NULL
);

-- One row per failed sign-in, by the username as typed, whether or not such a user exists:
-- so a locked name says nothing about which accounts exist.
CREATE TABLE login_failures (
    username  TEXT    NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX login_failures_by_user ON login_failures (username, failed_at);

CREATE TABLE plugin_versions (
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    world       TEXT    NOT NULL CHECK (world IN ('adapter', 'channel')),
    sha256      TEXT    NOT NULL,
    component   BLOB    NOT NULL,
    uploaded_by TEXT    NOT NULL,
    uploaded_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

-- Which version of each uploaded plugin runs, and whether it may run at all.
CREATE TABLE plugin_settings (
    name           TEXT    PRIMARY KEY,
    active_version INTEGER NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
