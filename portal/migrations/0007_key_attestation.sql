-- Where an application's key pair was made, from its attestation: the token's serial and
-- firmware and the manufacturer CA. Kept with the application and with its certificate.
ALTER TABLE applications ADD COLUMN key_serial BIGINT;
ALTER TABLE applications ADD COLUMN key_firmware TEXT;
ALTER TABLE applications ADD COLUMN key_manufacturer TEXT;
ALTER TABLE certificates ADD COLUMN key_serial BIGINT;
ALTER TABLE certificates ADD COLUMN key_firmware TEXT;
