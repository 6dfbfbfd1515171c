//! The CA's CRL judged by openssl: the signature verifies under the CA, nextUpdate is there,
//! `openssl verify -crl_check` rejects the revoked certificate and accepts the other, and
//! issued certificates name the CRL's URL.

use std::path::Path;
use std::process::Command;

use ca::crl::{Reason, Revoked};
use ca::{parse_name, Ca, DAY};
use der::{Decode, Encode};
use p256::ecdsa::SigningKey;
use proto::clock::FixedClock;
use spki::SubjectPublicKeyInfoOwned;

const NOW: u64 = 1_790_000_000;
const URL: &str = "http://portal.example/pki/ca.crl";

fn issue(ca: &Ca, cn: &str) -> Vec<u8> {
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    let spki = SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).unwrap().to_der().unwrap();
    ca.issue(&parse_name(&format!("CN={cn}")).unwrap(), &spki, NOW - 60, NOW + 365 * DAY).unwrap()
}

fn pem(path: &Path, label: &str, der: &[u8]) {
    std::fs::write(path, der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()).unwrap();
}

fn openssl(args: &[&str]) -> Option<(bool, String)> {
    match Command::new("openssl").args(args).output() {
        Ok(o) => Some((
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        )),
        Err(e) => {
            testsupport::skip(format_args!("openssl as the judge ({e})"));
            None
        }
    }
}

#[test]
fn openssl_verifies_the_crl_and_rejects_the_revoked_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::create(&d.join("ca"), "CN=Portal CA,O=ukey", 3650, &FixedClock(NOW - 100)).unwrap().with_crl_url(URL);
    let (good, bad) = (issue(&ca, "good"), issue(&ca, "bad"));
    let serial =
        |der: &[u8]| x509_cert::Certificate::from_der(der).unwrap().tbs_certificate.serial_number.as_bytes().to_vec();
    let revoked = [Revoked { serial: serial(&bad), revoked_at: NOW, reason: Reason::KeyCompromise }];
    // openssl checks against the wall clock: a list valid from now.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let crl = ca.crl(&revoked, 7, now - 60, now + DAY).unwrap();

    let ca::crl::CrlInfo { this_update: this, next_update: next, entries } = ca::crl::parse(&crl).unwrap();
    assert_eq!((this, next), (now - 60, Some(now + DAY)));
    assert_eq!(entries, vec![(serial(&bad), Some(Reason::KeyCompromise))]);
    assert!(matches!(ca.crl(&[], 8, now, now), Err(ca::CaError::EmptyValidity { .. })));

    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    pem(&d.join("ca.pem"), "CERTIFICATE", &ca.certificate_der());
    pem(&d.join("crl.pem"), "X509 CRL", &crl);
    pem(&d.join("good.pem"), "CERTIFICATE", &good);
    pem(&d.join("bad.pem"), "CERTIFICATE", &bad);
    std::fs::write(d.join("crl.der"), &crl).unwrap();

    let Some((ok, out)) =
        openssl(&["crl", "-inform", "DER", "-in", &p("crl.der"), "-CAfile", &p("ca.pem"), "-noout", "-text"])
    else {
        return;
    };
    assert!(ok && out.contains("verify OK"), "{out}");
    assert!(out.contains("Next Update"), "{out}");
    assert!(out.contains("Key Compromise"), "{out}");
    assert!(out.contains("X509v3 CRL Number") && out.contains("7"), "{out}");

    let verify = |cert: &str| {
        openssl(&["verify", "-crl_check", "-CAfile", &p("ca.pem"), "-CRLfile", &p("crl.pem"), &p(cert)]).unwrap()
    };
    let (ok, out) = verify("bad.pem");
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = verify("good.pem");
    assert!(ok, "{out}");

    let (_, text) = openssl(&["x509", "-in", &p("good.pem"), "-noout", "-text"]).unwrap();
    assert!(text.contains("CRL Distribution Points") && text.contains(URL), "{text}");
}
