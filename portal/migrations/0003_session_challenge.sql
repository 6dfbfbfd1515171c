-- A login challenge lives in the session it was issued to, one at a time (a new one replaces
-- the last, as in Web eID). A key login spends it in the same statement that rotates the
-- session, and it dies with the session instead of piling up in a table of its own.
ALTER TABLE sessions ADD COLUMN nonce TEXT;
ALTER TABLE sessions ADD COLUMN nonce_origin TEXT;
ALTER TABLE sessions ADD COLUMN nonce_expires_at BIGINT;
DROP TABLE nonces;
