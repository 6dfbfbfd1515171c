-- Every SMS code sent, by recipient and by the user who asked: what the hourly and daily caps
-- count (kept a day). An SMS in the outbox names the application it is for and when its code
-- expires, so it is deleted once the code is used or dead (it holds the code in clear).
CREATE TABLE sms_sent (
    id         TEXT PRIMARY KEY,
    recipient  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX sms_sent_recipient ON sms_sent (recipient, at);
CREATE INDEX sms_sent_user ON sms_sent (user_id, at);
ALTER TABLE outbox ADD COLUMN application_id TEXT;
ALTER TABLE outbox ADD COLUMN expires_at BIGINT;
