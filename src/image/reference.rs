//! Image names (`NAME[:TAG]`) and references (a name, `NAME@sha256:HEX`, a
//! full or unique-prefix image digest).

use super::{digest_hex, Error, Result};

/// What a reference asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference {
    /// A normalized `name:tag`.
    Name(String),
    /// A full `sha256:<hex>` image digest (`NAME@sha256:HEX` lands here too).
    Digest(String),
    /// A hex prefix of an image digest.
    Prefix(String),
    /// Bare hex: a name first, else a digest prefix (as docker does).
    NameOrPrefix(String, String),
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-'))
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// `busybox` -> `busybox:latest`; `docker.io/library/busybox:1` ->
/// `busybox:1`; `localhost:5000/a/b` -> `localhost:5000/a/b:latest`.
pub(crate) fn normalize_name(name: &str) -> std::result::Result<String, String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > 255 {
        return Err("name longer than 255 characters".into());
    }
    if name.contains('@') {
        return Err("a name cannot hold a digest".into());
    }
    let slash = name.rfind('/');
    let (repo, tag) = match name.rfind(':') {
        Some(c) if slash.is_none_or(|s| c > s) => (&name[..c], &name[c + 1..]),
        _ => (name, "latest"),
    };
    if !valid_tag(tag) {
        return Err(format!("invalid tag {tag:?}"));
    }
    let mut repo = repo;
    for prefix in [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ] {
        if let Some(rest) = repo.strip_prefix(prefix) {
            repo = rest;
            break;
        }
    }
    let comps: Vec<&str> = repo.split('/').collect();
    for (i, c) in comps.iter().enumerate() {
        let domain =
            i == 0 && comps.len() > 1 && (c.contains('.') || c.contains(':') || *c == "localhost");
        let ok = if domain {
            valid_domain(c)
        } else {
            valid_component(c)
        };
        if !ok {
            return Err(format!(
                "invalid name component {c:?} (lowercase letters, digits and . _ - only)"
            ));
        }
    }
    Ok(format!("{repo}:{tag}"))
}

/// Parse what `resolve` and friends accept.
pub(crate) fn parse(reference: &str) -> Result<Reference> {
    let bad = |reason: String| Error::Reference {
        reference: reference.to_string(),
        reason,
    };
    let r = reference.trim();
    if let Some((name, digest)) = r.split_once('@') {
        normalize_name(name).map_err(bad)?;
        digest_hex(digest).map_err(bad)?;
        return Ok(Reference::Digest(digest.to_string()));
    }
    if let Some(hex) = r.strip_prefix("sha256:") {
        if !is_lower_hex(hex) || hex.len() > 64 {
            return Err(bad(
                "a digest is sha256: and up to 64 lowercase hex digits".into()
            ));
        }
        return Ok(if hex.len() == 64 {
            Reference::Digest(r.to_string())
        } else {
            Reference::Prefix(hex.to_string())
        });
    }
    match normalize_name(r) {
        Ok(name) if is_lower_hex(r) && r.len() <= 64 => {
            Ok(Reference::NameOrPrefix(name, r.to_string()))
        }
        Ok(name) => Ok(Reference::Name(name)),
        Err(_) if is_lower_hex(r) && r.len() <= 64 => Ok(Reference::Prefix(r.to_string())),
        Err(e) => Err(bad(e)),
    }
}

/// The tag part of a normalized `name:tag`.
pub(crate) fn tag_of(name: &str) -> &str {
    name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalize_name("busybox:1.36").unwrap(), "busybox:1.36");
        assert_eq!(
            normalize_name("docker.io/library/alpine:3").unwrap(),
            "alpine:3"
        );
        assert_eq!(
            normalize_name("docker.io/foo/bar").unwrap(),
            "foo/bar:latest"
        );
        assert_eq!(
            normalize_name("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(
            normalize_name("localhost:5000/a/b:v1").unwrap(),
            "localhost:5000/a/b:v1"
        );
        assert!(normalize_name("").is_err());
        assert!(normalize_name("Upper").is_err());
        assert!(normalize_name("a b").is_err());
        assert!(normalize_name("a:").is_err());
        assert!(normalize_name("a/../b").is_err());
        assert!(normalize_name("/abs").is_err());
        assert!(normalize_name("a@sha256:00").is_err());
    }

    #[test]
    fn references() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse(&d).unwrap(), Reference::Digest(d.clone()));
        assert_eq!(
            parse(&format!("busybox@{d}")).unwrap(),
            Reference::Digest(d.clone())
        );
        assert_eq!(
            parse("sha256:abab").unwrap(),
            Reference::Prefix("abab".into())
        );
        assert_eq!(
            parse("busybox").unwrap(),
            Reference::Name("busybox:latest".into())
        );
        assert_eq!(
            parse("abab").unwrap(),
            Reference::NameOrPrefix("abab:latest".into(), "abab".into())
        );
        assert!(parse("busybox@sha256:zz").is_err());
        assert!(parse("busybox@sha512:00").is_err());
        assert!(parse("Bad Name").is_err());
        assert_eq!(tag_of("localhost:5000/a:v2"), "v2");
    }
}
