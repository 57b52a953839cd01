//! mica's entry point: parse the command line, call the library, print one
//! error line, exit with a status.

#[cfg(target_env = "musl")]
mod alloc;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: alloc::Heap = alloc::Heap::new();

use clap::Parser;
use mica::cli::launch as cl;
use mica::cli::{BenchArgs, Cli, Command, Format, ImageCommand, LaunchArgs, LogFormat};
use mica::container::{self, CreateOptions, ExecOptions};
use std::process::ExitCode;

fn create_options(a: &mica::cli::CreateArgs) -> CreateOptions {
    CreateOptions {
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        listen: mica::launch::ListenFds::from_env(),
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// runc's table: the host's `ps` with the options given (default `-ef`),
/// its header and the lines whose PID column is one of the container's.
/// Without a `ps` on the host and no options, mica's own PID/PPID/CMD table.
fn ps_host(pids: &[i32], args: &[String]) -> Result<(), String> {
    let default = ["-ef".to_string()];
    let args = if args.is_empty() { &default[..] } else { args };
    let shown = args.join(" ");
    let out = match std::process::Command::new("ps")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && args == default => {
            ps_table(pids);
            return Ok(());
        }
        Err(err) => return Err(format!("ps {shown}: {err}")),
    };
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!("ps {shown}: {}: {}", out.status, why.trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| format!("ps {shown}: no PID column in {header:?}"))?;
    println!("{header}");
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse().ok());
        match pid {
            Some(p) if pids.contains(&p) => println!("{line}"),
            Some(_) => {}
            None => return Err(format!("ps {shown}: no pid in {line:?}")),
        }
    }
    Ok(())
}

fn ps_table(pids: &[i32]) {
    println!("{:>8} {:>8} CMD", "PID", "PPID");
    for pid in pids {
        let stat = mica::kfile::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
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
    // runc's columns.
    println!(
        "{:<20} {:<8} {:<10} {:<40} {:<31} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    let s = |i: &serde_json::Value, k: &str| i[k].as_str().unwrap_or("").to_string();
    for i in items {
        println!(
            "{:<20} {:<8} {:<10} {:<40} {:<31} {}",
            s(i, "id"),
            i["pid"].as_i64().unwrap_or(0),
            s(i, "status"),
            s(i, "bundle"),
            s(i, "created"),
            s(i, "owner")
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
            create,
            detach,
            keep,
            id,
            ..
        } => {
            return container::run_keep(root, id, &create_options(create), *detach, *keep)
                .map_err(e)
        }
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
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = container::pids(root, id).map_err(e)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string(&pids).unwrap_or_default()),
                Format::Table => ps_host(&pids, ps_args)?,
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
        Command::Update(u) => container::update(root, &u.id, &u.resources()?).map_err(e)?,
        Command::Events {
            interval,
            stats,
            id,
        } => {
            let o = container::EventsOptions {
                interval: *interval,
                stats: *stats,
            };
            container::events(root, id, &o, &mut std::io::stdout().lock()).map_err(e)?
        }
        Command::Resume { id } => container::resume(root, id).map_err(e)?,
        Command::Features => print_json(&mica::spec::features()),
        Command::Image { command } => {
            image(cli.store.as_deref(), root, command).map_err(|f| f.message)?
        }
        Command::Bench(b) => bench(b)?,
        // Has its own exit statuses (docker's): see `launch`.
        Command::Launch(a) => return Err(format!("launch {}: internal dispatch error", a.image)),
    }
    Ok(0)
}

fn image(
    store: Option<&std::path::Path>,
    root: &std::path::Path,
    cmd: &ImageCommand,
) -> Result<(), cl::Failure> {
    let s = cl::open_store(store)?;
    fn fail(e: impl std::fmt::Display) -> cl::Failure {
        cl::Failure {
            code: 1,
            message: e.to_string(),
        }
    }
    match cmd {
        ImageCommand::Import {
            path,
            name,
            platform,
        } => {
            let img = s
                .import(path, name.as_deref(), platform.as_deref(), unsafe {
                    libc::isatty(2) == 1
                })
                .map_err(fail)?;
            println!("{}", img.digest);
        }
        ImageCommand::Ls => cl::print_images(&s.list().map_err(fail)?),
        ImageCommand::Inspect { reference } => print_json(&s.inspect(reference).map_err(fail)?),
        ImageCommand::Rm { reference } => {
            let users = cl::image_users(root).map_err(fail)?;
            s.remove(reference, &users).map_err(fail)?
        }
        ImageCommand::Tag { reference, name } => s.tag(reference, name).map_err(fail)?,
        ImageCommand::Verify { reference } => {
            let problems = s.verify(reference).map_err(fail)?;
            if !problems.is_empty() {
                for p in &problems {
                    println!("{p}");
                }
                return Err(cl::Failure {
                    code: 1,
                    message: format!("{reference}: {} problem(s) found", problems.len()),
                });
            }
            println!("{reference}: ok");
        }
        ImageCommand::Prune => {
            for removed in s.prune().map_err(fail)? {
                println!("{removed}");
            }
        }
    }
    Ok(())
}

fn bench(b: &BenchArgs) -> Result<(), String> {
    use mica::bench::{BenchOptions, DEFAULT_VS};
    let opts = BenchOptions {
        bundle: b.bundle.clone(),
        image: b.image.clone(),
        runs: b.runs,
        warmup: b.warmup,
        vs: b
            .vs
            .clone()
            .unwrap_or_else(|| DEFAULT_VS.iter().map(|s| s.to_string()).collect()),
        vm: b.vm,
        kernel: b.kernel.clone(),
        accel: b.accel.parse()?,
        vm_runs: b.vm_runs,
        json: b.json.clone(),
        svg: b.svg.clone(),
        markdown: b.markdown.clone(),
        throughput: b.throughput,
        concurrency: b.concurrency.clone(),
        density: b.density,
        ..BenchOptions::default()
    };
    let report = mica::bench::run(&opts).map_err(|e| e.to_string())?;
    print!("{}", report.text());
    Ok(())
}

fn launch(cli: &Cli, a: &LaunchArgs) -> ExitCode {
    use mica::spec::launch::{LaunchOptions, Network};
    let l = cl::Launch {
        reference: a.image.clone(),
        name: a.name.clone(),
        rm: a.rm,
        detach: a.detach,
        platform: a.platform.clone(),
        options: LaunchOptions {
            command: a.command.clone(),
            entrypoint: a.entrypoint.clone(),
            env: a.env.clone(),
            env_files: a.env_file.clone(),
            volumes: a.volume.clone(),
            tmpfs: a.tmpfs.clone(),
            workdir: a.workdir.clone(),
            user: a.user.clone(),
            hostname: a.hostname.clone(),
            network: if a.network == "host" {
                Network::Host
            } else {
                Network::None
            },
            memory: a.memory.clone(),
            cpus: a.cpus.clone(),
            pids_limit: a.pids_limit,
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
            security_opts: a.security_opt.clone(),
            tty: a.tty,
        },
    };
    match cl::launch(&cli.root, cli.store.as_deref(), &l) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(f) => {
            mica::log::error(&f.message);
            ExitCode::from(f.code as u8)
        }
    }
}

