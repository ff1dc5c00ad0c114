//! The binary's standard output. Lines are written as `println!` writes them, except that a reader gone away
//! (`fernando-cache process inbox | head -1`) ends the output, not the run: `println!` panics on a broken pipe;
//! here the rest of the output is dropped and the run finishes its work, its statistics and its exit code as it
//! would have. Output that fails otherwise (a full disk) ends the run's output too, and makes its exit code 2.

use std::{
    fmt,
    io::{self, Write},
    sync::atomic::{AtomicBool, Ordering},
};

/// The reader of standard output went away: nothing more is written.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Standard output failed for another reason than its reader leaving (a full disk): the run's output is
/// incomplete, and its exit code says so.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Whether standard output failed for another reason than a reader gone away (see [`FAILED`]).
pub(crate) fn failed() -> bool {
    FAILED.load(Ordering::Relaxed)
}

/// Writes `text` and a newline to standard output (see the module).
pub(crate) fn line(text: fmt::Arguments<'_>) {
    write_all(|out| {
        out.write_fmt(text)?;
        out.write_all(b"\n")
    });
}

/// Runs `write` on standard output, locked, unless its reader went away; a write that finds it gone ends the
/// output for the rest of the run.
pub(crate) fn write_all(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    let written = write(&mut out).and_then(|()| out.flush());
    if let Err(e) = written {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != io::ErrorKind::BrokenPipe {
            FAILED.store(true, Ordering::Relaxed);
            eprintln!("fernando-cache: cannot write the output: {e}");
        }
    }
}

/// `println!` through [`line()`]: never panics when standard output is gone.
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
