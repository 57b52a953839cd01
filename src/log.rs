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

fn json_line(level: &str, msg: &str) -> String {
    serde_json::json!({"level": level, "msg": msg, "time": crate::container::state::now_rfc3339()})
        .to_string()
}

fn write(level: &str, msg: &str) {
    let Some(sink) = SINK.get() else { return };
    let Some(path) = &sink.file else { return };
    let line = if sink.json {
        json_line(level, msg)
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

/// One line on a terminal or in a caller's log, whatever a message carries
/// (a tar header's name, a path with a newline): control characters escaped.
pub fn one_line(msg: &str) -> std::borrow::Cow<'_, str> {
    if !msg.chars().any(char::is_control) {
        return msg.into();
    }
    let mut s = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        if c.is_control() {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s.into()
}

/// `mica: <level: >msg` on stderr (one line) and the record in the log file;
/// with `--log-format json` and no `--log`, the JSON record on stderr
/// instead (runc's logs go to stderr when no file is named).
fn emit(level: &str, prefix: &str, msg: &str) {
    if SINK.get().is_some_and(|s| s.json && s.file.is_none()) {
        eprintln!("{}", json_line(level, msg));
        return;
    }
    eprintln!("mica: {prefix}{}", one_line(msg));
    write(level, msg);
}

/// An error: one line on stderr and in the log file.
pub fn error(msg: &str) {
    emit("error", "", msg);
}

pub fn warn(msg: &str) {
    emit("warning", "warning: ", msg);
}

pub fn debug(msg: &str) {
    if SINK.get().is_some_and(|s| s.debug) {
        emit("debug", "debug: ", msg);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_line_escapes_control_characters() {
        assert_eq!(super::one_line("plain: text"), "plain: text");
        assert_eq!(
            super::one_line("a\nmica: b\r\tc\u{1b}[2J"),
            "a\\nmica: b\\r\\tc\\u{1b}[2J"
        );
    }
}
