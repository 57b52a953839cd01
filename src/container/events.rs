//! `events`: a container's cgroup statistics and OOM kills as runc 1.1's
//! JSON lines (`{"type":"stats","id":ID,"data":{...}}`, `{"type":"oom","id":ID}`).

use super::error::{Error, Result};
use super::ops::load;
use super::state::{Dir, Proc, State, Status};
use crate::cgroups::{Cgroup, Stats};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often a stream looks for OOM kills and for the container's end
/// between two stats events.
const CHECK: Duration = Duration::from_millis(100);

pub struct EventsOptions {
    /// Time between two stats events (runc's default: 5 s).
    pub interval: Duration,
    /// Print one stats event and return.
    pub stats: bool,
}

/// runc's `types.Event`.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Stats>,
}

/// Print the container's events to `out`, one JSON object a line: with
/// `stats`, one stats event; else a stats event every interval (the first
/// after one interval, as runc's ticker) and an oom event whenever the OOM
/// killer killed one of its processes, until the container's init exits
/// (or the reader of `out` goes away). A stopped container is an error,
/// as with runc; a created or paused one has statistics too.
pub fn events(root: &Path, id: &str, o: &EventsOptions, out: &mut dyn Write) -> Result<()> {
    // The state dir's lock is held only to read the state: a stream that
    // held it would block kill and delete of the container.
    let st = {
        let dir = Dir::open(root, id)?;
        load(&dir, id)?
    };
    match st.status() {
        Status::Stopped => return Err(Error::Stopped(id.to_string())),
        Status::Creating => {
            return Err(Error::WrongState {
                op: "read events of",
                id: id.to_string(),
                status: Status::Creating,
            })
        }
        Status::Created | Status::Running | Status::Paused => {}
    }
    let cg = st.cgroup.as_ref();
    let mut w = Writer { out, id };
    if o.stats {
        w.stats(&stats(cg)?)?;
        return Ok(());
    }
    stream(&st, cg, o.interval, &mut w)
}

fn stats(cg: Option<&Cgroup>) -> Result<Stats> {
    Ok(cg.map(Cgroup::stats).transpose()?.unwrap_or_default())
}

/// The OOM kill count, None when unknown (no memory controller, an old
/// kernel, an unreadable file: a stream goes on without it).
fn oom_kills(cg: Option<&Cgroup>) -> Option<u64> {
    cg.and_then(|cg| cg.oom_kills().ok().flatten())
}

fn stream(st: &State, cg: Option<&Cgroup>, interval: Duration, w: &mut Writer) -> Result<()> {
    let mut kills = oom_kills(cg);
    let mut next = Instant::now() + interval;
    loop {
        let gone = sleep_until_exit(&st.init, next.min(Instant::now() + CHECK));
        // The kill that ended the container, too, is reported first.
        let now = oom_kills(cg);
        if let (Some(before), Some(n)) = (kills, now) {
            if n > before && !w.oom()? {
                return Ok(());
            }
        }
        kills = now.or(kills);
        if gone {
            return Ok(());
        }
        let t = Instant::now();
        if t >= next {
            // As runc: a failed read is logged and the stream goes on.
            match stats(cg) {
                Ok(s) => {
                    if !w.stats(&s)? {
                        return Ok(());
                    }
                }
                Err(e) => crate::log::warn(&format!("events: {e}")),
            }
            next += interval;
            if next <= t {
                next = t + interval;
            }
        }
    }
}

/// Sleep until `deadline`, or until `init` has exited (checked every few
/// ms); true when it has.
fn sleep_until_exit(init: &Proc, deadline: Instant) -> bool {
    const STEP: Duration = Duration::from_millis(20);
    loop {
        if !init.alive() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(STEP));
    }
}

struct Writer<'a> {
    out: &'a mut dyn Write,
    id: &'a str,
}

impl Writer<'_> {
    fn stats(&mut self, s: &Stats) -> Result<bool> {
        self.event("stats", Some(s))
    }

    fn oom(&mut self) -> Result<bool> {
        self.event("oom", None)
    }

    /// One line, flushed. False when the reader has gone (EPIPE): the
    /// stream simply ends.
    fn event(&mut self, kind: &'static str, data: Option<&Stats>) -> Result<bool> {
        let e = Event {
            kind,
            id: self.id,
            data,
        };
        let mut line = serde_json::to_vec(&e).map_err(|e| Error::Other(format!("events: {e}")))?;
        line.push(b'\n');
        match self.out.write_all(&line).and_then(|()| self.out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(Error::io("events: write to stdout", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_runcs_json_lines() {
        let mut buf = Vec::new();
        let mut w = Writer {
            out: &mut buf,
            id: "c1",
        };
        assert!(w.oom().unwrap());
        assert!(w.stats(&Stats::default()).unwrap());
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], r#"{"type":"oom","id":"c1"}"#);
        assert!(
            lines[1].starts_with(r#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"kernel":0"#),
            "{}",
            lines[1]
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn a_reader_that_went_away_ends_the_stream() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::from_raw_os_error(libc::ENOSPC))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut closed = Closed;
        let mut w = Writer {
            out: &mut closed,
            id: "c1",
        };
        assert!(!w.oom().unwrap());
        let mut full = Full;
        let mut w = Writer {
            out: &mut full,
            id: "c1",
        };
        let e = w.oom().unwrap_err();
        assert!(
            e.to_string().starts_with("events: write to stdout: "),
            "{e}"
        );
    }
}