/// A command line clap refuses still reaches the `--log` file, so an engine
/// shows the real reason (clap itself only writes to stderr).
fn parse_or_log() -> Result<Cli, ExitCode> {
    // The per-container commands in their plain forms without clap (see
    // `cli::fast`); clap for everything else.
    if let Some(cli) = mica::cli::fast::parse(std::env::args_os()) {
        return Ok(cli);
    }
    Cli::try_parse().map_err(|e| {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        use clap::CommandFactory;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str| {
            args.iter().enumerate().find_map(|(i, a)| {
                a.strip_prefix(&format!("{flag}="))
                    .map(String::from)
                    .or_else(|| (a == flag).then(|| args.get(i + 1).cloned()).flatten())
            })
        };
        // The flags were not parsed: JSON only into a log file an engine
        // named; stderr gets the plain line.
        let log = value("--log");
        let json = log.is_some() && value("--log-format").as_deref() == Some("json");
        mica::log::init(log.map(Into::into), json, false);
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("invalid command line");
        let first = first.trim_start_matches("error: ");
        // runc's global flags go before the command, in mica as in runc: a
        // top-level flag found after it is named as such.
        let misplaced = match (e.kind(), e.get(ContextKind::InvalidArg)) {
            (ErrorKind::UnknownArgument, Some(ContextValue::String(arg))) => {
                let name = arg.split('=').next().unwrap_or(arg);
                let long = name.strip_prefix("--").unwrap_or("");
                Cli::command()
                    .get_arguments()
                    .any(|a| !a.is_global_set() && a.get_long() == Some(long))
                    .then_some(name)
            }
            _ => None,
        };
        match misplaced {
            Some(f) => mica::log::error(&format!(
                "{first}: {f} is a global flag and goes before the command (mica {f} ... COMMAND ...)"
            )),
            None => mica::log::error(first),
        }
        ExitCode::from(e.exit_code().clamp(1, 255) as u8)
    })
}

fn main() -> ExitCode {
    mica::trace::start();
    let cli = match parse_or_log() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // Before anything is opened: which fds of the preserved range are the
    // caller's.
    let preserve = match &cli.command {
        Command::Create { create, .. } | Command::Run { create, .. } => {
            let listen = mica::launch::ListenFds::from_env().map_or(0, |l| l.count);
            create.preserve_fds.saturating_add(listen)
        }
        Command::Exec { exec, .. } => exec.preserve_fds,
        _ => 0,
    };
    mica::launch::record_preserved_fds(preserve);
    mica::log::init(
        cli.log.clone(),
        cli.log_format == LogFormat::Json,
        cli.debug,
    );
    if cli.debug {
        mica::trace::enable();
    }
    if let Command::Launch(a) = &cli.command {
        return launch(&cli, a);
    }
    // exec's own failures exit 255, as runc's do: 1 may be the process's.
    let failure = match cli.command {
        Command::Exec { .. } => ExitCode::from(255),
        _ => ExitCode::FAILURE,
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(msg) => {
            mica::log::error(&msg);
            failure
        }
    }
}
