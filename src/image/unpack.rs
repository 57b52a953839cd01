//! Safe layer extraction, and the per-image mountpoints layer.
//!
//! tar's own `unpack` is not the safety boundary. Every entry's parent is
//! resolved inside the layer directory with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`: `..`, absolute symlinks and symlinks created by
//! earlier entries resolve as if the layer were `/`, so nothing can land
//! outside it. The entry itself is then created with `*at()` calls relative
//! to that parent fd, never following a final symlink (`O_NOFOLLOW`,
//! `O_EXCL`, `AT_SYMLINK_NOFOLLOW`). Paths with `..` components are refused;
//! absolute paths are taken relative to the layer. Hard link targets are
//! resolved in-root with no symlink allowed on the way. Device nodes and
//! fifos are refused; only whiteouts become (0/0 character) devices.
//!
//! Layers are stacked by overlayfs, so OCI whiteouts become what overlayfs
//! understands: `.wh.NAME` -> a 0/0 character device NAME; `.wh..wh..opq`
//! -> `trusted.overlay.opaque=y` on the directory. AUFS metadata
//! (`.wh..wh.plnk`, `.wh..wh..orph`, ...) is dropped. `trusted.overlay.*`
//! xattrs coming from the archive are dropped too: only mica decides what
//! overlayfs sees.

use super::{sys, Error, Result};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// Ownership, permissions, times and xattrs of an entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

/// Split an archive path into components: leading `/` and `.` dropped,
/// `..` refused.
fn components(path: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("a path with a \"..\" component is refused".into()),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

/// PAX time `SECONDS[.FRACTION]`.
fn pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    if secs < 0 {
        return Some((secs, 0));
    }
    let mut nanos = 0u32;
    for (i, d) in frac.bytes().take(9).enumerate() {
        if !d.is_ascii_digit() {
            return None;
        }
        nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
    }
    Some((secs, nanos))
}

/// A numeric header field; blank (all NUL/space) reads as 0, as Go's
/// archive/tar (which writes many images) reads it.
fn field<T: Default>(value: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    match value {
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(T::default()),
        v => v,
    }
}

fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let old = h.as_old();
    let mode = field(h.mode(), &old.mode)? & 0o7777;
    let mut uid = field(h.uid(), &old.uid)?;
    let mut gid = field(h.gid(), &old.gid)?;
    let mut mtime = (field(h.mtime(), &old.mtime)? as i64, 0u32);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let (k, v) = (ext.key_bytes(), ext.value_bytes());
            let num = || {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
            };
            match k {
                b"uid" => uid = num().ok_or_else(|| bad_data("PAX uid"))?,
                b"gid" => gid = num().ok_or_else(|| bad_data("PAX gid"))?,
                b"mtime" => mtime = pax_time(v).ok_or_else(|| bad_data("PAX mtime"))?,
                _ => {
                    if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                        xattrs.push((name.to_vec(), v.to_vec()));
                    }
                }
            }
        }
    }
    let id = |n: u64, what| u32::try_from(n).map_err(|_| bad_data(what));
    Ok(Meta {
        mode,
        uid: id(uid, "uid out of range")?,
        gid: id(gid, "gid out of range")?,
        mtime,
        xattrs: xattrs
            .into_iter()
            .filter(|(k, _)| !k.starts_with(b"trusted.overlay."))
            .collect(),
    })
}

fn bad_data(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad {what}"))
}

fn is_enoent(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// What unpacking one layer may take of the filesystem it lands on: what is
/// available there (`f_bavail`: the blocks only root may use stay untouched)
/// less a reserve of 5% of the filesystem (at most 256 MiB), and the free
/// inodes less 5% (at most 10,000). A layer that needs more (a decompression
/// bomb, or an image too big for the store) is refused before the disk or
/// its inodes run out, and the import leaves nothing behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budget {
    pub bytes: u64,
    /// None: the filesystem does not count inodes (it reports 0 files).
    pub inodes: Option<u64>,
}

