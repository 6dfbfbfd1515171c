//! BER-TLV as PIV uses it (ISO 7816-4 annex D): tags of up to three bytes, definite lengths
//! of up to three length bytes. Parsing is zero-copy; writing goes to any [`Sink`].
//!
//! Written here rather than taken from a crate because PIV's tags (5FC105, 7F49) and the
//! card's allocation-free buffers need both sides in one small, no_std module.

/// A tag-length-value item borrowing its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag bytes read as a big-endian number: `0x7E`, `0x7F49`, `0x5FC105`.
    pub tag: u32,
    pub value: &'a [u8],
}

/// Why bytes are not well-formed TLV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(thiserror::Error))]
pub enum TlvError {
    #[cfg_attr(feature = "std", error("TLV truncated"))]
    Truncated,
    #[cfg_attr(feature = "std", error("TLV tag longer than three bytes"))]
    TagTooLong,
    #[cfg_attr(feature = "std", error("TLV length form not supported"))]
    BadLength,
}

/// Read one TLV from the front of `input`; returns it and what follows it.
pub fn parse(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let first = *input.first().ok_or(TlvError::Truncated)?;
    let mut tag = first as u32;
    let mut pos = 1;
    if first & 0x1F == 0x1F {
        loop {
            let b = *input.get(pos).ok_or(TlvError::Truncated)?;
            tag = (tag << 8) | b as u32;
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
            if pos >= 3 {
                return Err(TlvError::TagTooLong);
            }
        }
    }
    let l0 = *input.get(pos).ok_or(TlvError::Truncated)?;
    pos += 1;
    let len = match l0 {
        0..=0x7F => l0 as usize,
        0x81..=0x83 => {
            let n = (l0 & 0x7F) as usize;
            let bytes = input.get(pos..pos + n).ok_or(TlvError::Truncated)?;
            pos += n;
            bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize)
        }
        _ => return Err(TlvError::BadLength),
    };
    let value = input.get(pos..pos + len).ok_or(TlvError::Truncated)?;
    Ok((Tlv { tag, value }, &input[pos + len..]))
}

/// Read exactly one TLV that fills `input` entirely.
pub fn parse_exact(input: &[u8], tag: u32) -> Result<&[u8], TlvError> {
    match parse(input)? {
        (t, []) if t.tag == tag => Ok(t.value),
        _ => Err(TlvError::BadLength),
    }
}

/// Iterate over consecutive TLVs.
pub fn iter(input: &[u8]) -> Iter<'_> {
    Iter { rest: input }
}

pub struct Iter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<Tlv<'a>, TlvError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match parse(self.rest) {
            Ok((tlv, rest)) => {
                self.rest = rest;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// The value of the first TLV with `tag` among consecutive TLVs.
pub fn find(input: &[u8], tag: u32) -> Result<Option<&[u8]>, TlvError> {
    for item in iter(input) {
        let item = item?;
        if item.tag == tag {
            return Ok(Some(item.value));
        }
    }
    Ok(None)
}

/// The buffer was too small for what had to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// Somewhere bytes can be appended: a heapless buffer on the card, a `Vec` on the host.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Full>;
}

impl<const N: usize> Sink for heapless::Vec<u8, N> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        self.extend_from_slice(bytes).map_err(|_| Full)
    }
}

#[cfg(feature = "alloc")]
impl Sink for alloc::vec::Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Number of bytes the encoded header (tag + length) takes.
pub fn header_len(tag: u32, len: usize) -> usize {
    tag_len(tag) + len_len(len)
}

fn tag_len(tag: u32) -> usize {
    match tag {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        _ => 3,
    }
}

fn len_len(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        0x100..=0xFFFF => 3,
        _ => 4,
    }
}

/// Write a tag and a length; the value is written by the caller (for nesting).
pub fn write_header<S: Sink + ?Sized>(out: &mut S, tag: u32, len: usize) -> Result<(), Full> {
    let t = tag.to_be_bytes();
    out.put(&t[4 - tag_len(tag)..])?;
    let l = (len as u32).to_be_bytes();
    match len_len(len) {
        1 => out.put(&[len as u8]),
        n => {
            out.put(&[0x80 | (n as u8 - 1)])?;
            out.put(&l[4 - (n - 1)..])
        }
    }
}

/// Write a whole TLV.
pub fn write<S: Sink + ?Sized>(out: &mut S, tag: u32, value: &[u8]) -> Result<(), Full> {
    write_header(out, tag, value.len())?;
    out.put(value)
}

/// Encode one TLV into a new `Vec`.
#[cfg(feature = "alloc")]
pub fn to_vec(tag: u32, value: &[u8]) -> alloc::vec::Vec<u8> {
    let mut v = alloc::vec::Vec::with_capacity(header_len(tag, value.len()) + value.len());
    let _ = write(&mut v, tag, value);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn parses_piv_shapes() {
        let (t, rest) = parse(&[0x5F, 0xC1, 0x05, 0x02, 1, 2, 0xFF]).unwrap();
        assert_eq!((t.tag, t.value, rest), (0x5FC105, &[1u8, 2][..], &[0xFF][..]));
        let (t, _) = parse(&[0x7F, 0x49, 0x81, 0x01, 9]).unwrap();
        assert_eq!((t.tag, t.value), (0x7F49, &[9u8][..]));
        let (t, _) = parse(&[0x53, 0x82, 0x00, 0x01, 9]).unwrap();
        assert_eq!(t.value, &[9u8]);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse(&[]), Err(TlvError::Truncated));
        assert_eq!(parse(&[0x53, 0x05, 1]), Err(TlvError::Truncated));
        assert_eq!(parse(&[0x53, 0x84, 0, 0, 0, 1]), Err(TlvError::BadLength));
        assert_eq!(parse(&[0x5F, 0xC1, 0x85, 0x01, 0]), Err(TlvError::TagTooLong));
        assert_eq!(parse(&[0x5F]), Err(TlvError::Truncated));
    }

    #[test]
    fn write_then_parse_round_trips_all_length_forms() {
        for len in [0usize, 1, 0x7F, 0x80, 0xFF, 0x100, 3000, 70000] {
            let value = std::vec![0xA5u8; len];
            for tag in [0x53u32, 0x7F49, 0x5FC105] {
                let bytes = to_vec(tag, &value);
                assert_eq!(bytes.len(), header_len(tag, len) + len);
                let (t, rest) = parse(&bytes).unwrap();
                assert_eq!((t.tag, t.value.len(), rest.len()), (tag, len, 0));
            }
        }
    }

    #[test]
    fn find_and_iter() {
        let mut v: Vec<u8> = Vec::new();
        write(&mut v, 0x82, &[]).unwrap();
        write(&mut v, 0x81, &[1, 2, 3]).unwrap();
        assert_eq!(find(&v, 0x81).unwrap(), Some(&[1u8, 2, 3][..]));
        assert_eq!(find(&v, 0x85).unwrap(), None);
        assert_eq!(iter(&v).count(), 2);
        assert!(find(&[0x81, 0x05], 0x81).is_err());
    }

    #[test]
    fn heapless_sink_reports_full() {
        let mut small: heapless::Vec<u8, 4> = heapless::Vec::new();
        assert_eq!(write(&mut small, 0x53, &[1, 2, 3]), Err(Full));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            for item in iter(&bytes) { let _ = item; }
        }
    }
}
