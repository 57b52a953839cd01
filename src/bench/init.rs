//! mica-init: PID 1 of `mica bench --vm`'s microVM. Not a module of the
//! crate: `mica bench` compiles this file at bench time as a static binary
//! (`rustc -C target-feature=+crt-static`) and puts it at `/init` of the
//! initramfs. It runs its arguments (the workload; default `/bin/true`),
//! prints `mica-init: exit N` on the console and reboots, which makes
//! `qemu -no-reboot` exit (`reboot=t` on the kernel command line).

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

extern "C" {
    fn reboot(cmd: i32) -> i32;
    fn sync();
}

const RB_AUTOBOOT: i32 = 0x0123_4567;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        args.push("/bin/true".into());
    }
    let code = match Command::new(&args[0])
        .args(&args[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .status()
    {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            println!("mica-init: exec {}: {e}", args[0]);
            127
        }
    };
    println!("mica-init: exit {code}");
    let _ = std::io::stdout().flush();
    unsafe {
        sync();
        reboot(RB_AUTOBOOT);
    }
    // PID 1 must never exit (that panics the kernel); reboot does not return.
    loop {
        std::thread::park();
    }
}
