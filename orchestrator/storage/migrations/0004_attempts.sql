-- 0004: provisioning attempts. Written before and after every step of the engine, so a run
-- killed half-way resumes each device where it was. No secret is stored here: the device's
-- broker password exists only in the delivery and on the broker.

CREATE TABLE attempts (
    session_id     TEXT NOT NULL,
    mac            TEXT NOT NULL,
    number         INTEGER NOT NULL CHECK (number >= 1),
    nonce          TEXT NOT NULL UNIQUE,
    phase          TEXT NOT NULL,
    strategy       TEXT NOT NULL,
    device_name    TEXT NOT NULL,
    username       TEXT NOT NULL,
    status_topic   TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    delivered_at   TEXT,
    failure_reason TEXT,
    PRIMARY KEY (session_id, mac, number),
    FOREIGN KEY (session_id, mac) REFERENCES candidates (session_id, mac) ON DELETE CASCADE
) STRICT;
