-- Certificate applications (证书新办) and what they produce: ID photos, payments, messages
-- sent by SMS and email (an outbox a gateway drains; the sandbox reads it), staff reviews.

-- Staff review applications; users apply, bind and log in.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user';

CREATE TABLE applications (
    id             TEXT PRIMARY KEY,
    number         TEXT NOT NULL UNIQUE,
    user_id        TEXT NOT NULL REFERENCES users(id),
    -- review, photos, sms, payment, under_review, issued, rejected
    stage          TEXT NOT NULL,
    organisation   TEXT NOT NULL,
    credit_code    TEXT NOT NULL,
    handler_name   TEXT NOT NULL,
    id_number      TEXT NOT NULL,
    mobile         TEXT NOT NULL,
    email          TEXT NOT NULL,
    amount_fen     BIGINT NOT NULL,
    csr_b64        TEXT,
    -- SHA-256 of the SMS code (never the code), its expiry, wrong tries, when it was sent
    sms_hash       TEXT,
    sms_expires_at BIGINT,
    sms_attempts   BIGINT NOT NULL DEFAULT 0,
    sms_sent_at    BIGINT,
    pay_method     TEXT,
    paid_at        BIGINT,
    reviewed_by    TEXT,
    reviewed_at    BIGINT,
    reject_reason  TEXT,
    fingerprint    TEXT REFERENCES certificates(fingerprint),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX applications_user ON applications (user_id);
CREATE INDEX applications_stage ON applications (stage);

CREATE TABLE application_photos (
    application_id TEXT NOT NULL REFERENCES applications(id),
    side           TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size           BIGINT NOT NULL,
    sha256         TEXT NOT NULL,
    data_b64       TEXT NOT NULL,
    uploaded_at    BIGINT NOT NULL,
    PRIMARY KEY (application_id, side)
);

CREATE TABLE payments (
    id             TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id),
    method         TEXT NOT NULL,
    amount_fen     BIGINT NOT NULL,
    -- pending, paid
    status         TEXT NOT NULL,
    provider_txn   TEXT,
    created_at     BIGINT NOT NULL,
    paid_at        BIGINT
);

CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    -- sms, email
    channel     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX outbox_recipient ON outbox (recipient, created_at);
