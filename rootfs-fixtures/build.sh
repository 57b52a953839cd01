#!/bin/sh
# Build mica's test rootfs fixtures.
#
# usage: rootfs-fixtures/build.sh OUT_DIR
#
# Produces (see README.md):
#   OUT_DIR/mica-probe     the static probe binary
#   OUT_DIR/busybox/       busybox rootfs + /usr/bin/mica-probe
#   OUT_DIR/probe-only/    shell-less rootfs: /mica-probe, /usr/bin/mica-probe, /etc/{passwd,group}
#   OUT_DIR/probe-target/  cargo target dir of the probe (build cache)
#
# Idempotent: cargo rebuilds the probe only when its source changed; each
# rootfs is rebuilt only when its fingerprint (probe binary, busybox binary,
# this script) changed. Every rootfs is assembled in OUT_DIR/.tmp-NAME and
# renamed into place, so an interrupted run leaves nothing half-built behind.
#
# Environment: BUSYBOX (default /bin/busybox, must be static: Debian package
# busybox-static), CARGO (default cargo).
set -eu

die() { echo "build.sh: error: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }

umask 022
HERE=$(cd "$(dirname "$0")" && pwd)
SELF="$HERE/$(basename "$0")"
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
BUSYBOX=${BUSYBOX:-/bin/busybox}
CARGO=${CARGO:-cargo}

# Serialize concurrent builds into the same OUT_DIR.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.lock"
    flock 9
fi

# True if ELF file $1 has a PT_INTERP program header (= dynamically linked).
# Assumes a 64-bit ELF of the host's endianness.
elf_is_dynamic() {
    phoff=$(od -An -t u8 -j 32 -N 8 "$1" | tr -d ' ')
    phentsize=$(od -An -t u2 -j 54 -N 2 "$1" | tr -d ' ')
    phnum=$(od -An -t u2 -j 56 -N 2 "$1" | tr -d ' ')
    i=0
    while [ "$i" -lt "$phnum" ]; do
        t=$(od -An -t u4 -j $((phoff + i * phentsize)) -N 4 "$1" | tr -d ' ')
        [ "$t" = 3 ] && return 0
        i=$((i + 1))
    done
    return 1
}

# ---------------------------------------------------------------- inputs

[ -x "$BUSYBOX" ] || die "$BUSYBOX not found: install the static busybox (apt-get install busybox-static; 'make' does this) or set BUSYBOX=/path/to/static/busybox"
"$BUSYBOX" --list >/dev/null 2>&1 || die "$BUSYBOX --list failed: is it really busybox?"
elf_is_dynamic "$BUSYBOX" && die "$BUSYBOX is dynamically linked; it would not run inside an empty rootfs. Install busybox-static (not busybox)."

command -v "$CARGO" >/dev/null 2>&1 || die "cargo not found (set CARGO=...)"
TARGET=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
[ -n "$TARGET" ] || die "rustc not found or has no host triple"

# ---------------------------------------------------------------- probe

log "building mica-probe ($TARGET, static)"
CARGO_TARGET_DIR="$OUT/probe-target" \
RUSTFLAGS="-C target-feature=+crt-static" \
    "$CARGO" build --release --locked --quiet \
    --manifest-path "$HERE/probe/Cargo.toml" --target "$TARGET" \
    || die "cargo build of the probe failed"
PROBE_BIN="$OUT/probe-target/$TARGET/release/mica-probe"
[ -x "$PROBE_BIN" ] || die "probe binary missing at $PROBE_BIN"
elf_is_dynamic "$PROBE_BIN" && die "$PROBE_BIN is dynamically linked (crt-static not honoured?)"
if ! cmp -s "$PROBE_BIN" "$OUT/mica-probe" 2>/dev/null; then
    install -m 0755 "$PROBE_BIN" "$OUT/.tmp-mica-probe"
    mv -f "$OUT/.tmp-mica-probe" "$OUT/mica-probe"
fi

FINGERPRINT=$(cat "$PROBE_BIN" "$BUSYBOX" "$SELF" | sha256sum | cut -d' ' -f1)

# ---------------------------------------------------------------- rootfs helpers

write_etc() { # ROOT
    cat >"$1/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$1/etc/group" <<'EOF'
root:x:0:
audio:x:29:user
video:x:44:user
users:x:100:user
user:x:1000:
nogroup:x:65534:
EOF
    chmod 0644 "$1/etc/passwd" "$1/etc/group"
}

# Mountpoints of the default OCI/runc spec, present so that a runtime never
# has to create them inside the (shared, read-only) fixture.
make_mountpoints() { # ROOT
    mkdir -p "$1/proc" "$1/sys" "$1/dev/pts" "$1/dev/shm" "$1/dev/mqueue" "$1/tmp"
    chmod 0755 "$1/proc" "$1/sys" "$1/dev" "$1/dev/pts" "$1/dev/shm" "$1/dev/mqueue"
    chmod 1777 "$1/tmp"
}

build_busybox() { # ROOT
    r=$1
    mkdir -p "$r/bin" "$r/usr/bin" "$r/etc" "$r/run" "$r/var" "$r/root" "$r/home/user" "$r/mnt"
    make_mountpoints "$r"
    chmod 0700 "$r/root"
    install -m 0755 "$BUSYBOX" "$r/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        case $applet in busybox | */*) continue ;; esac
        ln -s busybox "$r/bin/$applet"
    done
    ln -s ../../bin/busybox "$r/usr/bin/env"   # for '#!/usr/bin/env sh' scripts
    install -m 0755 "$PROBE_BIN" "$r/usr/bin/mica-probe"
    write_etc "$r"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
    : >"$r/etc/resolv.conf"
    chmod 0644 "$r/etc/hosts" "$r/etc/resolv.conf"
}

build_probe_only() { # ROOT
    r=$1
    mkdir -p "$r/usr/bin" "$r/etc"
    make_mountpoints "$r"
    install -m 0755 "$PROBE_BIN" "$r/mica-probe"
    ln "$r/mica-probe" "$r/usr/bin/mica-probe"
    write_etc "$r"
}

# make_rootfs NAME BUILDER: (re)build OUT/NAME unless its fingerprint matches.
make_rootfs() {
    name=$1 builder=$2
    dest="$OUT/$name" tmp="$OUT/.tmp-$name" old="$OUT/.old-$name" stamp="$OUT/.$name.stamp"
    if [ -d "$dest" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$FINGERPRINT" ]; then
        log "$name: up to date"
        rm -rf "$tmp" "$old"   # leftovers of an interrupted run
        return
    fi
    log "$name: building"
    rm -rf "$tmp" "$old" "$stamp"
    mkdir -p "$tmp"
    chmod 0755 "$tmp"
    "$builder" "$tmp"
    if [ "$(id -u)" = 0 ]; then
        chown -hR 0:0 "$tmp"
        [ -d "$tmp/home/user" ] && chown 1000:1000 "$tmp/home/user"
    fi
    [ -e "$dest" ] && mv "$dest" "$old"
    mv "$tmp" "$dest"
    rm -rf "$old"
    echo "$FINGERPRINT" >"$stamp"
}

chmod 0755 "$OUT"
make_rootfs busybox build_busybox
make_rootfs probe-only build_probe_only
log "done: $OUT/busybox $OUT/probe-only $OUT/mica-probe"
