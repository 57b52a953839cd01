//! Reading the kernel's pseudo-files (procfs, sysfs, cgroupfs), and
//! directories without libc's `opendir`.
//!
//! They report a size of 0 (or of a page), so `std::fs::read_to_string`
//! probes with 32 bytes and doubles from there, and the kernel makes the
//! file's whole text again for every read: a `/proc/PID/stat` took six
//! reads, each gathering the task's statistics anew, `/proc/self/mountinfo`
//! eight. One read into a 4 KiB buffer (and one that sees the end) covers the
//! files mica reads; a longer file still reads whole.

use std::io::Read;
use std::path::Path;

/// The whole text of a pseudo-file, in as few reads as it allows.
pub fn read_to_string(path: impl AsRef<Path>) -> std::io::Result<String> {
    read_file(std::fs::File::open(path)?)
}

/// [`read_to_string`] of a file already open.
pub fn read_file(mut f: std::fs::File) -> std::io::Result<String> {
    let mut text = String::with_capacity(4096);
    f.read_to_string(&mut text)?;
    Ok(text)
}

/// Call `f` with the name and `d_type` of each entry of the open directory
/// `dir` (`.` and `..` left out), read with getdents64 into a buffer on the
/// stack: no allocation (the launch child uses it between clone and exec),
/// and not libc's `opendir`, whose buffer musl's malloc maps and unmaps
/// again for every listing.
pub fn each_dirent<E: From<nix::errno::Errno>>(
    dir: std::os::fd::RawFd,
    mut f: impl FnMut(&std::ffi::CStr, u8) -> Result<(), E>,
) -> Result<(), E> {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes of whole
        // linux_dirent64 records into `buf`.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            return Err(nix::errno::Errno::last().into());
        }
        if n == 0 {
            return Ok(());
        }
        let mut off = 0usize;
        while off < n as usize {
            // struct linux_dirent64 { u64 ino; i64 off; u16 reclen; u8 type; char name[]; }
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let kind = buf[off + 18];
            // SAFETY: the name is NUL-terminated within its record.
            let name = unsafe {
                std::ffi::CStr::from_ptr(buf.as_ptr().add(off + 19) as *const libc::c_char)
            };
            off += reclen;
            if name.to_bytes() != b"." && name.to_bytes() != b".." {
                f(name, kind)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_short_and_long_pseudo_files_whole() {
        let stat = super::read_to_string("/proc/self/stat").unwrap();
        assert!(stat.ends_with('\n') && stat.contains(") "), "{stat}");
        // Longer than the first buffer: still whole, line for line.
        let maps = super::read_to_string("/proc/self/smaps").unwrap();
        assert!(maps.len() > 4096, "{}", maps.len());
        assert_eq!(
            maps.lines().last().map(|l| l.starts_with("VmFlags:")),
            Some(true)
        );
        assert!(super::read_to_string("/proc/self/no-such-file").is_err());
    }
}
