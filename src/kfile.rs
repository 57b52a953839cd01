//! Reading the kernel's pseudo-files (procfs, sysfs, cgroupfs).
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
