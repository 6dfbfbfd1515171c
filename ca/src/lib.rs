//! The ukey certificate authority: a P-256 issuing CA that lives in a directory
//! (`ca.key.pem`, PKCS#8, mode 0600; `ca.crt.pem`) and issues client-authentication
//! certificates, from a CSR (the portal's path) or from a bare public key (scenarios).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use der::{Decode, DecodePem, Encode, EncodePem};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use proto::Clock;
use spki::{DecodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::name::Name;
use x509_cert::request::CertReq;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use x509_cert::Certificate;

pub use x509_cert;

pub mod attestation;
pub mod crl;
mod error;
mod names;

pub use error::{CaError, Result};
pub use names::{attr, name_from, parse_name, x509_time};

const KEY_FILE: &str = "ca.key.pem";
const CERT_FILE: &str = "ca.crt.pem";
/// id-kp-clientAuth (RFC 5280 4.2.1.12).
pub const CLIENT_AUTH: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
const ECDSA_WITH_SHA256: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
pub const DAY: u64 = 86_400;

/// An issuing CA, loaded from its directory.
pub struct Ca {
    dir: PathBuf,
    key: SigningKey,
    cert: Certificate,
    /// Where this CA publishes its CRL; named in every certificate it issues.
    crl_url: Option<String>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("dir", &self.dir).field("subject", &self.subject()).finish_non_exhaustive()
    }
}

impl Ca {
    /// A CRL (DER) listing `revoked`, numbered `number` (it must grow with every list), valid
    /// from `this_update` until `next_update` (Unix seconds).
    pub fn crl(&self, revoked: &[crl::Revoked], number: u64, this_update: u64, next_update: u64) -> Result<Vec<u8>> {
        crl::sign(&self.key, &self.cert, revoked, number, this_update, next_update)
    }

    /// Issue from a CSR but under a subject the issuer decided (the request's own subject is a
    /// claim; the portal names the certificate after the approved application).
    pub fn issue_for_request(
        &self,
        csr_der: &[u8],
        subject: &Name,
        not_before: u64,
        not_after: u64,
    ) -> Result<Vec<u8>> {
        let req = verify_csr(csr_der)?;
        let spki = req.info.public_key.to_der().map_err(|e| CaError::BadCsr(e.to_string()))?;
        self.issue(subject, &spki, not_before, not_after)
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes[0] = (bytes[0] & 0x7F) | 0x01;
    SerialNumber::new(&bytes).expect("16-byte positive serial is valid")
}

/// Write `path` whole or not at all: a temp file beside it (0600 when `private`, from the first
/// byte), synced, renamed over `path`, and the directory synced. A reader never sees half a
/// file, whoever else is starting at the same moment.
fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    let io = |source| CaError::Io { action: "write", path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut nonce = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), u64::from_le_bytes(nonce)));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = private;
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// Held while a CA directory is created: of processes starting together, one creates it and
/// the others wait, then open what it made.
fn creation_lock(dir: &Path) -> Result<fs::File> {
    let path = dir.join(".lock");
    let io = |source| CaError::Io { action: "lock", path: path.clone(), source };
    let mut opts = fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts.open(&path).map_err(io)?;
    f.lock().map_err(io)?;
    Ok(f)
}

fn private_dir(dir: &Path) -> Result<()> {
    // The directory holds the CA's private key: private from the start, whatever the umask.
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| CaError::Io { action: "create", path: dir.into(), source })
}

impl Ca {
    /// Create a new CA in `dir` (made if missing) with a self-signed root valid for `days`.
    pub fn create(dir: &Path, subject: &str, days: u64, clock: &dyn Clock) -> Result<Ca> {
        private_dir(dir)?;
        let _lock = creation_lock(dir)?;
        Ca::create_locked(dir, subject, days, clock)
    }

