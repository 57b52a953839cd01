//! mica's entry point: parse the command line, call the library, print one
//! error line, exit with a status.

use clap::Parser;
use mica::cli::{Cli, Command, Format, LogFormat};
use mica::container::{self, CreateOptions, ExecOptions};
use std::process::ExitCode;

fn create_options(a: &mica::cli::CreateArgs) -> CreateOptions {
    CreateOptions {
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn ps_table(pids: &[i32]) {
    println!("{:>8} {:>8} CMD", "PID", "PPID");
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].split(' ').nth(1))
            .unwrap_or("?");
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                c.split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!("{pid:>8} {ppid:>8} {cmd}");
    }
}

fn list_table(items: &[serde_json::Value], quiet: bool) {
    if quiet {
        for i in items {
            println!("{}", i["id"].as_str().unwrap_or(""));
        }
        return;
    }
    println!(
        "{:<20} {:<8} {:<10} {:<40} CREATED",
        "ID", "PID", "STATUS", "BUNDLE"
    );
    for i in items {
        println!(
            "{:<20} {:<8} {:<10} {:<40} {}",
            i["id"].as_str().unwrap_or(""),
            i["pid"],
            i["status"].as_str().unwrap_or(""),
            i["bundle"].as_str().unwrap_or(""),
            i["created"].as_str().unwrap_or("")
        );
    }
}

fn run(cli: Cli) -> Result<i32, String> {
    if cli.systemd_cgroup {
        return Err("--systemd-cgroup is not supported: mica manages cgroupfs directly".into());
    }
    let root = &cli.root;
    let e = |e: container::Error| e.to_string();
    match &cli.command {
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(format!("{} exists: remove it first", path.display()));
            }
            let text = serde_json::to_string_pretty(&mica::spec::default_spec(*rootless))
                .unwrap_or_default();
            std::fs::write(&path, text + "\n")
                .map_err(|err| format!("write {}: {err}", path.display()))?;
        }
        Command::Create { create, id } => {
            container::create(root, id, &create_options(create)).map_err(e)?;
        }
        Command::Start { id } => container::start(root, id).map_err(e)?,
        Command::State { id } => print_json(&container::state(root, id).map_err(e)?),
        Command::Kill { all, id, signal } => container::kill(root, id, signal, *all).map_err(e)?,
        Command::Delete { force, id } => container::delete(root, id, *force).map_err(e)?,
        Command::Run {
            create, detach, id, ..
        } => return container::run(root, id, &create_options(create), *detach).map_err(e),
        Command::Exec { exec: a, id, args } => {
            let o = ExecOptions {
                process: a.process.clone(),
                args: args.clone(),
                tty: a.tty,
                detach: a.detach,
                pid_file: a.pid_file.clone(),
                env: a.env.clone(),
                cwd: a.cwd.clone(),
                user: a.user.clone(),
                additional_gids: a.additional_gids.clone(),
                console_socket: a.console_socket.clone(),
                preserve_fds: a.preserve_fds,
                no_new_privs: a.no_new_privs,
                cap: a.cap.clone(),
            };
            return container::exec(root, id, &o).map_err(e);
        }
        Command::Ps { format, id, .. } => {
            let pids = container::pids(root, id).map_err(e)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string(&pids).unwrap_or_default()),
                Format::Table => ps_table(&pids),
            }
        }
        Command::List { format, quiet } => {
            let items = container::list(root).map_err(e)?;
            match format {
                Format::Json => println!("{}", serde_json::Value::Array(items)),
                Format::Table => list_table(&items, *quiet),
            }
        }
        Command::Pause { id } => container::pause(root, id).map_err(e)?,
        Command::Resume { id } => container::resume(root, id).map_err(e)?,
        Command::Features => print_json(&mica::spec::features()),
    }
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    mica::log::init(
        cli.log.clone(),
        cli.log_format == LogFormat::Json,
        cli.debug,
    );
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(msg) => {
            mica::log::error(&msg);
            ExitCode::FAILURE
        }
    }
}
