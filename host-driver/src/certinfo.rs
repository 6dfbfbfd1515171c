//! What the host reads out of a certificate: names, validity, public key.

use der::{Decode, Encode, Tag, Tagged};
use serde::Serialize;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::error::PivError;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    /// Unix seconds.
    pub not_before: u64,
    pub not_after: u64,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo, PivError> {
        let cert = Certificate::from_der(der).map_err(|e| PivError::malformed("read certificate", e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        Ok(CertInfo {
            subject: display_name(&tbs.subject),
            issuer: display_name(&tbs.issuer),
            serial: hex::encode_upper(tbs.serial_number.as_bytes()),
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
        })
    }

    /// Whole days from `now` until expiry (negative when expired).
    pub fn days_left(&self, now: u64) -> i64 {
        (self.not_after as i64 - now as i64).div_euclid(86_400)
    }
}

/// Attributes of Chinese enterprise certificates that x509-cert has no short name for, so
/// its RFC 4514 form would print them as `2.5.4.97=#0c12...`.
const NAMED: &[(der::oid::ObjectIdentifier, &str)] =
    &[(der::oid::ObjectIdentifier::new_unwrap("2.5.4.97"), "organizationIdentifier")];

/// A name as people read it: RFC 4514 as x509-cert writes it, except that the attributes in
/// [`NAMED`] (organizationIdentifier: the unified social credit code) show their name and
/// text, e.g. `CN=张三,organizationIdentifier=91350100M000100Y43,O=示例科技有限公司,C=CN`.
pub fn display_name(name: &Name) -> String {
    let rdn =
        |r: &x509_cert::name::RelativeDistinguishedName| r.0.iter().map(display_attr).collect::<Vec<_>>().join("+");
    name.0.iter().rev().map(rdn).collect::<Vec<_>>().join(",")
}

fn display_attr(a: &AttributeTypeAndValue) -> String {
    let Some((_, key)) = NAMED.iter().find(|(oid, _)| *oid == a.oid) else { return a.to_string() };
    if !matches!(a.value.tag(), Tag::Utf8String | Tag::PrintableString) {
        return a.to_string();
    }
    // x509-cert escapes the text (RFC 4514) only for names it knows: let it write the value
    // as a CN, then put the right name in front.
    let as_cn = AttributeTypeAndValue { oid: der::oid::db::rfc4519::CN, value: a.value.clone() };
    match as_cn.to_string().strip_prefix("CN=") {
        Some(text) => format!("{key}={text}"),
        None => a.to_string(),
    }
}

/// The organizationIdentifier (X.520, 2.5.4.97) of a name: for Chinese enterprise
/// certificates, the unified social credit code of the enterprise the holder acts for. `None`
/// when the name has none, or holds it in a string type other than UTF8String/PrintableString,
/// or holds two (a name that says two things does not say which enterprise).
pub fn organization_id(name: &Name) -> Option<String> {
    let mut found = name.0.iter().flat_map(|rdn| rdn.0.iter()).filter(|a| a.oid == NAMED[0].0);
    let a = found.next()?;
    if found.next().is_some() || !matches!(a.value.tag(), Tag::Utf8String | Tag::PrintableString) {
        return None;
    }
    std::str::from_utf8(a.value.value()).ok().map(str::to_string)
}

/// The P-256 public key of a certificate.
pub fn public_key(der: &[u8]) -> Result<p256::PublicKey, PivError> {
    use p256::pkcs8::DecodePublicKey;
    let cert = Certificate::from_der(der).map_err(|e| PivError::malformed("read certificate", e.to_string()))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| PivError::malformed("read certificate", e.to_string()))?;
    p256::PublicKey::from_public_key_der(&spki)
        .map_err(|e| PivError::malformed("read certificate", format!("not a P-256 key: {e}")))
}

/// Format Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_time(unix: u64) -> String {
    match der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix)) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minutes(),
            dt.seconds()
        ),
        Err(_) => format!("@{unix}"),
    }
}

/// PEM for a DER certificate.
pub fn to_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// DER from PEM or DER input.
pub fn from_pem_or_der(bytes: &[u8]) -> Result<Vec<u8>, PivError> {
    if bytes.starts_with(b"-----BEGIN") {
        let (label, der) = der::pem::decode_vec(bytes).map_err(|e| PivError::Input(format!("bad PEM: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(PivError::Input(format!("PEM holds a {label}, expected a CERTIFICATE")));
        }
        Ok(der)
    } else {
        Ok(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_days() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_790_000_000), "2026-09-21 14:13:20 UTC");
        let c = CertInfo {
            subject: String::new(),
            issuer: String::new(),
            serial: String::new(),
            not_before: 0,
            not_after: 10 * 86_400,
        };
        assert_eq!(c.days_left(0), 10);
        assert_eq!(c.days_left(11 * 86_400), -1);
    }

    #[test]
    fn names_show_the_credit_code_by_name() {
        use std::str::FromStr;
        let oid = der::oid::ObjectIdentifier::new_unwrap("2.5.4.97");
        let mut name = Name::from_str("CN=Zhang San,O=Example Co,C=CN").unwrap();
        let code = AttributeTypeAndValue {
            oid,
            value: der::Any::new(Tag::Utf8String, " 9135,0100M000100Y43".as_bytes()).unwrap(),
        };
        name.0.insert(2, x509_cert::name::RelativeDistinguishedName(vec![code].try_into().unwrap()));
        assert!(name.to_string().starts_with("CN=Zhang San,2.5.4.97=#0c14"), "x509-cert's form: {name}");
        assert_eq!(
            display_name(&name),
            "CN=Zhang San,organizationIdentifier=\\ 9135\\,0100M000100Y43,O=Example Co,C=CN"
        );
        assert_eq!(organization_id(&name).as_deref(), Some(" 9135,0100M000100Y43"));
        assert_eq!(organization_id(&Name::from_str("CN=Zhang San,O=Example Co").unwrap()), None);
        let twice = name.0[2].clone();
        name.0.push(twice);
        assert_eq!(organization_id(&name), None, "two credit codes name no one enterprise");
    }

    #[test]
    fn pem_input_is_checked() {
        assert!(from_pem_or_der(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .unwrap_err()
            .to_string()
            .contains("expected a CERTIFICATE"));
        assert_eq!(from_pem_or_der(&[0x30, 0x00]).unwrap(), vec![0x30, 0x00]);
        assert!(CertInfo::parse(&[0x30, 0x00]).is_err());
        let pem = to_pem(&[0x30, 0x03, 0x02, 0x01, 0x05]);
        assert_eq!(from_pem_or_der(pem.as_bytes()).unwrap(), vec![0x30, 0x03, 0x02, 0x01, 0x05]);
    }
}
