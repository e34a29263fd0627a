//! The small pieces of HTTP/1.1 syntax (RFC 9110, RFC 9112) that the head parser and the
//! body decoders share: lengths, chunk-size lines, token lists and transfer codings.
//!
//! Every number on the wire is parsed here, by hand and strictly: `str::parse` accepts a
//! leading `+`, which a proxy in front of the server may not, and two parties that disagree on
//! a length is what request smuggling is made of.

/// Parses a `Content-Length` value: one or more ASCII digits, nothing else (no sign, no
/// whitespace, no list), and no overflow of `u64`.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Parses a chunk-size line without its line ending:
/// `1*HEXDIG *( BWS ";" BWS ext-name [ BWS "=" BWS ext-value ] )`.
///
/// The size must not overflow `u64`. Extensions are ignored, but they must be made of visible
/// characters, spaces and tabs, and must start with `;`: a size followed by anything else
/// (`5 x`, `0x5`, `5\0`) is malformed.
pub(crate) fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    let size = line[..digits].iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(digit))
    })?;
    let rest = &line[digits..];
    let ext = trim_start_ws(rest);
    if ext.is_empty() && rest.is_empty() {
        return Some(size);
    }
    // Whitespace after the size is only allowed before an extension.
    if ext.first() != Some(&b';') {
        return None;
    }
    ext.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)).then_some(size)
}

/// The comma-separated elements of a list-valued header, with optional whitespace trimmed and
/// empty elements skipped (RFC 9110 §5.6.1).
pub(crate) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ws).filter(|e| !e.is_empty())
}

/// Whether a token list (`Connection`, say) holds `token`, ignoring ASCII case.
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    list(value).any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// What a request's `Transfer-Encoding` list amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    /// Exactly `chunked`: the only coding the server decodes.
    Chunked,
    /// A well-formed list of codings that ends in `chunked` but holds others too (`gzip,
    /// chunked`): understood syntax, unsupported coding (501).
    Unsupported,
    /// Anything else: empty, not ending in `chunked`, `chunked` twice, or not a token (400).
    Invalid,
}

/// Classifies the codings of every `Transfer-Encoding` field of a request, in order.
pub(crate) fn transfer_coding<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Coding {
    let mut codings = 0;
    let mut chunked_at = None;
    for field in fields {
        if list(field).next().is_none() {
            return Coding::Invalid;
        }
        for coding in list(field) {
            if !coding.iter().all(|&b| is_tchar(b)) {
                return Coding::Invalid;
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                if chunked_at.is_some() {
                    return Coding::Invalid;
                }
                chunked_at = Some(codings);
            }
            codings += 1;
        }
    }
    match chunked_at {
        Some(i) if i + 1 == codings && codings == 1 => Coding::Chunked,
        Some(i) if i + 1 == codings => Coding::Unsupported,
        _ => Coding::Invalid,
    }
}

/// RFC 9110's `tchar`: the characters of a token.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_start_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
    &s[n..]
}

fn trim_ws(s: &[u8]) -> &[u8] {
    let s = trim_start_ws(s);
    let n = s.iter().rev().take_while(|b| matches!(b, b' ' | b'\t')).count();
    &s[..s.len() - n]
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `n` in lower-case hexadecimal (a chunk size).
pub(crate) fn push_hex(out: &mut Vec<u8>, n: u64) {
    let width = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..width).rev() {
        out.push(b"0123456789abcdef"[(n >> (shift * 4)) as usize & 0xf]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_digits_only() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"0042"), Some(42));
        assert_eq!(parse_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in
            [&b""[..], b"+3", b"-1", b" 3", b"3 ", b"3,3", b"0x10", b"1e3", b"18446744073709551616"]
        {
            assert_eq!(parse_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn chunk_sizes_are_hex_with_bounded_syntax() {
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"1aF"), Some(0x1af));
        assert_eq!(parse_chunk_size(b"5;name=value"), Some(5));
        assert_eq!(parse_chunk_size(b"5 ; name=\"v\""), Some(5));
        assert_eq!(parse_chunk_size(b"ffffffffffffffff"), Some(u64::MAX));
        for bad in
            [&b""[..], b"x", b"+5", b"-5", b"0x5", b"5 x", b"5 ", b"5;\0", b"10000000000000000"]
        {
            assert_eq!(parse_chunk_size(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn transfer_codings_accept_chunked_alone() {
        let one = |v: &'static [u8]| transfer_coding(std::iter::once(v));
        assert_eq!(one(b"chunked"), Coding::Chunked);
        assert_eq!(one(b"Chunked"), Coding::Chunked);
        assert_eq!(one(b" chunked "), Coding::Chunked);
        assert_eq!(one(b"gzip, chunked"), Coding::Unsupported);
        for bad in [
            &b""[..],
            b"chunked, gzip",
            b"chunked, chunked",
            b"xchunked",
            b"chunked\x0b",
            b"\"chunked\"",
            b"identity",
        ] {
            assert_eq!(one(bad), Coding::Invalid, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(transfer_coding([&b"chunked"[..], b"chunked"].into_iter()), Coding::Invalid);
        assert_eq!(transfer_coding([&b"gzip"[..], b"chunked"].into_iter()), Coding::Unsupported);
    }

    #[test]
    fn token_lists() {
        assert!(has_token(b"keep-alive, Close", "close"));
        assert!(!has_token(b"closed", "close"));
    }

    #[test]
    fn numbers_format() {
        let mut out = Vec::new();
        for n in [0, 7, 10, 12345, u64::MAX] {
            out.clear();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
            out.clear();
            push_hex(&mut out, n);
            assert_eq!(out, format!("{n:x}").as_bytes());
        }
    }
}