impl Budget {
    // statvfs's counts are 32-bit on some targets.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn of(st: &libc::statvfs) -> Budget {
        let frsize = st.f_frsize.max(1) as u64;
        let size = (st.f_blocks as u64).saturating_mul(frsize);
        let reserve = (size / 20).min(256 << 20);
        let files = st.f_files as u64;
        Budget {
            bytes: (st.f_bavail as u64)
                .saturating_mul(frsize)
                .saturating_sub(reserve),
            inodes: (files > 0)
                .then(|| (st.f_favail as u64).saturating_sub((files / 20).min(10_000))),
        }
    }
}

/// Unpacks one layer into an empty directory.
struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a str,
    /// What this layer may still take (see [`Budget`]).
    budget: Budget,
    /// Directory mtimes, set once their content is written.
    dir_times: Vec<(Vec<u8>, (i64, u32))>,
}

/// Unpack the tar stream `reader` into the empty directory `dest`.
/// `layer` names the layer in errors. The reader is left wherever the tar
/// ended (the caller drains it to finish its digest).
pub(crate) fn unpack_layer(reader: &mut dyn Read, dest: &Path, layer: &str) -> Result<()> {
    let root = sys::open_dir(dest).map_err(super::io_err(dest))?;
    let budget = Budget::of(&sys::fstatvfs(root.as_fd()).map_err(super::io_err(dest))?);
    let mut u = Unpacker {
        root,
        layer,
        budget,
        dir_times: Vec::new(),
    };
    let mut ar = tar::Archive::new(reader);
    let entries = ar.entries().map_err(|e| stream_err(layer, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| stream_err(layer, e))?;
        let path = entry.path_bytes().into_owned();
        u.entry(&mut entry, &path)?;
    }
    u.finish()
}

fn stream_err(layer: &str, e: io::Error) -> Error {
    Error::Invalid(format!("layer {layer}: reading the tar stream: {e}"))
}

