//! The `Date` header value, formatted at most once per second per thread.
//!
//! Every response carries `Date` (RFC 9110 §6.6.1). Formatting it costs more than the rest of
//! a small response head, so each thread keeps the last value and the second it names, and
//! formats anew only when the clock has moved on to another second.

use std::cell::RefCell;
use std::time::{Duration, UNIX_EPOCH};

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
    let second = coarse_seconds();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.second != second {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(second));
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

/// Seconds since the epoch from `CLOCK_REALTIME_COARSE`: the clock as of the last tick (a few
/// milliseconds at most), read without the TSC, which is all a one-second value needs.
fn coarse_seconds() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the call writes only to it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc == 0 {
        u64::try_from(ts.tv_sec).unwrap_or(0)
    } else {
        std::time::SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
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
