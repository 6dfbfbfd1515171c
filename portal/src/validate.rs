//! Field checks of the certificate application form: the unified social credit code (GB 32100,
//! with its check character), the resident ID number (GB 11643, with its check digit and a real
//! birth date), mobile number and email. Each returns which rule failed, so the form can say it.

/// Why a field was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldError {
    Empty,
    Length,
    Characters,
    CheckDigit,
    BirthDate,
    Format,
    /// The field comes from a record (the enterprise's), not from what was typed.
    Fixed,
}

/// Characters of the unified social credit code, in value order (no I, O, Z, S, V).
const USCC_CHARS: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// The check character for the first 17 characters of a credit code.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in b.iter().zip(USCC_WEIGHTS) {
        sum += USCC_CHARS.iter().position(|x| x == c)? as u32 * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(USCC_CHARS[check as usize] as char)
}

/// 统一社会信用代码: 18 characters from the code's alphabet, the last a check character.
pub fn credit_code(code: &str) -> Result<(), FieldError> {
    let code = code.trim();
    if code.is_empty() {
        return Err(FieldError::Empty);
    }
    if code.chars().count() != 18 {
        return Err(FieldError::Length);
    }
    if !code.bytes().all(|c| USCC_CHARS.contains(&c)) {
        return Err(FieldError::Characters);
    }
    match uscc_check_char(&code[..17]) {
        Some(c) if code.ends_with(c) => Ok(()),
        _ => Err(FieldError::CheckDigit),
    }
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// The check character for the first 17 digits of a resident ID number.
pub fn id_check_char(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = b.iter().zip(ID_WEIGHTS).map(|(d, w)| (d - b'0') as u32 * w).sum();
    Some(ID_CHECK[(sum % 11) as usize] as char)
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

/// 居民身份证号码: 17 digits and a check character (0-9 or X), with a real birth date.
pub fn id_number(id: &str) -> Result<(), FieldError> {
    let id = id.trim();
    if id.is_empty() {
        return Err(FieldError::Empty);
    }
    if id.chars().count() != 18 {
        return Err(FieldError::Length);
    }
    let (body, last) = id.split_at(17);
    if !body.bytes().all(|c| c.is_ascii_digit()) || !matches!(last.as_bytes(), [b'0'..=b'9' | b'X' | b'x']) {
        return Err(FieldError::Characters);
    }
    let num = |r: std::ops::Range<usize>| body[r].parse::<u32>().unwrap_or(0);
    let (y, m, d) = (num(6..10), num(10..12), num(12..14));
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => 0,
    };
    if !(1900..=2100).contains(&y) || d == 0 || d > days {
        return Err(FieldError::BirthDate);
    }
    match id_check_char(body) {
        Some(c) if last.eq_ignore_ascii_case(&c.to_string()) => Ok(()),
        _ => Err(FieldError::CheckDigit),
    }
}

/// Mainland mobile number: 11 digits starting 13-19 (a +86 / 86 prefix is allowed).
pub fn mobile(m: &str) -> Result<(), FieldError> {
    let m = m.trim();
    if m.is_empty() {
        return Err(FieldError::Empty);
    }
    let m = m.strip_prefix("+86").or_else(|| m.strip_prefix("86").filter(|r| r.len() == 11)).unwrap_or(m);
    let b = m.as_bytes();
    if b.len() != 11 {
        return Err(FieldError::Length);
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return Err(FieldError::Characters);
    }
    if b[0] != b'1' || !(b'3'..=b'9').contains(&b[1]) {
        return Err(FieldError::Format);
    }
    Ok(())
}

/// An email address a mail system would accept: one @, a local part, a dotted domain.
pub fn email(e: &str) -> Result<(), FieldError> {
    let e = e.trim();
    if e.is_empty() {
        return Err(FieldError::Empty);
    }
    if e.len() > 254 {
        return Err(FieldError::Length);
    }
    let Some((local, domain)) = e.split_once('@') else { return Err(FieldError::Format) };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&c));
    let labels: Vec<&str> = domain.split('.').collect();
    if !local_ok || labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
        return Err(FieldError::Format);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_codes() {
        // Check characters computed by the GB 32100 rule, cross-checked by hand for the first.
        assert_eq!(uscc_check_char("91350100M000100Y4"), Some('3'));
        assert_eq!(credit_code("91350100M000100Y43"), Ok(()));
        let good = format!("91110108MA01{}", "ABCDE");
        let full = format!("{good}{}", uscc_check_char(&good).unwrap());
        assert_eq!(credit_code(&full), Ok(()));
        assert_eq!(credit_code("91350100M000100Y44"), Err(FieldError::CheckDigit));
        assert_eq!(credit_code("91350100M000100Y4"), Err(FieldError::Length));
        assert_eq!(credit_code("91350100I000100Y43"), Err(FieldError::Characters), "I is not in the alphabet");
        assert_eq!(credit_code("  "), Err(FieldError::Empty));
    }

    #[test]
    fn id_numbers() {
        // GB 11643's own example.
        assert_eq!(id_check_char("11010519491231002"), Some('X'));
        assert_eq!(id_number("11010519491231002X"), Ok(()));
        assert_eq!(id_number("11010519491231002x"), Ok(()), "lower-case x is the same");
        assert_eq!(id_number("110105194912310021"), Err(FieldError::CheckDigit));
        assert_eq!(id_number("110105194902300021"), Err(FieldError::BirthDate), "no 30 February");
        assert_eq!(id_number("11010519491231002"), Err(FieldError::Length));
        assert_eq!(id_number("1101051949123100AX"), Err(FieldError::Characters));
        let leap_day = "11010520000229001";
        assert_eq!(id_number(&format!("{leap_day}{}", id_check_char(leap_day).unwrap())), Ok(()));
        let not_leap = "11010519000229001";
        assert_eq!(id_number(&format!("{not_leap}{}", id_check_char(not_leap).unwrap())), Err(FieldError::BirthDate));
    }

    #[test]
    fn mobiles_and_emails() {
        assert_eq!(mobile("13800138000"), Ok(()));
        assert_eq!(mobile("+8613800138000"), Ok(()));
        assert_eq!(mobile("12800138000"), Err(FieldError::Format));
        assert_eq!(mobile("1380013800"), Err(FieldError::Length));
        assert_eq!(mobile("1380013800a"), Err(FieldError::Characters));
        assert_eq!(email("zhang.san@example.com.cn"), Ok(()));
        for bad in ["zhang", "@example.com", "a@b", "a..b@example.com", "a@-x.com", "a b@example.com"] {
            assert_eq!(email(bad), Err(FieldError::Format), "{bad}");
        }
        assert_eq!(email(""), Err(FieldError::Empty));
    }
}
