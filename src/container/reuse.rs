//! State directories and files are reused, not made and removed per
//! container.
//!
//! A container used to cost three new inodes in the state root (its
//! directory and one temp file per state save) and as many removals. On ext4
//! without a journal (this machine kind's `/run` and `/tmp`) a new inode is
//! found by scanning past every inode freed in the last seconds (ext4 does
//! not hand those out again soon: `recently_deleted`), so at a few hundred
//! containers a second each new inode cost ~0.3 ms of CPU: 12% of what
//! `mica run` used at concurrency 4. Hence:
//! - a save writes `state.spare` and swaps it with `state.json`
//!   (RENAME_EXCHANGE); the spare then holds the previous state and the next
//!   save writes over it;
//! - a removed container's directory moves to `<root>/@free` (at most
//!   [`FREE_MAX`] wait there) with its files, its last state renamed
//!   `state.old` first; `create` renames one from there to the new
//!   container's name, so a reused directory shows no state until its first
//!   save, which takes `state.old` as its next spare;
//! - `mica launch` bundles (`<root>/.bundles/<id>`, holding `config.json`)
//!   go the same way through `.bundles/@free`, the next launch writing its
//!   config over the one there.
//!
//! `@` is not allowed in an id, so `list` never takes `@free` for a
//! container. A directory is locked before it appears under an id, and
//! moves only by renames: a crash leaves a container without a state (which
//! `delete` removes) or a directory in `@free`. What waits there keeps its
//! last container's state as `state.old` until it is reused (the root is
//! 0700, as runc's).

use super::state::{renameat2, swap_in};
use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where removed containers' directories wait to be reused.
pub const FREE: &str = "@free";
/// About this many wait there at most (each a directory and two small
/// files); removals racing each other may add one each.
pub const FREE_MAX: usize = 32;
const STATE: &str = "state.json";
const SPARE: &str = "state.spare";
const OLD: &str = "state.old";
const FIFO: &str = "exec.fifo";

/// The directory for a new container at `path`, locked before it appears
/// there: one waiting in `<root>/@free`, else a new one made in `@free`
/// (mode 0711) and moved. Locked first, so no `mica delete` of the id can
/// take a directory that is not yet a container's for a crashed create's.
/// `AlreadyExists`: `path` exists. A filesystem that cannot rename so
/// (RENAME_NOREPLACE) gets a plain mkdir, locked after.
pub fn claim(root: &Path, path: &Path) -> io::Result<fs::File> {
    let free = root.join(FREE);
    let waiting = entries(&free)
        .into_iter()
        .flatten()
        .filter(|(name, t)| match *t {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => fs::symlink_metadata(free.join(name)).is_ok_and(|m| m.is_dir()),
            _ => false,
        })
        .map(|(name, _)| free.join(name));
    for dir in waiting
        .chain(std::iter::from_fn(|| Some(make(&free))))
        .take(FREE_MAX * 2)
    {
        let Some(f) = lock_free(&dir) else { continue };
        match renameat2(&dir, path, libc::RENAME_NOREPLACE) {
            Ok(()) => return Ok(f),
            // Another create took it before we locked it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => break,
            Err(e) => return Err(e),
        }
    }
    make_dir(path)?;
    lock_dir(path, true)
}

/// A container's directory: 0711 (not what the umask leaves), as runc's.
fn make_dir(p: &Path) -> io::Result<()> {
    fs::create_dir(p)?;
    let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o711));
    Ok(())
}

/// A new directory in `free` for [`claim`] (its name is this process's: a
/// crashed one's is taken as it is).
fn make(free: &Path) -> PathBuf {
    let _ = fs::DirBuilder::new().mode(0o700).create(free);
    let dir = free.join(format!("new-{}", std::process::id()));
    let _ = make_dir(&dir);
    dir
}

