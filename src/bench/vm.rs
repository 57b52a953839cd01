//! `--vm`: the workload's rootfs booted as a qemu microVM. A Debian kernel
//! (`apt-get download`, unpacked into a cache dir, or `--kernel`), an
//! initramfs of the rootfs plus our static init (`init.rs`, compiled at bench
//! time), KVM when it boots, else TCG. Timed from qemu's spawn to its exit.

use super::contender::Sample;
use super::proc::{self, Output, Spawn};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The init's source, compiled at bench time.
const INIT_SRC: &str = include_str!("init.rs");

/// Kernel command line; TCG needs `tsc=reliable no_timer_check` to boot
/// reliably, and on a busy host also a given TSC frequency (`tsc_early_khz`,
/// added by [`append`]): calibrating it against the emulated PIT can fail
/// and hang the boot.
const APPEND: &str =
    "console=ttyS0 quiet panic=-1 reboot=t tsc=reliable no_timer_check rdinit=/init";

/// The full command line for `args`.
fn append(args: &[String]) -> String {
    let mhz = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("cpu MHz").and_then(|v| {
                    v.trim_start_matches([' ', '\t', ':'])
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
            })
        })
        .filter(|m| *m > 100.0)
        .unwrap_or(2000.0);
    format!(
        "{APPEND} tsc_early_khz={} -- {}",
        (mhz * 1000.0) as u64,
        args.join(" ")
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Auto,
    Kvm,
    Tcg,
}

impl std::str::FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Accel, String> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            _ => Err(format!("--accel {s:?}: expected auto, kvm or tcg")),
        }
    }
}

pub struct Vm {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// "kvm" or "tcg"
    pub accel: String,
    pub args: Vec<String>,
    pub timeout: Duration,
}

/// Where downloaded kernels and the built init are kept.
pub fn cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("mica");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".cache/mica")
}

impl Vm {
    fn command(&self, accel: &str) -> Command {
        let mut c = Command::new(&self.qemu);
        c.arg("-M").arg(format!("microvm,accel={accel}"));
        if accel == "kvm" {
            c.args(["-cpu", "host"]);
        }
        c.args([
            "-m",
            "256M",
            "-smp",
            "1",
            "-no-reboot",
            "-nodefaults",
            "-no-user-config",
        ])
        .args(["-display", "none", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&self.kernel)
        .arg("-initrd")
        .arg(&self.initrd)
        .arg("-append")
        .arg(append(&self.args));
        c
    }

    fn boot(&self, accel: &str, out: &mut Output, timeout: Duration) -> Result<Sample, String> {
        out.reset().map_err(|e| e.to_string())?;
        let o = proc::run(
            &mut self.command(accel),
            &Spawn {
                mount_ns: None,
                timeout: Some(timeout),
                output: Some(out),
                timed: true,
            },
        )
        .map_err(|e| format!("spawn {}: {e}", self.qemu.display()))?;
        let console = out.stdout();
        if o.timed_out {
            return Err(format!("no exit within {} s", timeout.as_secs()));
        }
        match parse_exit(&console) {
            Some(0) => Ok(Sample {
                ms: o.elapsed.as_secs_f64() * 1000.0,
                rss_kib: o.maxrss_kib,
                parts_ms: vec![],
            }),
            Some(n) => Err(format!("the workload exited {n} in the VM")),
            None => {
                let why = out.last_err_line();
                let tail = super::proc::last_line(&console);
                Err(format!(
                    "qemu exited {} without the init's status: {why}{tail}",
                    o.status
                ))
            }
        }
    }

    pub fn once(&self, out: &mut Output) -> Result<Sample, String> {
        self.boot(&self.accel.clone(), out, self.timeout)
    }
}

/// `mica-init: exit N` from the serial console.
pub fn parse_exit(console: &str) -> Option<i32> {
    console
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("mica-init: exit ")
                .and_then(|n| n.trim().parse().ok())
        })
        .next_back()
}

