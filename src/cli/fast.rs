//! The command lines engines run for every container (`create`, `start`,
//! `state`, `kill`, `delete`, `run`), in their plain forms, parsed without
//! clap: clap builds its command tree on every start, about 3% of the
//! machine time of a `mica run` when four start at once.
//!
//! Anything else (another command, `--help`, a flag this does not know,
//! a value that looks like a flag, a repeated flag, `--`) is left to clap
//! (`None`), which stays the reference: the tests check that every line
//! parsed here is parsed the same by clap.

use super::{Cli, Command, CreateArgs, LogFormat};
use std::ffi::OsString;
use std::path::PathBuf;

/// `args` as clap would parse them (argv[0] first), or None: ask clap.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Option<Cli> {
    let args: Vec<OsString> = args.into_iter().skip(1).collect();
    let mut cli = Cli {
        version: None,
        root: PathBuf::from("/run/mica"),
        log: None,
        log_format: LogFormat::Text,
        debug: false,
        systemd_cgroup: false,
        rootless: None,
        criu: None,
        store: None,
        command: Command::Features,
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut i = 0;
    // runc's global flags, before the command.
    let name = loop {
        let a = args.get(i)?.to_str()?;
        i += 1;
        if !a.starts_with('-') {
            break a;
        }
        let (flag, inline) = split_long(a)?;
        if seen.contains(&flag) {
            return None;
        }
        seen.push(flag);
        match flag {
            "--debug" | "--systemd-cgroup" => {
                if inline.is_some() {
                    return None;
                }
                if flag == "--debug" {
                    cli.debug = true;
                } else {
                    cli.systemd_cgroup = true;
                }
            }
            _ => {
                let v = value(&args, &mut i, inline)?;
                match flag {
                    "--root" => cli.root = PathBuf::from(v),
                    "--log" => cli.log = Some(PathBuf::from(v)),
                    "--store" => cli.store = Some(PathBuf::from(v)),
                    "--log-format" => {
                        cli.log_format = match v.to_str()? {
                            "text" => LogFormat::Text,
                            "json" => LogFormat::Json,
                            _ => return None,
                        }
                    }
                    "--rootless" => cli.rootless = Some(v.to_str()?.to_string()),
                    "--criu" => cli.criu = Some(v.to_str()?.to_string()),
                    _ => return None,
                }
            }
        }
    };
    let rest = &args[i..];
    cli.command = match name {
        "start" => Command::Start {
            id: one(command_args(rest, &[], &mut [], None)?)?,
        },
        "state" => Command::State {
            id: one(command_args(rest, &[], &mut [], None)?)?,
        },
        "delete" => {
            let mut force = false;
            let pos = command_args(rest, &[("-f", "--force")], &mut [&mut force], None)?;
            Command::Delete {
                force,
                id: one(pos)?,
            }
        }
        "kill" => {
            let mut all = false;
            let mut pos = command_args(rest, &[("-a", "--all")], &mut [&mut all], None)?;
            let signal = match pos.len() {
                1 => "SIGTERM".to_string(),
                2 => pos.pop()?,
                _ => return None,
            };
            Command::Kill {
                all,
                id: one(pos)?,
                signal,
            }
        }
        "create" => {
            let mut create = create_defaults();
            let pos = command_args(rest, &[], &mut [], Some(&mut create))?;
            Command::Create {
                create,
                id: one(pos)?,
            }
        }
        "run" => {
            let (mut detach, mut keep, mut no_subreaper) = (false, false, false);
            let mut create = create_defaults();
            let pos = command_args(
                rest,
                &[("-d", "--detach"), ("", "--keep"), ("", "--no-subreaper")],
                &mut [&mut detach, &mut keep, &mut no_subreaper],
                Some(&mut create),
            )?;
            Command::Run {
                create,
                detach,
                keep,
                no_subreaper,
                id: one(pos)?,
            }
        }
        _ => return None,
    };
    Some(cli)
}

/// `--flag` or `--flag=value`; None for anything else (short flags, `--`).
fn split_long(a: &str) -> Option<(&str, Option<&str>)> {
    if !a.starts_with("--") || a.len() == 2 {
        return None;
    }
    Some(match a.split_once('=') {
        Some((f, v)) => (f, Some(v)),
        None => (a, None),
    })
}

/// The value of an option: inline (`--x=v`) or the next argument, never
/// empty and, when separate, not one that starts with `-` (clap's rules
/// there are subtle: leave them to it).
fn value(args: &[OsString], i: &mut usize, inline: Option<&str>) -> Option<OsString> {
    let v = match inline {
        Some(v) => OsString::from(v),
        None => {
            let v = args.get(*i)?.clone();
            *i += 1;
            if v.to_str().is_none_or(|s| s.starts_with('-')) {
                return None;
            }
            v
        }
    };
    (!v.is_empty()).then_some(v)
}

/// `CreateArgs` as clap makes it when no flag is given.
fn create_defaults() -> CreateArgs {
    CreateArgs {
        bundle: PathBuf::from("."),
        pid_file: None,
        console_socket: None,
        preserve_fds: 0,
        no_pivot: false,
        no_new_keyring: false,
    }
}