/// Open the directory `dir` and take its lock (`flock`), waiting for it
/// when `wait`, else failing (EWOULDBLOCK) while another process holds it.
pub fn lock_dir(dir: &Path, wait: bool) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)?;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    if unsafe { libc::flock(f.as_raw_fd(), op) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// `dir` in `@free`, opened and locked unless another process holds it
/// (a create taking it, a delete still finishing). Checked to still be the
/// directory at `dir` once locked: while we hold it nobody moves it.
fn lock_free(dir: &Path) -> Option<fs::File> {
    let f = lock_dir(dir, false).ok()?;
    same_file(&f, dir).then_some(f)
}

/// What a retired state directory keeps.
pub const STATE_FILES: &[&str] = &[STATE, SPARE, OLD];
/// What a retired `mica launch` bundle keeps (`.bundles/<id>`, reused the
/// same way through `.bundles/@free`; the next launch writes over it).
pub const BUNDLE_FILES: &[&str] = &["config.json"];

/// Move `dir` (a container's, being removed) to `@free` beside it for a
/// later create, when it holds only the files `keep` names (an exec fifo is
/// removed) and `@free` has room. `false`: it was not moved, the caller
/// removes it.
pub fn retire(dir: &Path, keep: &[&str]) -> bool {
    let (Some(root), Some(name)) = (dir.parent(), dir.file_name()) else {
        return false;
    };
    let Ok(files) = entries(dir) else {
        return false;
    };
    let mut has_state = false;
    for (name, _) in files {
        match name.to_str() {
            Some(FIFO) if fs::remove_file(dir.join(FIFO)).is_ok() => {}
            Some(f) if keep.contains(&f) => has_state |= f == STATE,
            _ => return false,
        }
    }
    let free = root.join(FREE);
    match entries(&free).map(|e| e.len()) {
        Ok(waiting) if waiting >= FREE_MAX => return false,
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let made = fs::DirBuilder::new().mode(0o700).create(&free);
            if made.is_err_and(|e| e.kind() != io::ErrorKind::AlreadyExists) {
                return false;
            }
        }
        Err(_) => return false,
    }
    if has_state && fs::rename(dir.join(STATE), dir.join(OLD)).is_err() {
        return false;
    }
    renameat2(dir, &free.join(name), libc::RENAME_NOREPLACE).is_ok()
}

/// The names in directory `dir` (without `.` and `..`) and their
/// `d_type`s ([`crate::kfile::each_dirent`]: `fs::read_dir` goes through
/// libc's `opendir`, three listings per container).
fn entries(dir: &Path) -> io::Result<Vec<(std::ffi::OsString, u8)>> {
    use std::os::unix::ffi::OsStrExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)?;
    let mut out = Vec::new();
    crate::kfile::each_dirent(f.as_raw_fd(), |name, kind| {
        out.push((
            std::ffi::OsStr::from_bytes(name.to_bytes()).to_os_string(),
            kind,
        ));
        Ok::<(), nix::errno::Errno>(())
    })
    .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    Ok(out)
}

/// Write `data` to `dir`'s spare file and swap it in as `state` (the
/// caller holds the directory's lock: no other writer).
pub fn write_swap(dir: &Path, state: &Path, data: &[u8]) -> io::Result<()> {
    let spare = dir.join(SPARE);
    write_over(&spare, data, 0o600)?;
    if !swap_in(&spare, state)? {
        // The first save: a reused directory's last state is the next spare.
        let _ = fs::rename(dir.join(OLD), &spare);
    }
    Ok(())
}

/// Write `data` as `path`'s content over what it held, in place (a new
/// file gets `mode`): no new inode when it exists, and not truncated to
/// nothing first — closing a file truncated to 0 starts its writeback on
/// ext4 (`auto_da_alloc`), a disk write per container.
pub fn write_over(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    if f.metadata()?.size() > data.len() as u64 {
        f.set_len(data.len() as u64)?;
    }
    Ok(())
}

