//! Where errors and warnings go: stderr, and the `--log` file in the format
//! engines read (runc's JSON lines: level, msg, time).

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Sink {
    file: Option<PathBuf>,
    json: bool,
    debug: bool,
}

static SINK: OnceLock<Sink> = OnceLock::new();

pub fn init(file: Option<PathBuf>, json: bool, debug: bool) {
    let _ = SINK.set(Sink { file, json, debug });
}

fn write(level: &str, msg: &str) {
    let Some(sink) = SINK.get() else { return };
    let Some(path) = &sink.file else { return };
    let line = if sink.json {
        serde_json::json!({"level": level, "msg": msg, "time": crate::container::state::now_rfc3339()})
            .to_string()
    } else {
        format!(
            "time=\"{}\" level={level} msg={msg:?}",
            crate::container::state::now_rfc3339()
        )
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// An error: one line on stderr and in the log file.
pub fn error(msg: &str) {
    eprintln!("mica: {msg}");
    write("error", msg);
}

pub fn warn(msg: &str) {
    eprintln!("mica: warning: {msg}");
    write("warning", msg);
}

pub fn debug(msg: &str) {
    if SINK.get().is_some_and(|s| s.debug) {
        eprintln!("mica: debug: {msg}");
        write("debug", msg);
    }
}
