//! Shared pieces of weft-bench's binaries.

/// The `--addr ADDR` (default `127.0.0.1:8080`) and `--workers N` flags of the peer servers.
///
/// # Panics
///
/// On a flag it does not know or a value that does not parse, with a message naming it: these
/// are benchmark tools, run by scripts.
pub fn peer_args() -> (String, Option<usize>) {
    let mut addr = String::from("127.0.0.1:8080");
    let mut workers = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => addr = value,
            "--workers" => {
                workers = Some(value.parse().unwrap_or_else(|_| panic!("bad --workers {value}")))
            }
            _ => panic!("unknown flag {flag}; flags: --addr ADDR --workers N"),
        }
    }
    (addr, workers)
}
