-- 0003: pair-by-code. Every code ever issued is kept, so a code is never issued twice, and a
-- pairing session records who claimed (consumed) its code.

CREATE TABLE pairing_codes_issued (
    code      TEXT NOT NULL PRIMARY KEY,
    issued_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- Codes issued before this migration count as issued too.
INSERT INTO pairing_codes_issued (code, issued_at)
SELECT pairing_code, created_at FROM provisioning_sessions;

-- Set once by a conditional UPDATE (claimed_by IS NULL), so of two concurrent claims of one
-- code exactly one wins. The API key id, never the key.
ALTER TABLE provisioning_sessions ADD COLUMN claimed_by TEXT;
ALTER TABLE provisioning_sessions ADD COLUMN claimed_at TEXT;

-- offer() looks up a device's live session by its MAC.
CREATE INDEX provisioning_sessions_by_device ON provisioning_sessions (device_id);
