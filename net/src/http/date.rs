//! The `Date` header value, formatted at most once per second per thread.
//!
//! Every response carries `Date` (RFC 9110 §6.6.1). Formatting it costs more than the rest of
//! a small response head, so each thread keeps the last value and the second it names, and
//! formats anew only when the clock has moved on to another second.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// An IMF-fixdate is always this long: `Sun, 06 Nov 1994 08:49:37 GMT`.
const LEN: usize = 29;

struct Cached {
    second: u64,
    text: [u8; LEN],
}

thread_local! {
    static CACHE: RefCell<Cached> = const { RefCell::new(Cached { second: u64::MAX, text: [0; LEN] }) };
}

/// Appends the current `Date` value to `out`.
///
/// Never inlined and never switching coroutines: a coroutine may move to another thread
/// between calls, and the thread-local's address must be taken afresh each time.
#[inline(never)]
pub(crate) fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.second != second {
            let text = httpdate::fmt_http_date(now);
            if text.len() == LEN {
                cache.text.copy_from_slice(text.as_bytes());
                cache.second = second;
            } else {
                // Only a date before 1970 or after 9999 formats otherwise; send it uncached.
                out.extend_from_slice(text.as_bytes());
                return;
            }
        }
        out.extend_from_slice(&cache.text);
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_is_an_imf_fixdate_of_now() {
        let mut out = Vec::new();
        super::push_date(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        let parsed = httpdate::parse_http_date(text).unwrap();
        let skew = std::time::SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew.as_secs() < 5, "{text}");
        assert!(text.ends_with(" GMT"), "{text}");
    }
}
