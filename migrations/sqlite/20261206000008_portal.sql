-- Customer portal sessions. A portal link is single use: opening it inserts this row,
-- keyed by the link's id, in the one statement that starts the session, so a second
-- opening (by any process sharing the store) finds the id taken and is refused.
CREATE TABLE portal_sessions (
    link_id        TEXT    PRIMARY KEY,
    -- SHA-256 (hex) of the session cookie: the cookie itself is never stored.
    session_digest TEXT    NOT NULL UNIQUE,
    tenant_id      TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    -- The session's end, fixed when it starts (signing out moves it to then).
    expires_at     INTEGER NOT NULL,
    -- When the row may go: after both the session and the link have expired, so the
    -- link's id stays spent for as long as the link could be presented.
    keep_until     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX portal_sessions_by_keep_until ON portal_sessions (keep_until);
