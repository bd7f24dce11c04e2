-- Sessions of the supervision console (/console/). A person signs in with a key once; the
-- browser then holds only a random session token in a Secure, HttpOnly, SameSite=Strict cookie.
-- The database keeps the token's SHA-256, never the token, so a copy of this table opens no
-- session. Sessions live in the database, not in one process, so every instance honours them
-- and signing out ends the session everywhere at once.
CREATE TABLE itaku.console_sessions (
    token_hash  bytea PRIMARY KEY,
    key_id      uuid NOT NULL REFERENCES itaku.api_keys (key_id),
    -- The form token of this session (CSRF): every form carries it, every POST must match it.
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    -- The absolute end; an idle session ends earlier (console.idleMinutes after last_seen).
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON itaku.console_sessions (expires_at);
GRANT SELECT, INSERT, DELETE ON itaku.console_sessions TO itaku_runtime;
GRANT UPDATE (last_seen) ON itaku.console_sessions TO itaku_runtime;
