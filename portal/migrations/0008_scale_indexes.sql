-- What a portal with tens of thousands of keys looks up by something other than a primary
-- key: a key's bindings by its certificate (every key login and bind), a holder's earlier
-- certificates (every approval), the revoked certificates (every CRL).
CREATE INDEX bindings_fingerprint ON bindings (fingerprint);
CREATE INDEX applications_holder ON applications (credit_code, id_number);
CREATE INDEX certificates_revoked ON certificates (revoked_at);
