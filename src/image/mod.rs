//! Images: import OCI image layouts, `oci-archive` tarballs and `docker save`
//! archives into a verified, content-addressed, read-only store, and hand
//! the launch layer the read-only lower directories of an image.
//!
//! - `formats`: layout / oci-archive / docker-archive -> the chosen manifest,
//!   config and layer blobs (platform selection, media types)
//! - `unpack`: safe layer extraction (openat2 in-root resolution, `*at`
//!   calls only) with OCI whiteouts turned into overlayfs whiteouts; the
//!   per-image mountpoints layer
//! - `store`: the store's directories, records, names, locks; import,
//!   resolve, tag, remove, prune
//! - `verify`: layer manifests recorded at unpack time and re-checked
//! - `sys`: thin syscall wrappers (`openat2`, `mknodat`, xattrs, ...)
//!
//! On-disk layout (root: `/var/lib/mica`, or `$MICA_STORE`):
//!
//! ```text
//! .lock                      flock: names.json and image records
//! .gc.lock                   flock: shared by imports, exclusive for prune
//! names.json                 {"name:tag": "sha256:<manifest digest>"}
//! blobs/sha256/<hex>         manifests, configs, layer blobs (verified)
//! layers/<diff_id hex>/      one unpacked layer, shared, never written again
//! layers/<diff_id hex>.manifest   what the layer held when unpacked (verify)
//! mountpoints/<image hex>/   the runtime's mountpoints the image lacks
//! images/<image hex>.json    the image record
//! .tmp-*                     an import in progress (or a killed one: prune)
//! ```

mod formats;
mod reference;
mod store;
pub(crate) mod sys;
mod unpack;
mod verify;

pub use store::{Image, Store};

use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};
use std::path::Path;

/// Errors of the image layer: each one line naming the file, blob or path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on a named path failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The input is not a valid image (the message names the file).
    #[error("{0}")]
    Invalid(String),
    /// A blob's content does not hash to the digest that names it.
    #[error("{kind} {name} has digest {actual}, {by} says {expected}")]
    Digest {
        kind: &'static str,
        name: String,
        actual: String,
        expected: String,
        /// Who named the expected digest: "the manifest", "the index", ...
        by: &'static str,
    },
    /// A blob's size differs from its descriptor.
    #[error("{kind} {name} is {actual} bytes, the manifest says {expected}")]
    Size {
        kind: &'static str,
        name: String,
        actual: u64,
        expected: u64,
    },
    /// A layer's uncompressed content does not match the config's diff_id.
    #[error("layer {blob} unpacks to {actual}, the image config says its diff_id is {expected}")]
    DiffId {
        blob: String,
        actual: String,
        expected: String,
    },
    /// A layer entry was refused (hostile or unsupported) or could not be
    /// created.
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    Layer {
        layer: String,
        entry: String,
        reason: String,
    },
    /// Nothing in the input matches the wanted platform.
    #[error("{source_path}: no image for {wanted}; it offers: {offered}")]
    Platform {
        source_path: String,
        wanted: String,
        offered: String,
    },
    #[error("image {0:?} not found")]
    NotFound(String),
    /// `image rm` of the last name of an image containers were launched from.
    #[error("image {reference:?} is used by container(s) {containers}: delete them first")]
    InUse {
        reference: String,
        containers: String,
    },
    #[error("reference {reference:?} is ambiguous: it matches {matches}")]
    Ambiguous { reference: String, matches: String },
    #[error("invalid reference {reference:?}: {reason}")]
    Reference { reference: String, reason: String },
    /// The store itself is damaged or unusable.
    #[error("image store {root}: {reason}")]
    Store { root: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

/// `map_err` helper: an io::Error on `path`.
pub(crate) fn io_err(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
    let path = path.as_ref().display().to_string();
    move |source| Error::Io { path, source }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The hex part of a `sha256:<64 hex>` digest, or why it is not one.
pub(crate) fn digest_hex(digest: &str) -> std::result::Result<&str, String> {
    match digest.split_once(':') {
        Some(("sha256", hex)) if is_hex64(hex) => Ok(hex),
        Some(("sha256", _)) => Err(format!("malformed digest {digest:?}")),
        Some((alg, _)) => Err(format!(
            "unsupported digest algorithm {alg:?} in {digest:?}"
        )),
        None => Err(format!("malformed digest {digest:?}")),
    }
}

/// A reader that hashes (and counts) what passes through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    /// Read the rest, then return ("sha256:<hex>", byte count).
    pub(crate) fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex(&self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes (and counts) what passes through it.
pub(crate) struct HashWriter<W> {
    pub(crate) inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub(crate) fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex(&self.hasher.finalize()));
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compression of a blob, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub(crate) fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Sniff the file at `path`.
    pub(crate) fn of_file(path: &Path) -> io::Result<Compression> {
        let mut f = std::fs::File::open(path)?;
        let mut head = [0u8; 4];
        let mut n = 0;
        while n < head.len() {
            let k = f.read(&mut head[n..])?;
            if k == 0 {
                break;
            }
            n += k;
        }
        Ok(Compression::sniff(&head[..n]))
    }

    /// A reader of the decompressed stream.
    pub(crate) fn decoder<'a, R: io::BufRead + 'a>(self, r: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        })
    }

    pub(crate) fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// The platform this mica runs on, as OCI spells it (`linux/amd64`).
pub fn host_platform() -> String {
    formats::Platform::host().to_string()
}

/// RFC 3339 UTC timestamp of now, to the second.
pub(crate) fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A random hex string for temp names.
pub(crate) fn random_hex() -> String {
    let mut buf = [0u8; 8];
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // Fall back to something unique enough within this host.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        buf = (t ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let d = sha256_digest(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(digest_hex(&d).is_ok());
        assert!(digest_hex("sha512:abc")
            .unwrap_err()
            .contains("unsupported"));
        assert!(digest_hex("sha256:../../etc").is_err());
        assert!(digest_hex(
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
        )
        .is_err());
    }

    #[test]
    fn timestamp_shape() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }

    #[test]
    fn sniffing() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"usr/"), Compression::None);
    }
}
