-- Request counts per (action, client) for the current minute, shared by every portal instance
-- on this database (PostgreSQL behind a load balancer). One row per pair, bumped in place;
-- rows of past minutes are deleted by the housekeeping task.
CREATE TABLE rate_limits (
    action  TEXT NOT NULL,
    client  TEXT NOT NULL,
    minute  BIGINT NOT NULL,
    hits    BIGINT NOT NULL,
    PRIMARY KEY (action, client)
);
CREATE INDEX rate_limits_minute ON rate_limits (minute);
