//! Names and times as certificates write them: RFC 4514 subject names (with the credit
//! code's organizationIdentifier), names from attribute pairs, X.509 times.

use std::str::FromStr;
use std::time::Duration;

use x509_cert::name::Name;
use x509_cert::time::Time;

use crate::error::{CaError, Result};

/// An X.509 time from Unix seconds: UTCTime through 2049, GeneralizedTime after (RFC 5280).
pub fn x509_time(unix: u64) -> Result<Time> {
    let dt = der::DateTime::from_unix_duration(Duration::from_secs(unix)).map_err(|e| CaError::Build(e.to_string()))?;
    Ok(if dt.year() < 2050 {
        Time::UtcTime(der::asn1::UtcTime::from_date_time(dt).map_err(|e| CaError::Build(e.to_string()))?)
    } else {
        Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(dt))
    })
}

/// A name in RFC 4514 form. `organizationIdentifier=` (the credit code, which x509-cert has
/// no short name for) may be written by name; its value is a UTF8String, as for any
/// attribute given by OID.
pub fn parse_name(name: &str) -> Result<Name> {
    const LONG: &str = "organizationIdentifier=";
    let mut spelled = String::with_capacity(name.len());
    let mut rest = name;
    // Only where an attribute starts: at the beginning, or after an unescaped ',' or '+'.
    let mut at_start = true;
    while !rest.is_empty() {
        if at_start && rest.get(..LONG.len()).is_some_and(|k| k.eq_ignore_ascii_case(LONG)) {
            spelled.push_str("2.5.4.97=");
            rest = &rest[LONG.len()..];
        }
        let mut chars = rest.char_indices();
        at_start = false;
        let mut cut = rest.len();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                chars.next();
            } else if c == ',' || c == '+' {
                cut = i + 1;
                at_start = true;
                break;
            }
        }
        spelled.push_str(&rest[..cut]);
        rest = &rest[cut..];
    }
    Name::from_str(&spelled).map_err(|e| CaError::BadName { name: name.to_string(), reason: e.to_string() })
}

/// A subject name from (attribute, value) pairs, most significant first, values as
/// UTF8String: no string syntax, so names with commas or Chinese need no escaping.
pub fn name_from(attributes: &[(der::oid::ObjectIdentifier, &str)]) -> Result<Name> {
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
    let bad = |e: der::Error| CaError::BadName { name: format!("{attributes:?}"), reason: e.to_string() };
    let mut rdns = Vec::new();
    for (oid, value) in attributes {
        let atv = AttributeTypeAndValue {
            oid: *oid,
            value: der::Any::new(der::Tag::Utf8String, value.as_bytes()).map_err(bad)?,
        };
        rdns.push(RelativeDistinguishedName(der::asn1::SetOfVec::try_from(vec![atv]).map_err(bad)?));
    }
    Ok(RdnSequence(rdns))
}

/// Name attributes used for certificates of people acting for an enterprise.
pub mod attr {
    use der::oid::ObjectIdentifier;
    pub const COUNTRY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
    pub const ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
    /// organizationIdentifier (X.520): the unified social credit code.
    pub const ORGANIZATION_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.97");
    pub const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    pub const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
}
