//! Phase timings of a mica command: with `MICA_TRACE=1` in the environment
//! (or after [`enable`], e.g. for `--debug`), every [`phase`] prints
//!
//! ```text
//! mica: trace: <phase> <ms>
//! ```
//!
//! on stderr at once: the milliseconds since the previous phase (or since
//! [`start`], or the first use). `mica bench` reads these lines. (Lives beside `log`: every layer may call it.)
//!
//! Call it in the *parent* only: [`phase`] allocates and takes a lock, so it
//! must never run in the cloned child before `execve`. The child's phases are
//! measured by the parent from the child's sync messages and logged with
//! [`record`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
static LAST: Mutex<Option<Instant>> = Mutex::new(None);

/// The prefix of every trace line.
pub const PREFIX: &str = "mica: trace: ";

/// Is tracing on (`MICA_TRACE` set to anything but `0` or empty, or [`enable`]d)?
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let on = std::env::var_os("MICA_TRACE").is_some_and(|v| !v.is_empty() && v != "0");
            // enable() may have raced us: never turn it off again.
            let _ = STATE.compare_exchange(
                UNKNOWN,
                if on { ON } else { OFF },
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            STATE.load(Ordering::Relaxed) == ON
        }
    }
}

/// Turn tracing on (for `--debug`).
pub fn enable() {
    STATE.store(ON, Ordering::Relaxed);
}

/// Reset the clock: the next [`phase`] measures from now. Call it first
/// thing in `main` so the first phase includes argument parsing.
pub fn start() {
    if let Ok(mut l) = LAST.lock() {
        *l = Some(Instant::now());
    }
}

/// End the phase `name`: log the time since the previous phase ended.
/// Returns the duration (also when tracing is off, then nothing is printed).
pub fn phase(name: &str) -> Duration {
    let now = Instant::now();
    let d = match LAST.lock() {
        Ok(mut l) => {
            let d = l.map(|t| now.duration_since(t)).unwrap_or_default();
            *l = Some(now);
            d
        }
        Err(_) => Duration::ZERO,
    };
    if enabled() {
        emit(name, d);
    }
    d
}

/// Log a phase measured elsewhere (e.g. a child's step, timed by the parent
/// from its sync messages). Does not move the clock of [`phase`].
pub fn record(name: &str, d: Duration) {
    if enabled() {
        emit(name, d);
    }
}

/// The line [`phase`] prints, without the newline.
pub fn format_line(name: &str, d: Duration) -> String {
    format!("{PREFIX}{name} {:.3}", d.as_secs_f64() * 1000.0)
}

fn emit(name: &str, d: Duration) {
    use std::io::Write;
    // One write per line, so lines of concurrent processes do not interleave.
    let line = format_line(name, d) + "\n";
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Parse a trace line (`mica: trace: NAME MS`) into (name, ms).
pub fn parse_line(line: &str) -> Option<(String, f64)> {
    let rest = line.trim_end().split_once(PREFIX)?.1;
    let (name, ms) = rest.rsplit_once(' ')?;
    let ms: f64 = ms.parse().ok()?;
    (!name.is_empty()).then(|| (name.to_string(), ms))
}
