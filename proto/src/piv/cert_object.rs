//! The certificate data object of a key slot (SP 800-73-4 part 1, tables 10 and 15-20):
//! `53 { 70 <certificate>, 71 <CertInfo>, FE <error detection code> }`. The card stores it,
//! the host writes and reads it, the conformance checks judge it: one definition for all.

use crate::tlv::{self, Full, Sink, TlvError};

/// The certificate itself (DER, or gzip when CertInfo says so).
pub const CERTIFICATE: u32 = 0x70;
/// CertInfo: 00 uncompressed, 01 gzip-compressed.
pub const CERT_INFO: u32 = 0x71;
/// Error detection code: always empty.
pub const ERROR_DETECTION: u32 = 0xFE;

/// A certificate object, read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertObject<'a> {
    /// The certificate as stored: DER, or gzip when [`CertObject::compressed`].
    pub certificate: &'a [u8],
    /// CertInfo (71), as found (one byte where the standard is kept; older cards omit it).
    pub cert_info: Option<&'a [u8]>,
    /// Whether the error detection code (FE) was there.
    pub has_error_detection: bool,
}

impl CertObject<'_> {
    /// CertInfo's compression bit (01) is set.
    pub fn compressed(&self) -> bool {
        self.cert_info.and_then(|i| i.first()).is_some_and(|b| b & 0x01 != 0)
    }
}

/// What is wrong with an object that should hold a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(thiserror::Error))]
pub enum CertObjectError {
    #[cfg_attr(feature = "std", error("not BER-TLV: {0}"))]
    Tlv(TlvError),
    #[cfg_attr(feature = "std", error("the object has no certificate (tag 70)"))]
    NoCertificate,
}

impl From<TlvError> for CertObjectError {
    fn from(e: TlvError) -> Self {
        CertObjectError::Tlv(e)
    }
}

/// Read the value inside the object's `53` (what GET DATA's 53 holds, as the host reads it).
pub fn decode_body(body: &[u8]) -> Result<CertObject<'_>, CertObjectError> {
    let certificate = tlv::find(body, CERTIFICATE)?.ok_or(CertObjectError::NoCertificate)?;
    Ok(CertObject {
        certificate,
        cert_info: tlv::find(body, CERT_INFO)?,
        has_error_detection: tlv::find(body, ERROR_DETECTION)?.is_some(),
    })
}

/// Read a whole object, `53` included (as the card stores it).
pub fn decode(object: &[u8]) -> Result<CertObject<'_>, CertObjectError> {
    decode_body(tlv::parse_exact(object, 0x53)?)
}

/// Write the value inside `53` for an uncompressed DER certificate: `70 <der> 71 01 00 FE 00`.
pub fn encode_body<S: Sink + ?Sized>(out: &mut S, der: &[u8]) -> Result<(), Full> {
    tlv::write(out, CERTIFICATE, der)?;
    tlv::write(out, CERT_INFO, &[0x00])?;
    tlv::write(out, ERROR_DETECTION, &[])
}

/// The value inside `53`, owned.
#[cfg(feature = "alloc")]
pub fn body(der: &[u8]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::with_capacity(der.len() + 12);
    let _ = encode_body(&mut out, der);
    out
}

/// The whole object, `53` included.
#[cfg(feature = "alloc")]
pub fn encode(der: &[u8]) -> alloc::vec::Vec<u8> {
    tlv::to_vec(0x53, &body(der))
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_every_length_form() {
        for len in [0usize, 1, 127, 128, 255, 256, 1900, 3000] {
            let der: alloc::vec::Vec<u8> = (0..len).map(|i| i as u8).collect();
            let object = encode(&der);
            let read = decode(&object).unwrap();
            assert_eq!(read.certificate, &der[..]);
            assert!(!read.compressed() && read.cert_info == Some(&[0][..]) && read.has_error_detection);
            assert_eq!(decode_body(&body(&der)).unwrap(), read);
        }
    }

    #[test]
    fn reads_what_other_writers_write() {
        // Compressed, and an older card's object without CertInfo or EDC.
        let gz = [0x70, 0x02, 0x1F, 0x8B, 0x71, 0x01, 0x01, 0xFE, 0x00];
        assert!(decode_body(&gz).unwrap().compressed());
        let bare = decode_body(&[0x70, 0x01, 0x30]).unwrap();
        assert_eq!((bare.certificate, bare.cert_info, bare.has_error_detection), (&[0x30][..], None, false));
        assert_eq!(decode_body(&[0x71, 0x01, 0x00]), Err(CertObjectError::NoCertificate));
        assert!(matches!(decode_body(&[0x70, 0x05, 0x30]), Err(CertObjectError::Tlv(_))));
    }
}