/// Everything the VM contender needs; Err says why it is skipped. `note`
/// gets which accelerator runs it and why.
pub fn prepare(
    kernel: Option<&Path>,
    accel: Accel,
    rootfs: &Path,
    args: &[String],
    work: &Path,
    note: &mut String,
) -> Result<Vm, String> {
    let qemu = proc::which("qemu-system-x86_64")
        .ok_or("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")?;
    let kernel = match kernel {
        Some(k) => k.to_path_buf(),
        None => debian_kernel(&cache_dir().join("kernel"))?,
    };
    let init = build_init(&cache_dir())?;
    let initrd = work.join("initramfs.cpio");
    write_initramfs(rootfs, &init, &initrd).map_err(|e| format!("initramfs: {e}"))?;
    let mut vm = Vm {
        qemu,
        kernel: kernel.clone(),
        initrd,
        accel: "tcg".into(),
        args: args.to_vec(),
        timeout: Duration::from_secs(120),
    };
    let kname = kernel
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Output::new(work, "vm-probe").map_err(|e| e.to_string())?;
    let kvm_ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    match accel {
        Accel::Tcg => *note = format!("qemu -M microvm, TCG (--accel tcg), kernel {kname}"),
        Accel::Kvm => {
            if !kvm_ok {
                return Err("--accel kvm: /dev/kvm cannot be opened".into());
            }
            vm.boot("kvm", &mut out, Duration::from_secs(30))
                .map_err(|e| format!("KVM: {e}"))?;
            vm.accel = "kvm".into();
            *note = format!("qemu -M microvm, KVM, kernel {kname}");
        }
        Accel::Auto => {
            let why = if !kvm_ok {
                "/dev/kvm cannot be opened".to_string()
            } else {
                match vm.boot("kvm", &mut out, Duration::from_secs(12)) {
                    Ok(_) => String::new(),
                    Err(e) => e,
                }
            };
            if why.is_empty() {
                vm.accel = "kvm".into();
                *note = format!("qemu -M microvm, KVM, kernel {kname}");
            } else {
                *note = format!(
                    "qemu -M microvm, TCG: KVM cannot boot it here ({why}); kernel {kname}"
                );
            }
        }
    }
    if vm.accel == "tcg" {
        // One boot to be sure it works at all (and to warm the page cache).
        vm.boot("tcg", &mut out, vm.timeout)
            .map_err(|e| format!("TCG: {e}"))?;
    }
    Ok(vm)
}

/// The newest `boot/vmlinuz-*` under `dir`, downloading Debian's
/// linux-image-amd64 (and the versioned package it depends on) first if
/// there is none.
pub fn debian_kernel(dir: &Path) -> Result<PathBuf, String> {
    if let Some(k) = find_vmlinuz(dir) {
        return Ok(k);
    }
    let apt =
        proc::which("apt-get").ok_or("no kernel: --kernel not given and apt-get not found")?;
    let dpkg = proc::which("dpkg-deb").ok_or("no kernel: dpkg-deb not found")?;
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("mkdir {}: {e}", debs.display()))?;
    let download = |pkg: &str| -> Result<PathBuf, String> {
        proc::helper(
            Command::new(&apt)
                .current_dir(&debs)
                .args(["download", "-q", pkg]),
        )
        .map_err(|e| format!("{e} (apt-get update may help)"))?;
        newest(&debs, &format!("{pkg}_"), ".deb")
            .ok_or_else(|| format!("apt-get download {pkg}: no .deb"))
    };
    let meta = download("linux-image-amd64")?;
    let deps = proc::helper(Command::new(&dpkg).arg("-f").arg(&meta).arg("Depends"))?;
    let versioned = deps
        .split([',', '|'])
        .map(|d| d.trim().split(' ').next().unwrap_or("").to_string())
        .find(|d| d.starts_with("linux-image-"))
        .ok_or_else(|| format!("linux-image-amd64 depends on no linux-image-*: {deps}"))?;
    let deb = download(&versioned)?;
    proc::helper(Command::new(&dpkg).arg("-x").arg(&deb).arg(dir))?;
    let _ = std::fs::remove_dir_all(dir.join("lib/modules"));
    find_vmlinuz(dir).ok_or_else(|| format!("{} holds no boot/vmlinuz-*", deb.display()))
}

fn newest(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    v.sort();
    v.pop()
}

fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    newest(&dir.join("boot"), "vmlinuz-", "")
}

/// Compile `init.rs` into a static binary in `cache` (once per source).
pub fn build_init(cache: &Path) -> Result<PathBuf, String> {
    build_static(cache, "mica-init", INIT_SRC)
}

