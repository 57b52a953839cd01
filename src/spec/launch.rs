//! The OCI config for `mica launch`: the image's process settings
//! (Entrypoint, Cmd, Env, WorkingDir, User) plus docker-style options.
//! The root is always read-only; only tmpfs mounts and volumes are writable.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {option} {value:?}: {reason}")]
    Option {
        option: &'static str,
        value: String,
        reason: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no command: the image has no Entrypoint or Cmd, and none was given")]
    NoCommand,
}

fn bad(option: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::Option {
        option,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// What the image says about its process (from the image config's `config`).
#[derive(Debug, Default, Clone)]
pub struct ImageProcess {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

impl ImageProcess {
    /// From the image config JSON (`{"config": {"Entrypoint": ...}}`).
    pub fn from_config(v: &Value) -> ImageProcess {
        let c = &v["config"];
        let list = |k: &str| -> Vec<String> {
            c[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = |k: &str| c[k].as_str().filter(|s| !s.is_empty()).map(String::from);
        ImageProcess {
            entrypoint: list("Entrypoint"),
            cmd: list("Cmd"),
            env: list("Env"),
            working_dir: text("WorkingDir"),
            user: text("User"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    #[default]
    None,
    Host,
}

#[derive(Debug, Default, Clone)]
pub struct LaunchOptions {
    pub command: Vec<String>,
    pub entrypoint: Option<String>,
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub volumes: Vec<String>,
    pub tmpfs: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub network: Network,
    pub memory: Option<String>,
    pub cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opts: Vec<String>,
    pub tty: bool,
}

/// docker's default capability set.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// "512m", "1g", "1048576" -> bytes.
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1i64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num.parse().ok()?;
    // At least a byte, and below i64::MAX: a cast would turn NaN, a
    // fraction of a byte or an overflow into 0 or i64::MAX ("unlimited").
    let bytes = v * mult as f64;
    (bytes >= 1.0 && bytes < i64::MAX as f64).then_some(bytes as i64)
}

/// "sys_admin", "CAP_SYS_ADMIN" -> "CAP_SYS_ADMIN".
pub(crate) fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// Resolve "name", "uid", "uid:gid", "name:group" against the image's
/// /etc/passwd and /etc/group (`etc` is the first lower dir that has them).
pub fn resolve_user(
    user: &str,
    etc: &dyn Fn(&str) -> Option<String>,
) -> Result<(u32, u32, Vec<u32>), Error> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = etc("passwd").unwrap_or_default();
    let group = etc("group").unwrap_or_default();
    let (uid, mut gid, name) = if let Ok(uid) = u.parse::<u32>() {
        let entry = super::passwd_entry(&passwd, 2, u);
        let gid = entry
            .as_ref()
            .and_then(|f| f.get(3))
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
        (uid, gid, entry.map(|f| f[0].to_string()))
    } else {
        let f = super::passwd_entry(&passwd, 0, u)
            .ok_or_else(|| bad("--user", user, "no such user in the image's /etc/passwd"))?;
        let uid = f
            .get(2)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("--user", user, "bad passwd entry"))?;
        let gid = f.get(3).and_then(|v| v.parse().ok()).unwrap_or(0);
        (uid, gid, Some(u.to_string()))
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .find(|l| l.split(':').next() == Some(g))
                .and_then(|l| l.split(':').nth(2))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad("--user", user, "no such group in the image's /etc/group"))?,
        };
    }
    // Supplementary groups: the groups listing the user by name.
    let mut extra = Vec::new();
    if let Some(name) = name {
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(id) = f[2].parse::<u32>() {
                    if id != gid {
                        extra.push(id);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

fn read_env_file(p: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(p).map_err(|e| Error::Io {
        what: format!("read --env-file {}", p.display()),
        source: e,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            if l.contains('=') {
                l.to_string()
            } else {
                // "NAME" alone takes the value from mica's environment, as docker does.
                format!("{l}={}", std::env::var(l).unwrap_or_default())
            }
        })
        .collect())
}

fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split('=').next().unwrap_or("");
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(kv.to_string());
}

/// A launch's OCI config.
#[derive(Debug)]
pub struct Config {
    /// The config JSON. Without `linux.seccomp` when the default profile
    /// applies: that one is typed ([`default_seccomp::profile`]) and joins
    /// the spec as it is.
    ///
    /// [`default_seccomp::profile`]: super::default_seccomp::profile
    pub value: Value,
    /// Whether mica's default seccomp profile applies (no `--security-opt
    /// seccomp=...`).
    pub default_seccomp: bool,
}

/// Build the config. `rootfs` is where the launch mounts the image's root.
pub fn config(
    img: &ImageProcess,
    o: &LaunchOptions,
    rootfs: &Path,
    etc: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Error> {
    // The command: docker's rules for Entrypoint and Cmd.
    let entrypoint: Vec<String> = match &o.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => img.entrypoint.clone(),
    };
    let cmd = if !o.command.is_empty() {
        o.command.clone()
    } else if o.entrypoint.is_some() {
        vec![]
    } else {
        img.cmd.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::NoCommand);
    }

    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    for e in &img.env {
        set_env(&mut env, e);
    }
    for f in &o.env_files {
        for e in read_env_file(f)? {
            set_env(&mut env, &e);
        }
    }
    for e in &o.env {
        if e.is_empty() || e.starts_with('=') {
            return Err(bad("--env", e, "the variable has no name"));
        }
        if e.contains('=') {
            set_env(&mut env, e);
        } else if let Ok(v) = std::env::var(e) {
            set_env(&mut env, &format!("{e}={v}"));
        }
    }
    if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let hostname = o.hostname.clone().unwrap_or_else(|| "mica".into());
    set_env(&mut env, &format!("HOSTNAME={hostname}"));

    let (uid, gid, gids) = match o.user.as_ref().or(img.user.as_ref()) {
        Some(u) => resolve_user(u, etc)?,
        None => (0, 0, vec![]),
    };
    let cwd = o
        .workdir
        .clone()
        .or_else(|| img.working_dir.clone())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(bad("--workdir", &cwd, "must be an absolute path"));
    }

    // Capabilities: docker's default set, then --cap-add / --cap-drop.
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for c in &o.cap_drop {
        if c.eq_ignore_ascii_case("all") {
            caps.clear();
        } else {
            let c = cap_name(c);
            caps.retain(|x| *x != c);
        }
    }
    for c in &o.cap_add {
        if c.eq_ignore_ascii_case("all") {
            caps = caps::all().iter().map(|c| c.to_string()).collect();
        } else {
            let c = cap_name(c);
            if c.parse::<caps::Capability>().is_err() {
                return Err(bad("--cap-add", &c, "unknown capability"));
            }
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    caps.sort();
    let mut no_new_privs = true;
    let mut default_seccomp = true;
    let mut seccomp = None;
    for s in &o.security_opts {
        match s.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => {
                default_seccomp = false;
                seccomp = None;
            }
            Some(("seccomp", path)) => {
                let text = std::fs::read(path).map_err(|e| Error::Io {
                    what: format!("read seccomp profile {path}"),
                    source: e,
                })?;
                let v: Value = serde_json::from_slice(&text)
                    .map_err(|e| bad("--security-opt", s, format!("seccomp profile: {e}")))?;
                default_seccomp = false;
                seccomp = Some(v);
            }
            Some(("no-new-privileges", v)) => {
                no_new_privs = !matches!(v, "false" | "0");
            }
            None if s == "no-new-privileges" => no_new_privs = true,
            _ => {
                return Err(bad(
                    "--security-opt",
                    s,
                    "use seccomp=FILE|unconfined or no-new-privileges[=true|false]",
                ))
            }
        }
    }

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for t in &o.tmpfs {
        let (path, opts) = t.split_once(':').unwrap_or((t, ""));
        if !path.starts_with('/') {
            return Err(bad("--tmpfs", t, "the path must be absolute"));
        }
        let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
        options.extend(opts.split(',').filter(|s| !s.is_empty()).map(String::from));
        mounts.push(
            json!({"destination": path, "type": "tmpfs", "source": "tmpfs", "options": options}),
        );
    }
    for v in &o.volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let (host, ctr, mode) = match parts.as_slice() {
            [h, c] => (*h, *c, "rw"),
            [h, c, m] => (*h, *c, *m),
            _ => return Err(bad("--volume", v, "use HOST:CONTAINER[:ro|rw]")),
        };
        if !host.starts_with('/') || !ctr.starts_with('/') {
            return Err(bad("--volume", v, "both paths must be absolute"));
        }
        if !Path::new(host).exists() {
            return Err(bad("--volume", v, "the host path does not exist"));
        }
        let ro = match mode {
            "ro" => "ro",
            "rw" | "" => "rw",
            _ => return Err(bad("--volume", v, "the mode is ro or rw")),
        };
        mounts.push(json!({"destination": ctr, "type": "bind", "source": host,
                           "options": ["rbind", ro, "nosuid", "nodev", "rprivate"]}));
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if o.network == Network::None {
        namespaces.push(json!({"type": "network"}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(m) = &o.memory {
        let bytes = parse_size(m).ok_or_else(|| bad("--memory", m, "use a size like 64m or 1g"))?;
        resources["memory"] = json!({"limit": bytes});
    }
    if let Some(c) = &o.cpus {
        let cpus: f64 = c
            .parse()
            .map_err(|_| bad("--cpus", c, "use a number like 0.5"))?;
        // The kernel's smallest CFS quota is 1 ms of a 100 ms period; NaN
        // and infinity are no CPU count (a cast would make them "no limit").
        if !(0.01..=1_000_000.0).contains(&cpus) {
            return Err(bad("--cpus", c, "must be a number from 0.01 to 1000000"));
        }
        resources["cpu"] = json!({"quota": (cpus * 100_000.0) as i64, "period": 100_000});
    }
    if let Some(p) = o.pids_limit {
        resources["pids"] = json!({"limit": p});
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                        "/sys/firmware", "/sys/devices/virtual/powercap"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    });
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }
    let mut user = json!({"uid": uid, "gid": gid});
    if !gids.is_empty() {
        user["additionalGids"] = json!(gids);
    }
    let value = json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": o.tty,
            "user": user,
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": no_new_privs,
        },
        "root": {"path": rootfs, "readonly": true},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    });
    Ok(Config {
        value,
        default_seccomp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_etc(_: &str) -> Option<String> {
        None
    }

    fn image() -> ImageProcess {
        ImageProcess::from_config(&json!({"config": {
            "Entrypoint": ["/app"], "Cmd": ["--serve"], "Env": ["PATH=/bin", "A=1"],
            "WorkingDir": "/srv", "User": "1000:1000"
        }}))
    }

    #[test]
    fn entrypoint_and_cmd_follow_docker() {
        let img = image();
        let c = config(&img, &LaunchOptions::default(), Path::new("/r"), &no_etc)
            .unwrap()
            .value;
        assert_eq!(c["process"]["args"], json!(["/app", "--serve"]));
        let o = LaunchOptions {
            command: vec!["x".into()],
            ..Default::default()
        };
        let c = config(&img, &o, Path::new("/r"), &no_etc).unwrap().value;
        assert_eq!(c["process"]["args"], json!(["/app", "x"]));
        let o = LaunchOptions {
            entrypoint: Some("/sh".into()),
            ..Default::default()
        };
        let c = config(&img, &o, Path::new("/r"), &no_etc).unwrap().value;
        assert_eq!(c["process"]["args"], json!(["/sh"]));
        let empty = ImageProcess::default();
        assert!(matches!(
            config(&empty, &LaunchOptions::default(), Path::new("/r"), &no_etc,),
            Err(Error::NoCommand)
        ));
    }

    #[test]
    fn root_is_read_only_and_options_apply() {
        let o = LaunchOptions {
            env: vec!["A=2".into(), "B=3".into()],
            memory: Some("64m".into()),
            cpus: Some("0.5".into()),
            pids_limit: Some(20),
            tmpfs: vec!["/tmp:size=1m".into()],
            cap_drop: vec!["all".into()],
            cap_add: vec!["net_bind_service".into()],
            network: Network::Host,
            ..Default::default()
        };
        let Config {
            value: c,
            default_seccomp,
        } = config(&image(), &o, Path::new("/r"), &no_etc).unwrap();
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["process"]["cwd"], "/srv");
        assert_eq!(c["process"]["user"]["uid"], 1000);
        let env = c["process"]["env"].as_array().unwrap();
        assert!(
            env.contains(&json!("A=2"))
                && env.contains(&json!("B=3"))
                && env.contains(&json!("PATH=/bin"))
        );
        assert!(!env.contains(&json!("A=1")));
        assert_eq!(c["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(c["linux"]["resources"]["cpu"]["quota"], 50000);
        assert_eq!(c["linux"]["resources"]["pids"]["limit"], 20);
        assert_eq!(
            c["process"]["capabilities"]["bounding"],
            json!(["CAP_NET_BIND_SERVICE"])
        );
        assert_eq!(c["process"]["noNewPrivileges"], true);
        // The default profile joins the spec typed, not through the JSON.
        assert!(default_seccomp);
        assert!(c["linux"].get("seccomp").is_none());
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        assert!(
            !ns.contains(&json!({"type": "network"})),
            "--network host keeps the host's"
        );
        let tmp = c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/tmp")
            .unwrap();
        assert_eq!(tmp["options"], json!(["nosuid", "nodev", "size=1m"]));
    }

    #[test]
    fn security_opts_and_volumes() {
        let o = LaunchOptions {
            security_opts: vec![
                "seccomp=unconfined".into(),
                "no-new-privileges=false".into(),
            ],
            volumes: vec!["/tmp:/data:ro".into()],
            ..Default::default()
        };
        let Config {
            value: c,
            default_seccomp,
        } = config(&image(), &o, Path::new("/r"), &no_etc).unwrap();
        assert!(!default_seccomp);
        assert!(c["linux"].get("seccomp").is_none());
        // A profile from a file goes into the JSON as it is.
        let file = std::env::temp_dir().join(format!("mica-seccomp-{}.json", std::process::id()));
        std::fs::write(&file, r#"{"defaultAction": "SCMP_ACT_LOG"}"#).unwrap();
        let o = LaunchOptions {
            security_opts: vec![format!("seccomp={}", file.display())],
            ..Default::default()
        };
        let r = config(&image(), &o, Path::new("/r"), &no_etc);
        std::fs::remove_file(&file).unwrap();
        let from_file = r.unwrap();
        assert!(!from_file.default_seccomp);
        assert_eq!(
            from_file.value["linux"]["seccomp"]["defaultAction"],
            "SCMP_ACT_LOG"
        );
        assert_eq!(c["process"]["noNewPrivileges"], false);
        let v = c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .unwrap();
        assert_eq!(v["options"][1], "ro");
        for bad_vol in ["/tmp", "rel:/data", "/tmp:/data:rx", "/does/not/exist:/x"] {
            let o = LaunchOptions {
                volumes: vec![bad_vol.into()],
                ..Default::default()
            };
            assert!(
                config(&image(), &o, Path::new("/r"), &no_etc).is_err(),
                "{bad_vol}"
            );
        }
    }

    #[test]
    fn users_resolve_against_the_image() {
        let etc = |f: &str| match f {
            "passwd" => Some(
                "root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n".to_string(),
            ),
            "group" => Some("root:x:0:\naudio:x:29:user\nuser:x:1000:\nstaff:x:50:\n".to_string()),
            _ => None,
        };
        assert_eq!(resolve_user("user", &etc).unwrap(), (1000, 1000, vec![29]));
        assert_eq!(resolve_user("1000", &etc).unwrap(), (1000, 1000, vec![29]));
        assert_eq!(
            resolve_user("user:staff", &etc).unwrap(),
            (1000, 50, vec![29])
        );
        assert_eq!(
            resolve_user("4242:4343", &etc).unwrap(),
            (4242, 4343, vec![])
        );
        assert!(resolve_user("nobody-here", &etc).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("512kb"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        for bad in [
            "nan",
            "inf",
            "-1",
            "0",
            "0.5",
            "99999999999999999999g",
            "8589934592g",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn impossible_limits_and_nameless_env_are_refused() {
        let with = |f: &dyn Fn(&mut LaunchOptions)| {
            let mut o = LaunchOptions::default();
            f(&mut o);
            config(&image(), &o, Path::new("/r"), &no_etc).map(|c| c.value)
        };
        for c in ["NaN", "inf", "0", "0.000001", "1e30", "-2"] {
            let e = with(&|o| o.cpus = Some(c.into())).unwrap_err().to_string();
            assert!(e.contains("--cpus"), "{c}: {e}");
        }
        let v = with(&|o| o.cpus = Some("0.01".into())).unwrap();
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 1000);
        for m in ["NaN", "0.5", "18446744073709551615"] {
            let e = with(&|o| o.memory = Some(m.into()))
                .unwrap_err()
                .to_string();
            assert!(e.contains("--memory"), "{m}: {e}");
        }
        for e in ["=x", ""] {
            let err = with(&|o| o.env = vec![e.into()]).unwrap_err().to_string();
            assert!(err.contains("--env"), "{e:?}: {err}");
        }
    }
}
