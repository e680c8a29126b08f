-- 0001: the initial schema.
-- Timestamps are fixed-width ISO-8601 UTC text (YYYY-MM-DDTHH:MM:SS.ffffffZ), so comparing
-- the text compares the instants. Enum values are stored as their (never renamed) values.

CREATE TABLE sessions (
    id              TEXT NOT NULL PRIMARY KEY,
    state           TEXT NOT NULL,
    target_ssid     TEXT NOT NULL,
    config          TEXT NOT NULL,  -- SessionConfig as JSON
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    max_retries     INTEGER NOT NULL,
    expires_at      TEXT,
    closed_reason   TEXT,
    -- The target Wi-Fi password, already encrypted by the caller: storage never sees it in clear.
    sealed_password BLOB NOT NULL
) STRICT;

-- By state: delete_closed_before filters on (state, updated_at).
CREATE INDEX sessions_by_state ON sessions (state, updated_at);
-- history and list_unclosed order by (created_at, id).
CREATE INDEX sessions_by_created ON sessions (created_at, id);

CREATE TABLE candidates (
    session_id       TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    mac              TEXT NOT NULL,
    ip               TEXT NOT NULL,
    state            TEXT NOT NULL,
    rssi             INTEGER NOT NULL,
    firmware_version TEXT NOT NULL,
    discovered_at    TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    retry_count      INTEGER NOT NULL,
    provisioned_at   TEXT,
    verified_at      TEXT,
    failure_reason   TEXT,
    failure_message  TEXT,
    failure_code     TEXT,
    PRIMARY KEY (session_id, mac),
    CHECK ((failure_reason IS NULL) = (failure_message IS NULL)),
    CHECK (failure_reason IS NOT NULL OR failure_code IS NULL)
) STRICT;

-- Serves list_for (filter by session, discovery order); the primary key cannot sort by time.
CREATE INDEX candidates_by_session ON candidates (session_id, discovered_at, mac);

CREATE TABLE allowlist (
    mac          TEXT NOT NULL PRIMARY KEY,
    added_at     TEXT NOT NULL,
    description  TEXT,
    container_id TEXT,
    used_at      TEXT
) STRICT;

-- Seed 000's tables, named as it names them.
CREATE TABLE devices (
    device_id           TEXT NOT NULL PRIMARY KEY,
    device_label        TEXT NOT NULL,
    server_url          TEXT NOT NULL,
    provisioning_status TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
) STRICT;

CREATE TABLE provisioning_sessions (
    pairing_code TEXT NOT NULL PRIMARY KEY,
    device_id    TEXT NOT NULL,
    device_ip    TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) STRICT;

CREATE INDEX provisioning_sessions_by_expiry ON provisioning_sessions (expires_at);

-- AUTOINCREMENT: ids are never reused, so paging with before_id stays stable.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    session_id     TEXT,
    mac            TEXT,
    correlation_id TEXT,
    detail         TEXT
) STRICT;

-- Each index also holds the rowid, so "WHERE mac = ? ORDER BY id DESC" needs no sort.
CREATE INDEX audit_log_by_mac ON audit_log (mac);
CREATE INDEX audit_log_by_action ON audit_log (action);
CREATE INDEX audit_log_by_at ON audit_log (at);

-- The audit trail is append-only, whoever opens the file.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be updated');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: rows cannot be deleted');
END;

-- AUTOINCREMENT: a sequence number is never handed out twice, even after trim has deleted
-- every row (SSE clients resume from Last-Event-ID).
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT,
    data       BLOB NOT NULL  -- msgspec JSON of the whole envelope, replayed byte for byte
) STRICT;

CREATE TABLE api_keys (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
