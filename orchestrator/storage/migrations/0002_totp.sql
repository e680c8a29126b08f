-- 0002: the TOTP step-up enrollment. One row (one seed per appliance, CHECK id = 1).

CREATE TABLE totp (
    id             INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    -- The RFC 6238 seed, already encrypted by the caller: storage never sees it in clear.
    sealed_seed    BLOB NOT NULL,
    enrolled_at    TEXT NOT NULL,
    -- The newest 30 s time step a code was accepted for (-1: none yet). Only ever raised, by a
    -- conditional UPDATE, so two requests presenting the same code cannot both win it.
    last_used_step INTEGER NOT NULL
) STRICT;
