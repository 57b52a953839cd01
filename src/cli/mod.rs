//! The command line: runc's commands and flags, so anything that drives
//! runc can drive mica.

pub mod fast;
pub mod launch;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `mica --version` (or `-v`), shaped as runc's ("runc version X" then
/// "key: value" lines, which docker and podman parse): the release build is
/// static, against musl where the toolchain has it (see the Makefile), else glibc.
#[cfg(target_env = "musl")]
const VERSION: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    "\nspec: 1.2.0\nlibc: musl"
);
#[cfg(not(target_env = "musl"))]
const VERSION: &str = concat!(
    "version ",
    env!("CARGO_PKG_VERSION"),
    "\nspec: 1.2.0\nlibc: glibc"
);

/// The flags before the command are runc's global flags, and like runc mica
/// takes them only there (`mica --root DIR run ...`): clap copies a global
/// flag into every subcommand on each start, ~0.1 ms of CPU per mica command
/// for these six. `--store`, mica's own and used only by `image`, `launch`
/// and `bench`, is also taken after the command.
#[derive(Parser, Debug)]
#[command(name = "mica", version = VERSION, disable_version_flag = true,
          about = "mica: a minimal OCI runtime for immutable micro-containers")]
pub struct Cli {
    /// Print the version (`-v` as runc takes it)
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Directory for container state
    #[arg(long, default_value = "/run/mica")]
    pub root: PathBuf,
    /// Log file (errors and warnings go there too)
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Log format
    #[arg(long = "log-format", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Debug logging
    #[arg(long)]
    pub debug: bool,
    /// Use systemd for cgroups (not supported yet)
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (auto|true|false); mica detects it
    #[arg(long, hide = true)]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility; ignored
    #[arg(long, hide = true)]
    pub criu: Option<String>,
    /// Image store (default /var/lib/mica, or $MICA_STORE)
    #[arg(long, global = true)]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

// `defer`: each command's arguments are built only when it is the one run
// (building all of them was ~5% of a `mica run`'s CPU time).
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Write a default config.json (read-only root) into the bundle
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A config for a user namespace mapping the current user to root
        #[arg(long)]
        rootless: bool,
    },
    /// Create a container: its process waits for `start`
    Create {
        #[command(flatten)]
        create: CreateArgs,
        id: String,
    },
    /// Start a created container's process
    Start { id: String },
    /// Print a container's OCI state as JSON
    State { id: String },
    /// Send a signal (name or number, default TERM) to the container's init
    Kill {
        /// Signal every process in the container
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it holds
    Delete {
        /// Kill it first if it is running
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; wait for it unless --detach
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Keep the stopped container when its process exits (delete it later)
        #[arg(long)]
        keep: bool,
        #[arg(long = "no-subreaper", hide = true)]
        no_subreaper: bool,
        id: String,
    },
    /// Run a process in a running container
    Exec {
        #[command(flatten)]
        exec: ExecArgs,
        id: String,
        /// The command and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// List the processes of a container
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        id: String,
        /// Options for the host's ps (default -ef), as runc takes them: its
        /// header and the container's lines are printed (table format)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
        /// Only ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change a container's cgroup limits (runc's flags, or -r with linux.resources JSON)
    Update(UpdateArgs),
    /// Print a container's cgroup statistics and OOM kills as JSON lines, as runc's events
    Events {
        /// Time between two stats events (a Go duration: 5s, 100ms, 1m30s)
        #[arg(long, default_value = "5s", value_parser = parse_interval, allow_hyphen_values = true)]
        interval: std::time::Duration,
        /// Print the statistics once and exit
        #[arg(long)]
        stats: bool,
        id: String,
    },
    /// Print what this runtime supports, as JSON
    Features,
    /// Manage the image store: import, ls, inspect, rm, tag, verify, prune
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Run an image: from image to running process in one command
    Launch(LaunchArgs),
    /// Measure start-up against runc, crun, youki, bubblewrap, the floor and a microVM
    Bench(BenchArgs),
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The workload bundle (default: /bin/true in the busybox fixture, memory and pids limits)
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Measured starts per contender
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Unmeasured starts per contender first
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Peers, comma-separated: runc, crun, youki, bwrap, floor, or a runtime by path
    #[arg(long, value_delimiter = ',')]
    pub vs: Option<Vec<String>>,
    /// Also boot the rootfs as a qemu microVM
    #[arg(long)]
    pub vm: bool,
    /// Kernel for --vm (default: Debian's, downloaded once and cached)
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// auto, kvm or tcg
    #[arg(long, default_value = "auto")]
    pub accel: String,
    /// VM boots measured
    #[arg(long = "vm-runs", default_value_t = 5)]
    pub vm_runs: usize,
    /// Write every sample and the statistics as JSON
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the distributions as an SVG chart
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Write the report as Markdown
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Containers per contender and concurrency level for throughput (0 skips)
    #[arg(long, default_value_t = 100)]
    pub throughput: usize,
    /// Concurrency levels for throughput
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub concurrency: Vec<usize>,
    /// Idle detached containers per runtime for the density measure (0 skips)
    #[arg(long, default_value_t = 20)]
    pub density: usize,
    /// An image (path or store reference) as the workload; the launch contenders use it
    pub image: Option<String>,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ImageCommand {
    /// Import an OCI layout dir, an oci-archive or a docker-save tarball
    Import {
        path: PathBuf,
        /// NAME[:TAG] to give it
        #[arg(long)]
        name: Option<String>,
        /// os/arch[/variant] to pick from a multi-platform index
        #[arg(long)]
        platform: Option<String>,
    },
    /// List images: name, tag, digest, size, imported at
    #[command(alias = "list")]
    Ls,
    /// Print an image's record and config as JSON
    Inspect { reference: String },
    /// Remove an image name (and the image when no name is left)
    #[command(alias = "remove")]
    Rm { reference: String },
    /// Give an image another NAME[:TAG]
    Tag { reference: String, name: String },
    /// Re-hash every blob and layer file on disk and report any change
    Verify { reference: String },
    /// Remove layers and blobs no image uses
    Prune,
}

#[derive(clap::Args, Debug)]
pub struct LaunchArgs {
    /// Container id (default: a random one)
    #[arg(long)]
    pub name: Option<String>,
    /// Delete the container when its process exits
    #[arg(long)]
    pub rm: bool,
    /// Return once it started; print the id
    #[arg(short, long)]
    pub detach: bool,
    /// KEY=VALUE or KEY (taken from mica's environment); repeatable
    #[arg(short, long)]
    pub env: Vec<String>,
    /// A file of KEY=VALUE lines
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// HOST:CONTAINER[:ro|rw] bind mount (the only writable places besides tmpfs)
    #[arg(short, long)]
    pub volume: Vec<String>,
    /// PATH[:OPTIONS] tmpfs mount, e.g. /tmp:size=64m
    #[arg(long)]
    pub tmpfs: Vec<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// USER[:GROUP] by name (from the image's /etc/passwd) or number
    #[arg(short, long)]
    pub user: Option<String>,
    /// Override the image's Entrypoint ("" clears it)
    #[arg(long)]
    pub entrypoint: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    /// none (default: a private network namespace with only loopback, up) or host
    #[arg(long, value_parser = ["none", "host"], default_value = "none")]
    pub network: String,
    /// Memory limit, e.g. 64m
    #[arg(short, long)]
    pub memory: Option<String>,
    /// CPUs, e.g. 0.5
    #[arg(long)]
    pub cpus: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// seccomp=FILE|unconfined, no-new-privileges[=true|false]
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Allocate a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Keep stdin attached (it always is; accepted for docker users)
    #[arg(short, long)]
    pub interactive: bool,
    /// os/arch[/variant] when the reference is a multi-platform archive
    #[arg(long)]
    pub platform: Option<String>,
    /// Image: NAME[:TAG], NAME@sha256:..., a digest, or a path to a layout/archive
    pub image: String,
    /// Command and arguments (replace the image's Cmd)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Bundle directory (holding config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container process's pid here
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's master fd to
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Pass N more fds (3..3+N) to the process
    #[arg(long = "preserve-fds", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    pub preserve_fds: i32,
    /// Use MS_MOVE + chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Stay in the caller's session keyring instead of a new one of the container's
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
}

/// `update`'s flags, runc's names. With `--resources` the flags are not
/// used (as in runc). Sizes take k/m/g suffixes; `-1` is unlimited.
#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// A linux.resources JSON file, or - for stdin
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Memory limit
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CPU CFS period (microseconds)
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds; -1: none)
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs to run on (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to allocate from
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (-1: no limit)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

impl UpdateArgs {
    /// The `linux.resources` to apply: the file's, else the flags'.
    pub fn resources(&self) -> Result<oci_spec::runtime::LinuxResources, String> {
        if let Some(p) = &self.resources {
            let data = if p.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                    .map_err(|e| format!("read resources from stdin: {e}"))?;
                v
            } else {
                std::fs::read(p).map_err(|e| format!("read {}: {e}", p.display()))?
            };
            return serde_json::from_slice(&data)
                .map_err(|e| format!("resources {}: {e}", p.display()));
        }
        let size = |flag: &str, v: &Option<String>| -> Result<Option<i64>, String> {
            match v.as_deref() {
                None => Ok(None),
                Some("-1") => Ok(Some(-1)),
                Some(s) => crate::spec::launch::parse_size(s)
                    .map(Some)
                    .ok_or_else(|| format!("--{flag} {s:?}: not a size (512m, 1g, bytes, -1)")),
            }
        };
        let mut r = serde_json::json!({});
        let mut set = |section: &str, key: &str, v: serde_json::Value| {
            r[section][key] = v;
        };
        if let Some(v) = size("memory", &self.memory)? {
            set("memory", "limit", v.into());
        }
        if let Some(v) = size("memory-reservation", &self.memory_reservation)? {
            set("memory", "reservation", v.into());
        }
        if let Some(v) = size("memory-swap", &self.memory_swap)? {
            set("memory", "swap", v.into());
        }
        if let Some(v) = self.cpu_share {
            set("cpu", "shares", v.into());
        }
        if let Some(v) = self.cpu_period {
            set("cpu", "period", v.into());
        }
        if let Some(v) = self.cpu_quota {
            set("cpu", "quota", v.into());
        }
        if let Some(v) = &self.cpuset_cpus {
            set("cpu", "cpus", v.as_str().into());
        }
        if let Some(v) = &self.cpuset_mems {
            set("cpu", "mems", v.as_str().into());
        }
        if let Some(v) = self.pids_limit {
            set("pids", "limit", v.into());
        }
        if let Some(v) = self.blkio_weight {
            set("blockIO", "weight", v.into());
        }
        serde_json::from_value(r).map_err(|e| format!("update: {e}"))
    }
}

/// `events --interval`: a Go duration (runc's flag type), above zero.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    match parse_go_duration(s)? {
        (false, d) if !d.is_zero() => Ok(d),
        _ => Err("duration interval must be greater than 0".into()),
    }
}