/// Compile the one-file program `src` into a static binary `name` in
/// `cache` (once per source and recipe).
pub fn build_static(cache: &Path, name: &str, src: &str) -> Result<PathBuf, String> {
    use sha2::Digest;
    const RECIPE: &[u8] = b"rustc -O, static: musl if rustup has it, else glibc";
    let h: String = sha2::Sha256::digest([src.as_bytes(), RECIPE].concat())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache.join(format!("{name}-{h}"));
    let bin = dir.join(name);
    if bin.exists() {
        return Ok(bin);
    }
    let rustc = proc::which("rustc")
        .ok_or("rustc not found: it builds the bench's small static helpers")?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let src_path = dir.join(format!("{name}.rs"));
    std::fs::write(&src_path, src).map_err(|e| format!("write {}: {e}", src_path.display()))?;
    let tmp = dir.join(format!("{name}.tmp"));
    // Against musl when rustup has that target: a static glibc program spends
    // about a millisecond of CPU at start-up probing the CPU here (cpuid traps
    // in this VM), musl's 0.05 ms. The stopwatch starts with every timed sample.
    let musl = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let rustc_with = |extra: &[&str]| {
        let mut c = Command::new(&rustc);
        c.args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(extra)
        .arg("-o")
        .arg(&tmp)
        .arg(&src_path);
        c
    };
    let musl_args = ["--target", musl.as_str(), "-C", "relocation-model=static"];
    if proc::helper(&mut rustc_with(&musl_args)).is_err() {
        proc::helper(&mut rustc_with(&["-C", "target-feature=+crt-static"]))?;
    }
    std::fs::rename(&tmp, &bin).map_err(|e| e.to_string())?;
    Ok(bin)
}

/// A `newc` cpio archive writer (what the kernel unpacks as initramfs).
pub struct Cpio<W: Write> {
    w: W,
    ino: u32,
    off: u64,
}

impl<W: Write> Cpio<W> {
    pub fn new(w: W) -> Self {
        Cpio { w, ino: 1, off: 0 }
    }

    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.w.write_all(b)?;
        self.off += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> std::io::Result<()> {
        let n = ((4 - self.off % 4) % 4) as usize;
        self.put(&[0u8; 3][..n])
    }

    /// One entry: `mode` includes the file type bits; `rdev` for devices.
    #[allow(clippy::too_many_arguments)]
    pub fn entry(
        &mut self,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: u32,
        data: &[u8],
        rdev: (u32, u32),
    ) -> std::io::Result<()> {
        let ino = self.ino;
        self.ino += 1;
        let nlink = if mode & libc::S_IFMT == libc::S_IFDIR {
            2
        } else {
            1
        };
        let hdr = format!(
            "070701{ino:08X}{mode:08X}{uid:08X}{gid:08X}{nlink:08X}{mtime:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            data.len(),
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.put(hdr.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.entry("TRAILER!!!", 0, 0, 0, 0, &[], (0, 0))?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// The rootfs (without any `/init` of its own) plus our init at `/init`
/// and a `/dev/console` node.
pub fn write_initramfs(rootfs: &Path, init: &Path, out: &Path) -> std::io::Result<()> {
    let f = std::fs::File::create(out)?;
    let mut c = Cpio::new(std::io::BufWriter::new(f));
    let mut has_dev = false;
    fn walk<W: Write>(
        c: &mut Cpio<W>,
        base: &Path,
        rel: &str,
        has_dev: &mut bool,
    ) -> std::io::Result<()> {
        let dir = if rel.is_empty() {
            base.to_path_buf()
        } else {
            base.join(rel)
        };
        let mut names: Vec<_> = std::fs::read_dir(&dir)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let n = n.to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            if r == "init" {
                continue;
            }
            let p = base.join(&r);
            let m = std::fs::symlink_metadata(&p)?;
            let ft = m.file_type();
            let (uid, gid, mtime) = (m.uid(), m.gid(), m.mtime().clamp(0, u32::MAX as i64) as u32);
            let mode = m.mode();
            if ft.is_dir() {
                if r == "dev" {
                    *has_dev = true;
                }
                c.entry(&r, mode, uid, gid, mtime, &[], (0, 0))?;
                walk(c, base, &r, has_dev)?;
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p)?;
                c.entry(
                    &r,
                    mode,
                    uid,
                    gid,
                    mtime,
                    t.as_os_str().as_encoded_bytes(),
                    (0, 0),
                )?;
            } else if ft.is_file() {
                c.entry(&r, mode, uid, gid, mtime, &std::fs::read(&p)?, (0, 0))?;
            }
            // Sockets, fifos and device nodes in a rootfs are left out.
        }
        Ok(())
    }
    walk(&mut c, rootfs, "", &mut has_dev)?;
    if !has_dev {
        c.entry("dev", libc::S_IFDIR | 0o755, 0, 0, 0, &[], (0, 0))?;
    }
    c.entry("dev/console", libc::S_IFCHR | 0o600, 0, 0, 0, &[], (5, 1))?;
    let init_data = std::fs::read(init)?;
    let perm = std::fs::metadata(init)?.permissions().mode() & 0o7777;
    c.entry(
        "init",
        libc::S_IFREG | perm | 0o755,
        0,
        0,
        0,
        &init_data,
        (0, 0),
    )?;
    c.finish()?;
    Ok(())
}
