//! TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps) with replay protection: a code is
//! accepted for the current step or one step either side, and never for a step at or before
//! the last one used.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use time::OffsetDateTime;

pub const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;

/// The code for one time step.
#[must_use]
pub fn code_at_step(secret: &[u8], step: u64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        value % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

#[must_use]
pub fn step_of(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp().div_euclid(STEP_SECONDS)).unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the MFA code must be 6 digits")]
    Malformed,
    #[error("the MFA code is wrong or too old")]
    Wrong,
    #[error("the MFA code was already used; wait for the next one")]
    Replayed,
}

/// Checks `code` at `now`; on success returns the step it matched, which the caller stores
/// as the last used step.
pub fn verify(
    secret: &[u8],
    code: &str,
    now: OffsetDateTime,
    last_used_step: Option<u64>,
) -> Result<u64, TotpError> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Malformed);
    }
    let current = step_of(now);
    let matched = [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .find(|&step| {
            crate::secret::constant_time_eq(code_at_step(secret, step).as_bytes(), code.as_bytes())
        })
        .ok_or(TotpError::Wrong)?;
    if last_used_step.is_some_and(|last| matched <= last) {
        return Err(TotpError::Replayed);
    }
    Ok(matched)
}

/// Base32 (RFC 4648) without padding, as authenticator apps read secrets.
#[must_use]
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes [`base32`] text (case-insensitive, padding ignored); `None` on other characters.
#[must_use]
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).expect("masked to a byte"));
        }
    }
    Some(out)
}

/// The `otpauth://` URI authenticator apps scan.
#[must_use]
pub fn uri(user: &str, secret: &[u8]) -> String {
    let label = percent_encoding::utf8_percent_encode(user, percent_encoding::NON_ALPHANUMERIC);
    format!(
        "otpauth://totp/Sesame:{label}?secret={}&issuer=Sesame&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_vectors_for_sha1() {
        // Appendix B gives 8 digits; the last 6 are the 6-digit code.
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            let step = u64::try_from(t / 30).unwrap();
            assert_eq!(code_at_step(RFC_SECRET, step), eight[2..], "t = {t}");
        }
    }

    #[test]
    fn codes_work_once_within_a_step_either_side() {
        let now = OffsetDateTime::from_unix_timestamp(1_234_567_890).unwrap();
        let step = step_of(now);
        let code = code_at_step(RFC_SECRET, step);
        assert_eq!(verify(RFC_SECRET, &code, now, None), Ok(step));
        assert_eq!(
            verify(RFC_SECRET, &code, now, Some(step)),
            Err(TotpError::Replayed)
        );
        let previous = code_at_step(RFC_SECRET, step - 1);
        assert_eq!(verify(RFC_SECRET, &previous, now, None), Ok(step - 1));
        let stale = code_at_step(RFC_SECRET, step - 2);
        assert_eq!(verify(RFC_SECRET, &stale, now, None), Err(TotpError::Wrong));
        assert_eq!(
            verify(RFC_SECRET, "12345", now, None),
            Err(TotpError::Malformed)
        );
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(from_base32("MZXW6YTBOI").unwrap(), b"foobar");
        assert_eq!(from_base32(&base32(RFC_SECRET)).unwrap(), RFC_SECRET);
        assert_eq!(from_base32("not base32!"), None);
        assert!(
            uri("alice", b"foobar")
                .starts_with("otpauth://totp/Sesame:alice?secret=MZXW6YTBOI&issuer=Sesame")
        );
    }
}
