//! The command-line plumbing the examples share, pulled into each with
//! `#[path = "common/cli.rs"] mod cli;`. Cargo builds only `examples/*.rs` and
//! `examples/*/main.rs` as examples, so this file is not one.
//!
//! Flags are `--flag value` or `--flag=value`; `-h` or `--help` prints the usage and exits 0, and
//! a bad argument prints a message and the usage to stderr and exits 2.

// Each example uses only part of this file.
#![allow(dead_code)]

use std::io;
use std::process::ExitCode;
use std::time::Duration;

/// Why parsing ended early.
pub enum Stop {
    /// `-h` or `--help`.
    Help,
    /// A bad argument, with a message naming it.
    Bad(String),
}

impl From<String> for Stop {
    fn from(msg: String) -> Stop {
        Stop::Bad(msg)
    }
}

impl From<&str> for Stop {
    fn from(msg: &str) -> Stop {
        Stop::Bad(msg.to_owned())
    }
}

/// Parses the command line of `program` with `parse`.
///
/// # Errors
///
/// The exit code `main` should return: success once `--help` has printed `usage`, 2 once a bad
/// argument has been reported on stderr.
pub fn parse<T>(
    program: &str,
    usage: &str,
    parse: impl FnOnce(&mut Args) -> Result<T, Stop>,
) -> Result<T, ExitCode> {
    let mut args = Args { rest: std::env::args().skip(1) };
    match parse(&mut args) {
        Ok(opts) => Ok(opts),
        Err(Stop::Help) => {
            println!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(Stop::Bad(msg)) => {
            eprintln!("{program}: {msg}\n\n{usage}");
            Err(ExitCode::from(2))
        }
    }
}

/// The arguments not read yet.
pub struct Args {
    rest: std::iter::Skip<std::env::Args>,
}

impl Args {
    /// The next argument, `None` at the end.
    ///
    /// # Errors
    ///
    /// [`Stop::Help`] for `-h` or `--help`.
    pub fn next(&mut self) -> Result<Option<Flag<'_>>, Stop> {
        let Some(arg) = self.rest.next() else { return Ok(None) };
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value.into())),
            _ => (arg, None),
        };
        match name.as_str() {
            "-h" | "--help" => Err(Stop::Help),
            _ => Ok(Some(Flag { name, inline, rest: &mut self.rest })),
        }
    }
}

/// One argument: a flag, whose value is the part after `=` or else the next argument, or a
/// plain word.
pub struct Flag<'a> {
    name: String,
    inline: Option<String>,
    rest: &'a mut std::iter::Skip<std::env::Args>,
}

impl Flag<'_> {
    /// The flag, without any `=value`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The flag's value.
    ///
    /// # Errors
    ///
    /// There is none.
    pub fn value(&mut self) -> Result<String, Stop> {
        let value = self.inline.take().or_else(|| self.rest.next());
        value.ok_or_else(|| Stop::Bad(format!("{} needs a value", self.name)))
    }

    /// The flag's value, converted by `convert`; `what` names what it wants in the error.
    ///
    /// # Errors
    ///
    /// There is no value, or `convert` returns `None`.
    pub fn value_as<T>(
        &mut self,
        what: &str,
        convert: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, Stop> {
        let text = self.value()?;
        convert(&text).ok_or_else(|| Stop::Bad(format!("{} wants {what}, not {text:?}", self.name)))
    }

    /// The flag's value as a positive integer.
    ///
    /// # Errors
    ///
    /// There is no value, or it is not a positive integer.
    pub fn positive(&mut self) -> Result<usize, Stop> {
        self.value_as("a positive integer", |text| text.parse().ok().filter(|&n| n > 0))
    }

    /// The flag's value in seconds, fractions allowed; zero only if `zero_ok`.
    ///
    /// # Errors
    ///
    /// There is no value, or it is not a number of seconds.
    pub fn seconds(&mut self, zero_ok: bool) -> Result<Duration, Stop> {
        self.value_as("a number of seconds", |text| {
            let secs = Duration::try_from_secs_f64(text.parse().ok()?).ok()?;
            (zero_ok || !secs.is_zero()).then_some(secs)
        })
    }

    /// The error for an argument the program does not know.
    pub fn unknown(&self) -> Stop {
        Stop::Bad(format!("unknown argument {:?}", self.name))
    }
}

/// A weft runtime with `workers` workers, or weft's default number (`WEFT_WORKERS`, else one
/// per core) for `None`.
///
/// # Errors
///
/// The runtime did not start.
pub fn runtime(workers: Option<usize>) -> io::Result<weft::Runtime> {
    let mut builder = weft::Runtime::builder();
    if let Some(n) = workers {
        builder = builder.workers(n);
    }
    builder.build()
}