impl Unpacker<'_> {
    fn err(&self, path: &[u8], reason: impl Into<String>) -> Error {
        Error::Layer {
            layer: self.layer.to_string(),
            entry: lossy(path),
            reason: reason.into(),
        }
    }

    fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The layer needs more `what` than the store's filesystem can spare.
    fn too_big(&self, path: &[u8], what: &str) -> Error {
        self.err(
            path,
            format!(
                "the layer needs more {what} than the store's filesystem can spare (mica keeps \
                 5% of it free, at most 256 MiB and 10000 inodes): refused, as a decompression \
                 bomb would be"
            ),
        )
    }

    /// One inode more for `path`.
    fn take_inode(&mut self, path: &[u8]) -> Result<()> {
        match self.budget.inodes {
            Some(0) => Err(self.too_big(path, "inodes")),
            Some(n) => {
                self.budget.inodes = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, path: &[u8]) -> Result<()> {
        use tar::EntryType as T;
        let etype = entry.header().entry_type();
        match etype {
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => return Ok(()),
            _ => {}
        }
        let comps = components(path).map_err(|r| self.err(path, r))?;
        let Some((name, parents)) = comps.split_last() else {
            // The layer's root itself ("./").
            if etype != T::Directory {
                return Err(self.err(path, "the layer's root entry is not a directory"));
            }
            let meta = entry_meta(entry).map_err(|e| self.err(path, e.to_string()))?;
            let fd = sys::openat2(self.root(), b".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                .map_err(|e| self.err(path, e.to_string()))?;
            self.apply_fd(path, fd.as_fd(), &meta)?;
            self.dir_times.push((Vec::new(), meta.mtime));
            return Ok(());
        };

        // AUFS metadata anywhere in the path: dropped.
        if parents.iter().any(|c| c.starts_with(AUFS_META_PREFIX))
            || (name.starts_with(AUFS_META_PREFIX) && name.as_slice() != OPAQUE_MARKER)
        {
            return Ok(());
        }
        if name.as_slice() == OPAQUE_MARKER {
            return self.opaque(path, parents);
        }
        if etype != T::Link {
            self.take_inode(path)?;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(path, parents, hidden);
        }

        match etype {
            T::Directory | T::Regular | T::Continuous | T::GNUSparse | T::Symlink | T::Link => {}
            T::Char => {
                return Err(self.err(
                    path,
                    "is a character device; mica refuses device nodes in images",
                ))
            }
            T::Block => {
                return Err(self.err(
                    path,
                    "is a block device; mica refuses device nodes in images",
                ))
            }
            T::Fifo => {
                return Err(self.err(path, "is a fifo; mica refuses special files in images"))
            }
            other => {
                return Err(self.err(
                    path,
                    format!("unsupported entry type {:?}", other.as_byte() as char),
                ))
            }
        }
        let parent = self.parent(path, parents)?;
        let pfd = parent.as_fd();
        match etype {
            T::Directory => {
                let meta = entry_meta(entry).map_err(|e| self.err(path, e.to_string()))?;
                if !self.clear(path, pfd, name, true)? {
                    sys::mkdirat(pfd, name, 0o700)
                        .map_err(|e| self.err(path, format!("mkdir: {e}")))?;
                }
                let fd = sys::openat(
                    pfd,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(|e| self.err(path, format!("open: {e}")))?;
                self.apply_fd(path, fd.as_fd(), &meta)?;
                self.dir_times.push((join(&comps), meta.mtime));
            }
            T::Symlink => {
                let meta = entry_meta(entry).map_err(|e| self.err(path, e.to_string()))?;
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.is_empty() {
                    return Err(self.err(path, "symlink with an empty target"));
                }
                self.clear(path, pfd, name, false)?;
                sys::symlinkat(&target, pfd, name)
                    .map_err(|e| self.err(path, format!("symlink: {e}")))?;
                sys::lchownat(pfd, name, meta.uid, meta.gid)
                    .map_err(|e| self.err(path, format!("chown: {e}")))?;
                for (k, v) in &meta.xattrs {
                    match sys::lsetxattrat(pfd, name, k, v) {
                        // Only trusted.* and security.* fit on a symlink.
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::EPERM) | Some(libc::ENOTSUP)
                            ) => {}
                        r => r.map_err(|e| self.err(path, format!("xattr {}: {e}", lossy(k))))?,
                    }
                }
                sys::lutimensat(pfd, name, meta.mtime)
                    .map_err(|e| self.err(path, format!("set times: {e}")))?;
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.hardlink(path, &comps, pfd, name, &target)?;
            }
            _ => {
                // Regular file.
                let meta = entry_meta(entry).map_err(|e| self.err(path, e.to_string()))?;
                self.clear(path, pfd, name, false)?;
                let fd = sys::openat(
                    pfd,
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(|e| self.err(path, format!("create: {e}")))?;
                let mut f = fs::File::from(fd);
                let left = self.budget.bytes;
                let n = io::copy(&mut (&mut *entry).take(left.saturating_add(1)), &mut f)
                    .map_err(|e| self.err(path, format!("write: {e}")))?;
                if n > left {
                    return Err(self.too_big(path, "space"));
                }
                self.budget.bytes -= n;
                self.apply_fd(path, f.as_fd(), &meta)?;
                sys::futimens(f.as_fd(), meta.mtime)
                    .map_err(|e| self.err(path, format!("set times: {e}")))?;
            }
        }
        Ok(())
    }

    /// Owner, then mode (chown clears setuid bits), then xattrs (chown and
    /// writes clear security.capability).
    fn apply_fd(&self, path: &[u8], fd: BorrowedFd<'_>, meta: &Meta) -> Result<()> {
        sys::fchown(fd, meta.uid, meta.gid).map_err(|e| self.err(path, format!("chown: {e}")))?;
        sys::fchmod(fd, meta.mode).map_err(|e| self.err(path, format!("chmod: {e}")))?;
        for (k, v) in &meta.xattrs {
            sys::fsetxattr(fd, k, v)
                .map_err(|e| self.err(path, format!("xattr {}: {e}", lossy(k))))?;
        }
        Ok(())
    }

    /// Make room for a new entry `name` in `pfd`: an existing non-directory
    /// is removed; an existing directory is kept when the new entry is one
    /// too (returns true), and refused otherwise.
    fn clear(
        &self,
        path: &[u8],
        pfd: BorrowedFd<'_>,
        name: &[u8],
        new_is_dir: bool,
    ) -> Result<bool> {
        match sys::lstatat(pfd, name) {
            Err(e) if is_enoent(&e) => Ok(false),
            Err(e) => Err(self.err(path, format!("stat: {e}"))),
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                if new_is_dir {
                    Ok(true)
                } else {
                    Err(self.err(path, "would replace a directory of the same layer"))
                }
            }
            Ok(_) => {
                sys::unlinkat(pfd, name, 0).map_err(|e| self.err(path, format!("unlink: {e}")))?;
                Ok(false)
            }
        }
    }

    /// The directory `parents` (resolved in-root), created with mode 0755
    /// where missing. Returns an O_PATH fd.
    fn parent(&self, path: &[u8], parents: &[Vec<u8>]) -> Result<OwnedFd> {
        let flags = libc::O_PATH | libc::O_DIRECTORY;
        let whole = join(parents);
        match sys::open_in_root(self.root(), &whole, flags) {
            Ok(fd) => return Ok(fd),
            Err(e) if is_enoent(&e) => {}
            Err(e) => return Err(self.parent_err(path, &whole, e)),
        }
        let mut cur = sys::open_in_root(self.root(), b"", flags)
            .map_err(|e| self.err(path, e.to_string()))?;
        for i in 0..parents.len() {
            let prefix = join(&parents[..=i]);
            match sys::open_in_root(self.root(), &prefix, flags) {
                Ok(fd) => cur = fd,
                Err(e) if is_enoent(&e) => {
                    match sys::mkdirat(cur.as_fd(), &parents[i], 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                            return Err(self.err(
                                path,
                                format!(
                                    "parent {} is a symlink to a missing directory",
                                    lossy(&prefix)
                                ),
                            ))
                        }
                        Err(e) => {
                            return Err(self.err(path, format!("mkdir {}: {e}", lossy(&prefix))))
                        }
                    }
                    cur = sys::openat(cur.as_fd(), &parents[i], flags | libc::O_NOFOLLOW, 0)
                        .map_err(|e| self.err(path, format!("open {}: {e}", lossy(&prefix))))?;
                }
                Err(e) => return Err(self.parent_err(path, &prefix, e)),
            }
        }
        Ok(cur)
    }

    fn parent_err(&self, path: &[u8], parent: &[u8], e: io::Error) -> Error {
        let reason = match e.raw_os_error() {
            Some(libc::ENOTDIR) => format!("parent {} is not a directory", lossy(parent)),
            Some(libc::ELOOP) => format!("parent {}: too many symlinks", lossy(parent)),
            _ => format!("parent {}: {e}", lossy(parent)),
        };
        self.err(path, reason)
    }

    fn hardlink(
        &self,
        path: &[u8],
        comps: &[Vec<u8>],
        pfd: BorrowedFd<'_>,
        name: &[u8],
        target: &[u8],
    ) -> Result<()> {
        let tcomps =
            components(target).map_err(|r| self.err(path, format!("hard link target: {r}")))?;
        if tcomps.is_empty() {
            return Err(self.err(path, "hard link with an empty target"));
        }
        if tcomps == comps {
            return Ok(());
        }
        let tpath = join(&tcomps);
        let src = sys::openat2(
            self.root(),
            &tpath,
            libc::O_PATH | libc::O_NOFOLLOW,
            sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_SYMLINKS,
        )
        .map_err(|e| {
            let reason = match e.raw_os_error() {
                Some(libc::ENOENT) => {
                    format!("hard link target {} is not in this layer", lossy(&tpath))
                }
                Some(libc::ELOOP) => {
                    format!("hard link target {} goes through a symlink", lossy(&tpath))
                }
                _ => format!("hard link target {}: {e}", lossy(&tpath)),
            };
            self.err(path, reason)
        })?;
        let st = sys::fstat(src.as_fd()).map_err(|e| self.err(path, e.to_string()))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(self.err(path, format!("hard link to directory {}", lossy(&tpath))));
        }
        self.clear(path, pfd, name, false)?;
        sys::link_fd(src.as_fd(), pfd, name).map_err(|e| self.err(path, format!("link: {e}")))
    }

    fn whiteout(&self, path: &[u8], parents: &[Vec<u8>], hidden: &[u8]) -> Result<()> {
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.err(path, "whiteout without a name"));
        }
        let parent = self.parent(path, parents)?;
        self.clear(path, parent.as_fd(), hidden, false)?;
        sys::mknodat(parent.as_fd(), hidden, libc::S_IFCHR, libc::makedev(0, 0))
            .map_err(|e| self.err(path, format!("mknod whiteout: {e}")))
    }

    fn opaque(&self, path: &[u8], parents: &[Vec<u8>]) -> Result<()> {
        drop(self.parent(path, parents)?);
        let dir = sys::open_in_root(
            self.root(),
            &join(parents),
            libc::O_RDONLY | libc::O_DIRECTORY,
        )
        .map_err(|e| self.parent_err(path, &join(parents), e))?;
        sys::fsetxattr(dir.as_fd(), OPAQUE_XATTR.as_bytes(), b"y")
            .map_err(|e| self.err(path, format!("set {OPAQUE_XATTR}: {e}")))
    }

    /// Directory times last: writing into a directory changes its mtime.
    fn finish(self) -> Result<()> {
        for (path, mtime) in &self.dir_times {
            let fd = sys::open_in_root(
                self.root(),
                path,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            )
            .map_err(|e| self.err(path, format!("open: {e}")))?;
            sys::futimens(fd.as_fd(), *mtime)
                .map_err(|e| self.err(path, format!("set times: {e}")))?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ mountpoints

/// Directories a runtime mounts on, with the mode given when the image
/// lacks them.
const MOUNT_DIRS: &[(&str, u32)] = &[
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("dev/pts", 0o755),
    ("dev/shm", 0o1777),
    ("dev/mqueue", 0o755),
    ("tmp", 0o1777),
    ("run", 0o755),
    ("etc", 0o755),
];
/// Files a runtime bind-mounts onto.
const MOUNT_FILES: &[&str] = &["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// What the merged (overlayfs) view of the layers shows at a path.
#[derive(Debug)]
enum Found {
    Absent,
    /// A directory; the path of its topmost copy.
    Dir(PathBuf),
    Other,
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    matches!(sys::lgetxattr(p, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// Look `rel` up through `layers` (top first) as overlayfs would: the
/// topmost entry decides; whiteouts hide, opaque dirs stop the merge.
fn lookup(layers: &[PathBuf], rel: &str) -> Found {
    let comps: Vec<&str> = rel.split('/').collect();
    let mut cands: Vec<&PathBuf> = layers.iter().collect();
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        let mut dirs = Vec::new();
        let mut other = false;
        for l in &cands {
            let p = l.join(&prefix);
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if is_whiteout(&m) {
                break;
            }
            if !m.is_dir() {
                other = dirs.is_empty();
                break;
            }
            dirs.push(*l);
            if is_opaque(&p) {
                break;
            }
        }
        if dirs.is_empty() {
            return if other { Found::Other } else { Found::Absent };
        }
        cands = dirs;
    }
    Found::Dir(cands[0].join(rel))
}

fn copy_dir_meta(from: &Path, to: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(from)?;
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777))?;
    let fd = sys::open_dir(to)?;
    sys::futimens(fd.as_fd(), (m.mtime(), m.mtime_nsec() as u32))
}

/// Fill `dest` (empty) with the mountpoints the merged `layers` (top first)
/// lack. Directories the image has are recreated here only as parents,
/// with the image's owner, mode and times.
pub(crate) fn make_mountpoints(layers: &[PathBuf], dest: &Path) -> io::Result<()> {
    // (image dir, its copy here): attributes copied once the copy is filled.
    let mut copies: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut ensure_parents = |rel: &str| -> io::Result<()> {
        let comps: Vec<&str> = rel.split('/').collect();
        for i in 1..comps.len() {
            let a = comps[..i].join("/");
            let d = dest.join(&a);
            if fs::symlink_metadata(&d).is_ok() {
                continue;
            }
            fs::create_dir(&d)?;
            match lookup(layers, &a) {
                Found::Dir(p) => copies.push((p, d)),
                _ => fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?,
            }
        }
        Ok(())
    };
    for (rel, mode) in MOUNT_DIRS {
        if let Found::Absent = lookup(layers, rel) {
            ensure_parents(rel)?;
            let d = dest.join(rel);
            if fs::symlink_metadata(&d).is_err() {
                fs::create_dir(&d)?;
            }
            fs::set_permissions(&d, fs::Permissions::from_mode(*mode))?;
        }
    }
    for rel in MOUNT_FILES {
        if let Found::Absent = lookup(layers, rel) {
            ensure_parents(rel)?;
            let f = dest.join(rel);
            fs::File::create(&f)?;
            fs::set_permissions(&f, fs::Permissions::from_mode(0o644))?;
        }
    }
    // The top layer's root decides the merged root's attributes: keep them.
    match layers.first() {
        Some(top) => copies.push((top.clone(), dest.to_path_buf())),
        None => fs::set_permissions(dest, fs::Permissions::from_mode(0o755))?,
    }
    // Deepest first, so setting a child's times leaves its parent's alone.
    copies.sort_by_key(|(_, d)| std::cmp::Reverse(d.components().count()));
    for (from, to) in &copies {
        copy_dir_meta(from, to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_a_reserve() {
        let st = |blocks: u64, bavail: u64, files: u64, favail: u64| {
            let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
            s.f_frsize = 4096;
            s.f_blocks = blocks as _;
            s.f_bavail = bavail as _;
            s.f_files = files as _;
            s.f_favail = favail as _;
            s
        };
        const MIB: u64 = 1 << 20;
        // 1 GiB, 100 MiB available: 5% (51.2 MiB) stays free.
        let b = Budget::of(&st(262_144, 25_600, 1000, 500));
        assert_eq!(b.bytes, 100 * MIB - (1 << 30) / 20);
        assert_eq!(b.inodes, Some(450));
        // 1 TiB: the reserve stops at 256 MiB and 10000 inodes.
        let b = Budget::of(&st(1 << 28, 1 << 20, 10_000_000, 1_000_000));
        assert_eq!(b.bytes, 4096 * MIB - 256 * MIB);
        assert_eq!(b.inodes, Some(990_000));
        // Less available than the reserve: nothing; no inode count: no limit.
        let b = Budget::of(&st(262_144, 100, 0, 0));
        assert_eq!(
            b,
            Budget {
                bytes: 0,
                inodes: None
            }
        );
    }

    #[test]
    fn path_components() {
        assert_eq!(
            components(b"./a//b/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            components(b"/etc/passwd").unwrap(),
            vec![b"etc".to_vec(), b"passwd".to_vec()]
        );
        assert!(components(b"a/../../b").is_err());
        assert!(components(b"./").unwrap().is_empty());
    }

    #[test]
    fn pax_times() {
        assert_eq!(
            pax_time(b"1700000000.5"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(pax_time(b"12"), Some((12, 0)));
        assert_eq!(pax_time(b"x"), None);
    }
}
