-- API token scopes: what each token may do, as space-separated words (`send`, `read`,
-- `admin`). Every token made before scopes existed could do everything, so existing rows
-- keep all three; a token inserted without naming its scopes (by an older binary during a
-- rolling upgrade) gets the same full access those binaries grant.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'send read admin';