/// Whether `path` is the file `f` is open on (it may have been removed or
/// replaced since it was opened).
pub fn same_file(f: &fs::File, path: &Path) -> bool {
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{sample, Dir, State};
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// A state root of its own, removed when dropped.
    struct Root(PathBuf);
    impl Root {
        fn new(name: &str) -> Root {
            let p = std::env::temp_dir().join(format!("mica-reuse-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            Root(p)
        }
    }
    impl Drop for Root {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// `dir`'s files and their inode numbers.
    fn files(dir: &Path) -> BTreeMap<String, u64> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    e.metadata().unwrap().ino(),
                )
            })
            .collect()
    }
    fn ino(p: &Path) -> u64 {
        fs::metadata(p).unwrap().ino()
    }
    /// Container `id`'s new directory in `root`, its state saved once.
    fn saved_once(root: &Root, id: &str) -> (Dir, State) {
        let dir = Dir::create(&root.0, id).unwrap();
        let st = sample(id);
        dir.save(&st).unwrap();
        (dir, st)
    }
    fn saved(dir: &Dir) -> String {
        dir.load().unwrap().expect("a state").id
    }

    #[test]
    fn saves_swap_two_files_and_make_no_third() {
        let root = Root::new("saves");
        let (dir, mut st) = saved_once(&root, "c1");
        assert_eq!(files(&dir.path).keys().collect::<Vec<_>>(), [STATE]);
        st.bundle = "/a/longer/bundle/path/than/before".into();
        dir.save(&st).unwrap();
        let two = files(&dir.path);
        assert_eq!(two.keys().collect::<Vec<_>>(), [STATE, SPARE]);
        // The next saves write over the spare: the same two inodes, swapped.
        st.bundle = "/b".into();
        dir.save(&st).unwrap();
        let three = files(&dir.path);
        assert_eq!((three[STATE], three[SPARE]), (two[SPARE], two[STATE]));
        // A shorter state than the spare held is cut to its length.
        assert_eq!(dir.load().unwrap().unwrap().bundle, PathBuf::from("/b"));
        let spare: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path.join(SPARE)).unwrap()).unwrap();
        assert_eq!(spare["bundle"], "/a/longer/bundle/path/than/before");
    }

    #[test]
    fn a_removed_dir_is_reused_with_its_files_and_no_state() {
        let root = Root::new("dirs");
        let (dir, mut st) = saved_once(&root, "old");
        st.phase = super::super::state::Status::Running;
        dir.save(&st).unwrap();
        let (dir_ino, kept) = (ino(&dir.path), files(&dir.path));
        dir.remove().unwrap();
        drop(dir);
        assert!(!root.0.join("old").exists());
        assert_eq!(fs::read_dir(root.0.join(FREE)).unwrap().count(), 1);
        // Not a container to `list`.
        assert!(super::super::ops::list(&root.0).unwrap().is_empty());

        let dir = Dir::create(&root.0, "new").unwrap();
        assert_eq!(ino(&dir.path), dir_ino, "the removed dir, reused");
        assert_eq!(fs::read_dir(root.0.join(FREE)).unwrap().count(), 0);
        assert!(
            dir.load().unwrap().is_none(),
            "no state before the first save"
        );
        dir.save(&sample("new")).unwrap();
        assert_eq!(saved(&dir), "new");
        let mut now: Vec<u64> = files(&dir.path).into_values().collect();
        let mut before: Vec<u64> = kept.into_values().collect();
        now.sort();
        before.sort();
        assert_eq!(now, before, "the same two files, no new one");
        // The old id is gone, whatever its dir became.
        assert!(matches!(
            Dir::open(&root.0, "old"),
            Err(super::super::error::Error::NotFound(_))
        ));
        // An id in use is refused, a dir waiting or not.
        Dir::create(&root.0, "other").unwrap().remove().unwrap();
        assert!(matches!(
            Dir::create(&root.0, "new"),
            Err(super::super::error::Error::Exists(_))
        ));
        assert_eq!(fs::read_dir(root.0.join(FREE)).unwrap().count(), 1);
    }

    #[test]
    fn a_waiting_dir_another_process_holds_is_not_taken() {
        let root = Root::new("held");
        let dir = Dir::create(&root.0, "old").unwrap();
        dir.remove().unwrap();
        drop(dir);
        let waiting = root.0.join(FREE).join("old");
        let old_ino = ino(&waiting);
        let held = fs::File::open(&waiting).unwrap();
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let dir = Dir::create(&root.0, "new").unwrap();
        assert_ne!(ino(&dir.path), ino(&waiting), "a held dir was taken");
        assert!(waiting.is_dir());
        // Nothing else waits: the new dir was made in @free and moved.
        assert_eq!(fs::read_dir(root.0.join(FREE)).unwrap().count(), 1);
        drop(held);
        drop(dir);
        let again = Dir::create(&root.0, "again").unwrap();
        assert_eq!(ino(&again.path), old_ino, "taken once let go");
    }

    #[test]
    fn only_state_files_are_kept_and_only_so_many() {
        let root = Root::new("limit");
        // A dir holding something else is removed, not kept.
        let dir = Dir::create(&root.0, "odd").unwrap();
        fs::write(dir.path.join("something"), b"x").unwrap();
        dir.remove().unwrap();
        assert!(!root.0.join("odd").exists());
        assert!(!root.0.join(FREE).join("odd").exists());
        // Only directories are taken from @free.
        fs::create_dir_all(root.0.join(FREE)).unwrap();
        fs::write(root.0.join(FREE).join("a-file"), b"x").unwrap();
        let dir = Dir::create(&root.0, "after-file").unwrap();
        assert!(dir.path.is_dir());
        fs::remove_file(root.0.join(FREE).join("a-file")).unwrap();
        dir.remove().unwrap();
        let _ = fs::remove_dir_all(root.0.join(FREE));
        // An exec fifo goes; the dir is kept.
        let dir = Dir::create(&root.0, "fifo").unwrap();
        nix::unistd::mkfifo(
            &dir.path.join(FIFO),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        dir.remove().unwrap();
        assert_eq!(files(&root.0.join(FREE).join("fifo")).len(), 0);
        // At most FREE_MAX wait.
        let dirs: Vec<Dir> = (0..FREE_MAX + 2)
            .map(|i| Dir::create(&root.0, &format!("c{i}")).unwrap())
            .collect();
        for d in &dirs {
            d.remove().unwrap();
        }
        assert_eq!(fs::read_dir(root.0.join(FREE)).unwrap().count(), FREE_MAX);
        assert_eq!(
            fs::read_dir(&root.0).unwrap().count(),
            1,
            "only @free is left in the root"
        );
    }

    #[test]
    fn entries_are_what_read_dir_lists_over_several_reads() {
        let root = Root::new("entries");
        let dir = root.0.join("d");
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir(dir.join("sub")).unwrap();
        // ~300 records of ~64 bytes: several getdents64 calls.
        for i in 0..300 {
            fs::write(dir.join(format!("{i:0>40}")), b"").unwrap();
        }
        let mut got: Vec<(String, bool)> = entries(&dir)
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n.into_string().unwrap(), t == libc::DT_DIR))
            .collect();
        let mut want: Vec<(String, bool)> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    e.file_type().unwrap().is_dir(),
                )
            })
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got.len(), 301);
        assert_eq!(got, want);
        assert!(entries(&root.0.join("missing")).is_err());
    }

    #[test]
    fn a_lock_on_a_dir_since_moved_is_not_the_paths() {
        let root = Root::new("same");
        let (a, b) = (root.0.join("a"), root.0.join("b"));
        fs::create_dir_all(&a).unwrap();
        let f = fs::File::open(&a).unwrap();
        assert!(same_file(&f, &a));
        fs::rename(&a, &b).unwrap();
        assert!(!same_file(&f, &a), "gone");
        fs::create_dir(&a).unwrap();
        assert!(!same_file(&f, &a), "another dir of that name");
        assert!(same_file(&f, &b));
    }

    #[test]
    fn launch_bundles_are_kept_with_their_config_and_written_over() {
        let root = Root::new("bundles");
        let bundles = root.0.join(".bundles");
        fs::create_dir_all(&bundles).unwrap();
        let (a, b) = (bundles.join("a"), bundles.join("b"));
        drop(claim(&bundles, &a).unwrap());
        write_over(&a.join("config.json"), b"{\"a longer\": \"config\"}", 0o644).unwrap();
        let (dir_ino, file_ino) = (ino(&a), ino(&a.join("config.json")));
        assert!(retire(&a, BUNDLE_FILES));
        assert!(bundles.join(FREE).join("a").join("config.json").exists());
        // A name in use is refused, and what waits stays.
        fs::create_dir(bundles.join("taken")).unwrap();
        assert!(matches!(
            claim(&bundles, &bundles.join("taken")),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists
        ));
        assert!(bundles.join(FREE).join("a").is_dir());
        drop(claim(&bundles, &b).unwrap());
        assert_eq!((ino(&b), ino(&b.join("config.json"))), (dir_ino, file_ino));
        write_over(&b.join("config.json"), b"{}", 0o644).unwrap();
        assert_eq!(fs::read(b.join("config.json")).unwrap(), b"{}");
        // A bundle with more than its config (a rootfs dir for an overlay) is not kept.
        fs::create_dir(b.join("rootfs")).unwrap();
        assert!(!retire(&b, BUNDLE_FILES));
        // Nor is a state dir's file kept as a bundle's.
        fs::remove_dir(b.join("rootfs")).unwrap();
        fs::write(b.join(STATE), b"{}").unwrap();
        assert!(!retire(&b, BUNDLE_FILES));
    }
}