/// A duration as Go's `time.ParseDuration` reads it: an optional sign, then
/// numbers (decimal fractions allowed) each with a unit of ns, us (µs, μs),
/// ms, s, m or h ("1h2m3.5s", "100ms"); a bare "0" is zero. Returns
/// (negative, magnitude).
pub fn parse_go_duration(s: &str) -> Result<(bool, std::time::Duration), String> {
    let bad = || format!("invalid duration {s:?} (e.g. 5s, 100ms, 1m30s)");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok((false, std::time::Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let ns: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {s:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        // Go's limit: what an int64 of nanoseconds holds (~292 years).
        let too_long = || format!("duration {s:?} is too long");
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| too_long())?
        };
        // Fraction digits past what a nanosecond can show change nothing.
        let frac = &frac[..frac.len().min(18)];
        let frac_ns = if frac.is_empty() {
            0
        } else {
            frac.parse::<u128>().map_err(|_| bad())? * ns / 10u128.pow(frac.len() as u32)
        };
        total = int
            .checked_mul(ns)
            .and_then(|v| v.checked_add(frac_ns))
            .and_then(|v| v.checked_add(total))
            .filter(|&v| v <= i64::MAX as u128)
            .ok_or_else(too_long)?;
        rest = after;
    }
    let d = std::time::Duration::from_nanos(total as u64);
    Ok((neg && !d.is_zero(), d))
}

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// A process.json with the whole process
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// KEY=VALUE (repeatable)
    #[arg(short, long)]
    pub env: Vec<String>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// UID[:GID]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "preserve-fds", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    pub preserve_fds: i32,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability (repeatable)
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Accepted for runc compatibility; ignored
    #[arg(long = "process-label", hide = true)]
    pub process_label: Option<String>,
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
    #[arg(long = "ignore-paused", hide = true)]
    pub ignore_paused: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        let ok = |s: &str| parse_go_duration(s).unwrap();
        assert_eq!(ok("5s"), (false, Duration::from_secs(5)));
        assert_eq!(ok("100ms"), (false, Duration::from_millis(100)));
        assert_eq!(ok("1m30s"), (false, Duration::from_secs(90)));
        assert_eq!(ok("1h2m3.5s"), (false, Duration::from_millis(3_723_500)));
        assert_eq!(ok("1.5h"), (false, Duration::from_secs(5400)));
        assert_eq!(ok(".5s"), (false, Duration::from_millis(500)));
        assert_eq!(ok("2.s"), (false, Duration::from_secs(2)));
        assert_eq!(ok("10us"), (false, Duration::from_micros(10)));
        assert_eq!(ok("10\u{b5}s"), (false, Duration::from_micros(10)));
        assert_eq!(ok("10\u{3bc}s"), (false, Duration::from_micros(10)));
        assert_eq!(ok("7ns"), (false, Duration::from_nanos(7)));
        assert_eq!(ok("+3s"), (false, Duration::from_secs(3)));
        assert_eq!(ok("-3s"), (true, Duration::from_secs(3)));
        assert_eq!(ok("0"), (false, Duration::ZERO));
        assert_eq!(ok("-0s"), (false, Duration::ZERO));
        assert_eq!(ok("-0"), (false, Duration::ZERO));
        assert_eq!(
            ok("2562047h"),
            (false, Duration::from_secs(2_562_047 * 3600))
        );
        for bad in [
            "", "-", "5", "s", "5x", "5 s", ".s", "1.2.3s", "3000000h", "5s3",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} was taken");
        }
        assert_eq!(
            parse_go_duration("5").unwrap_err(),
            "missing unit in duration \"5\""
        );
    }

    #[test]
    fn events_interval_is_positive() {
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        for s in ["0", "0s", "-1s"] {
            assert_eq!(
                parse_interval(s).unwrap_err(),
                "duration interval must be greater than 0"
            );
        }
        let cli = Cli::try_parse_from(["mica", "events", "c1"]).unwrap();
        match cli.command {
            Command::Events {
                interval,
                stats,
                id,
            } => assert_eq!(
                (interval, stats, id.as_str()),
                (Duration::from_secs(5), false, "c1")
            ),
            c => panic!("{c:?}"),
        }
        let cli =
            Cli::try_parse_from(["mica", "events", "--stats", "--interval", "1s", "c1"]).unwrap();
        assert!(matches!(cli.command, Command::Events { stats: true, .. }));
        assert!(Cli::try_parse_from(["mica", "events", "--interval", "0", "c1"]).is_err());
    }
}