    fn create_locked(dir: &Path, subject: &str, days: u64, clock: &dyn Clock) -> Result<Ca> {
        if dir.join(KEY_FILE).exists() {
            return Err(CaError::Exists { path: dir.to_path_buf() });
        }
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let now = clock.now_unix();
        let validity =
            Validity { not_before: x509_time(now.saturating_sub(60))?, not_after: x509_time(now + days * DAY)? };
        let spki =
            SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).map_err(|e| CaError::Build(e.to_string()))?;
        let builder =
            CertificateBuilder::new(Profile::Root, random_serial(), validity, parse_name(subject)?, spki, &key)
                .map_err(|e| CaError::Build(e.to_string()))?;
        let cert = builder.build::<DerSignature>().map_err(|e| CaError::Build(e.to_string()))?;
        let key_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| CaError::Build(e.to_string()))?;
        let cert_pem = cert.to_pem(der::pem::LineEnding::LF).map_err(|e| CaError::Build(e.to_string()))?;
        // The certificate first: the key file's presence says the CA is whole.
        write_atomic(&dir.join(CERT_FILE), cert_pem.as_bytes(), false)?;
        write_atomic(&dir.join(KEY_FILE), key_pem.as_bytes(), true)?;
        Ok(Ca { dir: dir.to_path_buf(), key, cert, crl_url: None })
    }

    /// Open the CA kept in `dir`.
    pub fn open(dir: &Path) -> Result<Ca> {
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(|source| CaError::Io { action: "read", path, source })
        };
        let bad = |name: &str, reason: String| CaError::BadFile { path: dir.join(name), reason };
        let key = SigningKey::from_pkcs8_pem(&read(KEY_FILE)?).map_err(|e| bad(KEY_FILE, e.to_string()))?;
        let cert = Certificate::from_pem(read(CERT_FILE)?.as_bytes()).map_err(|e| bad(CERT_FILE, e.to_string()))?;
        let cert_key = VerifyingKey::from_public_key_der(
            &cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| bad(CERT_FILE, e.to_string()))?,
        )
        .map_err(|e| bad(CERT_FILE, e.to_string()))?;
        if &cert_key != key.verifying_key() {
            return Err(bad(CERT_FILE, "the certificate does not belong to ca.key.pem".into()));
        }
        Ok(Ca { dir: dir.to_path_buf(), key, cert, crl_url: None })
    }

    /// Open the CA in `dir`, creating it first if there is none.
    /// Processes that start together agree on one CA: the first creates it under the
    /// directory's lock, the others open it once made.
    pub fn open_or_create(dir: &Path, subject: &str, days: u64, clock: &dyn Clock) -> Result<Ca> {
        if dir.join(KEY_FILE).exists() {
            return Ca::open(dir);
        }
        private_dir(dir)?;
        let _lock = creation_lock(dir)?;
        if dir.join(KEY_FILE).exists() {
            Ca::open(dir)
        } else {
            Ca::create_locked(dir, subject, days, clock)
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Name `url` as the CRL distribution point of every certificate issued from now on.
    pub fn with_crl_url(mut self, url: impl Into<String>) -> Ca {
        self.crl_url = Some(url.into());
        self
    }
    pub fn crl_url(&self) -> Option<&str> {
        self.crl_url.as_deref()
    }
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }
    pub fn certificate_der(&self) -> Vec<u8> {
        self.cert.to_der().expect("a decoded certificate re-encodes")
    }
    pub fn certificate_pem(&self) -> String {
        self.cert.to_pem(der::pem::LineEnding::LF).expect("a decoded certificate re-encodes")
    }
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }
    pub fn verifying_key(&self) -> &VerifyingKey {
        self.key.verifying_key()
    }

    /// Issue a client-authentication certificate for `public_key` (DER SubjectPublicKeyInfo).
    pub fn issue(&self, subject: &Name, public_key: &[u8], not_before: u64, not_after: u64) -> Result<Vec<u8>> {
        if not_after <= not_before {
            return Err(CaError::EmptyValidity { not_before, not_after });
        }
        let spki = SubjectPublicKeyInfoOwned::from_der(public_key).map_err(|e| CaError::BadCsr(e.to_string()))?;
        let validity = Validity { not_before: x509_time(not_before)?, not_after: x509_time(not_after)? };
        let profile = Profile::Leaf {
            issuer: self.cert.tbs_certificate.subject.clone(),
            enable_key_agreement: false,
            enable_key_encipherment: false,
        };
        let mut builder = CertificateBuilder::new(profile, random_serial(), validity, subject.clone(), spki, &self.key)
            .map_err(|e| CaError::Build(e.to_string()))?;
        builder.add_extension(&ExtendedKeyUsage(vec![CLIENT_AUTH])).map_err(|e| CaError::Build(e.to_string()))?;
        if let Some(url) = &self.crl_url {
            builder.add_extension(&crl::distribution_point(url)?).map_err(|e| CaError::Build(e.to_string()))?;
        }
        let cert = builder.build::<DerSignature>().map_err(|e| CaError::Build(e.to_string()))?;
        cert.to_der().map_err(|e| CaError::Build(e.to_string()))
    }

    /// Issue a CA certificate (path length 0: it signs end certificates only) for
    /// `public_key` (DER SubjectPublicKeyInfo). The factory issues each virtual key's
    /// attestation key (F9) this way, as Yubico's CA does for a YubiKey's.
    pub fn issue_intermediate(
        &self,
        subject: &Name,
        public_key: &[u8],
        not_before: u64,
        not_after: u64,
    ) -> Result<Vec<u8>> {
        if not_after <= not_before {
            return Err(CaError::EmptyValidity { not_before, not_after });
        }
        let spki = SubjectPublicKeyInfoOwned::from_der(public_key).map_err(|e| CaError::BadCsr(e.to_string()))?;
        let validity = Validity { not_before: x509_time(not_before)?, not_after: x509_time(not_after)? };
        let profile =
            Profile::SubCA { issuer: self.cert.tbs_certificate.subject.clone(), path_len_constraint: Some(0) };
        let builder = CertificateBuilder::new(profile, random_serial(), validity, subject.clone(), spki, &self.key)
            .map_err(|e| CaError::Build(e.to_string()))?;
        let cert = builder.build::<DerSignature>().map_err(|e| CaError::Build(e.to_string()))?;
        cert.to_der().map_err(|e| CaError::Build(e.to_string()))
    }

    /// When this CA's own certificate stops being valid (Unix seconds).
    pub fn not_after(&self) -> u64 {
        self.cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs()
    }

    /// Issue from a PKCS#10 request after checking that the request is signed by its key.
    pub fn issue_from_csr(&self, csr_der: &[u8], days: u64, clock: &dyn Clock) -> Result<Vec<u8>> {
        let req = verify_csr(csr_der)?;
        let now = clock.now_unix();
        let spki = req.info.public_key.to_der().map_err(|e| CaError::BadCsr(e.to_string()))?;
        self.issue(&req.info.subject, &spki, now.saturating_sub(60), now + days * DAY)
    }

    /// Whether `cert_der` was signed by this CA.
    pub fn verify_issued(&self, cert_der: &[u8]) -> bool {
        verify_signed_by(cert_der, self.key.verifying_key())
    }
}