/// The positional arguments of a command's arguments `rest`, setting the
/// boolean flags `bools` names ((short, long); `set` in the same order) and,
/// given `create`, `create`'s options; None on any other flag, or on one
/// given twice.
fn command_args(
    rest: &[OsString],
    bools: &[(&str, &str)],
    set: &mut [&mut bool],
    mut create: Option<&mut CreateArgs>,
) -> Option<Vec<String>> {
    let mut seen: Vec<&str> = Vec::new();
    let mut pos = Vec::new();
    let mut i = 0;
    while let Some(a) = rest.get(i) {
        i += 1;
        let a = a.to_str()?;
        if !a.starts_with('-') {
            pos.push(a.to_string());
            continue;
        }
        // -b DIR is the one short option with a value.
        let (flag, inline) = if a == "-b" && create.is_some() {
            ("--bundle", None)
        } else if a.starts_with("--") {
            split_long(a)?
        } else {
            (a, None)
        };
        if seen.contains(&flag) {
            return None;
        }
        seen.push(flag);
        if let Some(k) = bools
            .iter()
            .position(|(s, l)| flag == *l || (!s.is_empty() && flag == *s))
        {
            // A short and a long name of the same flag: given twice.
            if inline.is_some() || std::mem::replace(set[k], true) {
                return None;
            }
            continue;
        }
        let c = create.as_deref_mut()?;
        match flag {
            "--no-pivot" if inline.is_none() => c.no_pivot = true,
            "--no-new-keyring" if inline.is_none() => c.no_new_keyring = true,
            "--bundle" => c.bundle = PathBuf::from(value(rest, &mut i, inline)?),
            "--pid-file" => c.pid_file = Some(PathBuf::from(value(rest, &mut i, inline)?)),
            "--console-socket" => {
                c.console_socket = Some(PathBuf::from(value(rest, &mut i, inline)?))
            }
            "--preserve-fds" => {
                let v = value(rest, &mut i, inline)?;
                let v = v.to_str()?;
                if !v.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                c.preserve_fds = v.parse().ok()?;
            }
            _ => return None,
        }
    }
    Some(pos)
}

/// The one positional argument.
fn one(mut pos: Vec<String>) -> Option<String> {
    (pos.len() == 1).then(|| pos.pop()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn argv(line: &str) -> Vec<OsString> {
        std::iter::once("mica")
            .chain(line.split(' ').filter(|a| !a.is_empty()))
            .map(OsString::from)
            .collect()
    }

    /// What this parses, clap parses the same way; the plain forms are
    /// parsed here (else the fast path would not be taken), the rest left
    /// to clap.
    #[test]
    fn agrees_with_clap() {
        let fast = [
            "run --bundle /b c1",
            "run -b /b c1",
            "run --bundle=/b -d c1",
            "run c1 --bundle /b --detach",
            "run --bundle /b --pid-file /p --console-socket /s --preserve-fds 2 --no-pivot --no-new-keyring --keep --no-subreaper c1",
            "--root /r --log /l --log-format json --debug --systemd-cgroup run -b /b c1",
            "--root=/r --log=/l --log-format=text --rootless true --criu x --store /s create --bundle /b c1",
            "create --bundle /b --pid-file=/p c1",
            "create c1",
            "start c1",
            "state c1",
            "delete c1",
            "delete -f c1",
            "delete --force c1",
            "delete c1 --force",
            "kill c1",
            "kill c1 KILL",
            "kill -a c1 9",
            "kill --all c1 SIGUSR1",
            "--root /r kill c1 TERM",
        ];
        for line in fast {
            let f = parse(argv(line)).unwrap_or_else(|| panic!("not parsed here: {line}"));
            let c = Cli::try_parse_from(argv(line)).unwrap_or_else(|e| panic!("{line}: clap: {e}"));
            assert_eq!(format!("{f:?}"), format!("{c:?}"), "{line}");
        }
        let to_clap = [
            "",
            "-v",
            "--version",
            "--help",
            "run --help",
            "run",
            "run a b",
            "run -db /b c1",
            "run -b",
            "run -b -d c1",
            "run --bundle= c1",
            "run --bundle /a --bundle /b c1",
            "run -d --detach c1",
            "run --preserve-fds -1 c1",
            "run --preserve-fds +1 c1",
            "run --preserve-fds 99999999999 c1",
            "run --no-pivot=yes c1",
            "run --debug c1",
            "run --store /s c1",
            "run -- c1",
            "run - c1",
            "--root /a --root /b state c1",
            "--log-format xml state c1",
            "--debug=1 state c1",
            "-x state c1",
            "start",
            "start a b",
            "state --all c1",
            "delete -f -f c1",
            "kill a b c",
            "kill -9 c1",
            "list",
            "exec c1 -- ls",
            "spec",
            "image ls",
        ];
        for line in to_clap {
            assert!(
                parse(argv(line)).is_none(),
                "parsed here, should be clap's: {line}"
            );
        }
    }

    /// Lines made of these words at random (a fixed seed): whatever this
    /// parses, clap parses the same way.
    #[test]
    fn random_lines_agree_with_clap() {
        let words = [
            "run",
            "create",
            "start",
            "state",
            "kill",
            "delete",
            "list",
            "-b",
            "--bundle",
            "/b",
            "--bundle=/x",
            "-d",
            "--detach",
            "c1",
            "c2",
            "--root",
            "/r",
            "--pid-file",
            "/p",
            "--preserve-fds",
            "3",
            "-1",
            "--keep",
            "-f",
            "--force",
            "-a",
            "--all",
            "KILL",
            "--debug",
            "--log-format",
            "json",
            "-",
            "--",
            "--no-pivot",
            "--store",
            "-v",
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let len = 1 + next(7);
            let line: Vec<&str> = (0..len).map(|_| words[next(words.len())]).collect();
            let line = line.join(" ");
            if let Some(f) = parse(argv(&line)) {
                parsed += 1;
                let c = Cli::try_parse_from(argv(&line))
                    .unwrap_or_else(|e| panic!("parsed here, clap refuses {line:?}: {e}"));
                assert_eq!(format!("{f:?}"), format!("{c:?}"), "{line}");
            }
        }
        assert!(parsed > 100, "only {parsed} random lines parsed here");
    }
}
