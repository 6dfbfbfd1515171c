-- Wrong passwords are counted per (username as typed, client address), for usernames that
-- exist and for those that do not alike, and slow that client down (a growing delay) instead
-- of locking the account: a stranger can neither lock a user out nor tell which usernames
-- exist. The account-wide counter and lock go.
CREATE TABLE login_failures (
    username      TEXT NOT NULL,
    client        TEXT NOT NULL,
    failures      BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL,
    last_at       BIGINT NOT NULL,
    PRIMARY KEY (username, client)
);
CREATE INDEX login_failures_last_at ON login_failures (last_at);
ALTER TABLE users DROP COLUMN failed_logins;
ALTER TABLE users DROP COLUMN locked_until;