/// Parse a PKCS#10 request and check its self-signature (ECDSA P-256 with SHA-256).
pub fn verify_csr(csr_der: &[u8]) -> Result<CertReq> {
    let req = CertReq::from_der(csr_der).map_err(|e| CaError::BadCsr(e.to_string()))?;
    if req.algorithm.oid != ECDSA_WITH_SHA256 {
        return Err(CaError::BadCsr(format!("signature algorithm {} is not ecdsa-with-SHA256", req.algorithm.oid)));
    }
    let spki = req.info.public_key.to_der().map_err(|e| CaError::BadCsr(e.to_string()))?;
    let vk = VerifyingKey::from_public_key_der(&spki).map_err(|e| CaError::BadCsr(format!("public key: {e}")))?;
    let info = req.info.to_der().map_err(|e| CaError::BadCsr(e.to_string()))?;
    let sig = req.signature.as_bytes().ok_or_else(|| CaError::BadCsr("signature has unused bits".into()))?;
    let sig = p256::ecdsa::Signature::from_der(sig).map_err(|_| CaError::CsrSignature)?;
    use p256::ecdsa::signature::Verifier;
    vk.verify(&info, &sig).map_err(|_| CaError::CsrSignature)?;
    Ok(req)
}

/// Whether `cert_der`'s signature verifies under `issuer` (ECDSA P-256, SHA-256).
pub fn verify_signed_by(cert_der: &[u8], issuer: &VerifyingKey) -> bool {
    use p256::ecdsa::signature::Verifier;
    let Ok(cert) = Certificate::from_der(cert_der) else { return false };
    let (Ok(tbs), Some(sig)) = (cert.tbs_certificate.to_der(), cert.signature.as_bytes()) else { return false };
    let Ok(sig) = p256::ecdsa::Signature::from_der(sig) else { return false };
    cert.signature_algorithm.oid == ECDSA_WITH_SHA256 && issuer.verify(&tbs, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::clock::FixedClock;
    use x509_cert::ext::pkix::{KeyUsage, KeyUsages};

    const NOW: u64 = 1_780_000_000;

    #[test]
    fn create_open_and_issue() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "CN=ukey test CA,O=ukey", 3650, &FixedClock(NOW)).unwrap();
        assert!(matches!(Ca::create(dir.path(), "CN=x", 1, &FixedClock(NOW)), Err(CaError::Exists { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let sub = dir.path().join("sub/ca");
            Ca::create(&sub, "CN=sub", 10, &FixedClock(NOW)).unwrap();
            assert_eq!(mode(&sub), 0o700, "CA directory");
            assert_eq!(mode(&sub.join(KEY_FILE)), 0o600, "CA key");
        }
        let again = Ca::open(dir.path()).unwrap();
        assert_eq!(again.verifying_key(), ca.verifying_key());
        assert_eq!(again.subject(), "CN=ukey test CA,O=ukey");

        let user = SigningKey::random(&mut rand::rngs::OsRng);
        let spki = SubjectPublicKeyInfoOwned::from_key(*user.verifying_key()).unwrap().to_der().unwrap();
        let der = ca.issue(&parse_name("CN=alice").unwrap(), &spki, NOW, NOW + 365 * DAY).unwrap();
        assert!(ca.verify_issued(&der));
        let other = Ca::create(&dir.path().join("other"), "CN=other", 10, &FixedClock(NOW)).unwrap();
        assert!(!other.verify_issued(&der));

        let cert = Certificate::from_der(&der).unwrap();
        assert_eq!(cert.tbs_certificate.issuer.to_string(), "CN=ukey test CA,O=ukey");
        let exts = cert.tbs_certificate.extensions.unwrap();
        let eku = exts.iter().find(|e| e.extn_id == der::oid::db::rfc5280::ID_CE_EXT_KEY_USAGE).unwrap();
        assert_eq!(ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).unwrap().0, vec![CLIENT_AUTH]);
        let ku = exts.iter().find(|e| e.extn_id == der::oid::db::rfc5280::ID_CE_KEY_USAGE).unwrap();
        assert!(KeyUsage::from_der(ku.extn_value.as_bytes()).unwrap().digital_signature());
        let _ = KeyUsages::DigitalSignature;
        assert!(matches!(ca.issue(&parse_name("CN=a").unwrap(), &spki, NOW, NOW), Err(CaError::EmptyValidity { .. })));
    }

    #[test]
    fn open_reports_missing_and_mismatched_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = Ca::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("ca.key.pem"), "{err}");
        Ca::create(&dir.path().join("a"), "CN=a", 10, &FixedClock(NOW)).unwrap();
        Ca::create(&dir.path().join("b"), "CN=b", 10, &FixedClock(NOW)).unwrap();
        fs::copy(dir.path().join("b/ca.crt.pem"), dir.path().join("a/ca.crt.pem")).unwrap();
        let err = Ca::open(&dir.path().join("a")).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn the_credit_code_is_written_by_name() {
        let n = parse_name("CN=张三,organizationIdentifier=91350100M000100Y43,O=示例\\,科技").unwrap();
        let direct = name_from(&[
            (attr::ORGANIZATION, "示例,科技"),
            (attr::ORGANIZATION_ID, "91350100M000100Y43"),
            (attr::COMMON_NAME, "张三"),
        ])
        .unwrap();
        assert_eq!(n.to_der().unwrap(), direct.to_der().unwrap(), "same attributes, UTF8String values");
        // Only as an attribute's name: in a value the word stays as it is.
        let n = parse_name("CN=a\\,organizationIdentifier\\=x").unwrap();
        assert_eq!(n.to_string(), "CN=a\\,organizationIdentifier=x");
        assert!(parse_name("O=示例科技有限公司,CN=张三").is_ok(), "non-ASCII before a key");
        let lower = parse_name("organizationidentifier=1+CN=a").unwrap();
        assert_eq!(lower.0.len(), 1);
        assert_eq!(lower.0[0].0.len(), 2, "multi-valued RDN");
    }

    #[test]
    fn bad_names_are_explained() {
        let err = parse_name("not a name").unwrap_err().to_string();
        assert!(err.contains("RFC 4514"), "{err}");
    }

    #[test]
    fn csr_is_checked_and_issued() {
        use x509_cert::builder::RequestBuilder;
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), "CN=ca", 10, &FixedClock(NOW)).unwrap();
        let user = SigningKey::random(&mut rand::rngs::OsRng);
        let csr = RequestBuilder::new(parse_name("CN=bob,O=Example").unwrap(), &user)
            .unwrap()
            .build::<DerSignature>()
            .unwrap()
            .to_der()
            .unwrap();
        let der = ca.issue_from_csr(&csr, 30, &FixedClock(NOW)).unwrap();
        let cert = Certificate::from_der(&der).unwrap();
        assert_eq!(cert.tbs_certificate.subject.to_string(), "CN=bob,O=Example");
        // Flip a bit inside the signed part: the CSR no longer verifies.
        let mut bad = csr.clone();
        let n = bad.len() / 2;
        bad[n] ^= 1;
        assert!(ca.issue_from_csr(&bad, 30, &FixedClock(NOW)).is_err());

        // The issuer's subject wins over the request's; values need no escaping.
        let name = name_from(&[(attr::ORGANIZATION, "示例科技有限公司, 北京"), (attr::COMMON_NAME, "张三")]).unwrap();
        let der = ca.issue_for_request(&csr, &name, NOW, NOW + DAY).unwrap();
        let cert = Certificate::from_der(&der).unwrap();
        assert_eq!(cert.tbs_certificate.subject, name);
        assert!(cert.tbs_certificate.subject.to_string().contains("CN=张三"), "{}", cert.tbs_certificate.subject);
        assert!(ca.issue_for_request(&bad, &name, NOW, NOW + DAY).is_err());
    }
}
