-- The channel-secrets vault: each value is sealed with AES-256-GCM under the master key
-- (see host/src/vault.rs); the database never holds a secret in the clear.

CREATE TABLE channel_secrets (
    channel    TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    -- version | key id | nonce | AES-256-GCM ciphertext and tag, sealed with
    -- `channel-secret:{channel}/{name}` as associated data, so it opens only in this row.
    ciphertext BYTEA   NOT NULL,
    -- The key id that is also inside the ciphertext, kept here so listings and key
    -- rotation can see which key each row needs without opening it.
    key_id     TEXT    NOT NULL,
    -- When the value was last set; re-encrypting under a new key does not change it.
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (channel, name)
);
