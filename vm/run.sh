#!/bin/sh
# make test-cgroup2: run tests/cgroups.rs on a pure cgroup v2 kernel.
#
# Boots Debian's kernel (linux-image-amd64, cached in vm/.cache) under qemu
# with cgroup_no_v1=all, from an initramfs holding busybox, mica, the compiled
# test executable with its libraries and the rootfs fixtures. vm/init runs the
# tests and writes "MICA-TEST-RESULT: <code>" on the serial console; this
# script's exit status is that code (or non-zero if the VM never said).
#
# Environment:
#   FIXTURES          built fixtures (default rootfs-fixtures/build; `make fixtures`)
#   MICA_VM_ACCEL     kvm or tcg (default: kvm if it boots the kernel, else tcg)
#   MICA_VM_TESTS     comma-separated test name filters (default: all)
#   MICA_VM_TIMEOUT   seconds before the VM is killed (default 270)
#   MICA_VM_CACHE     cache dir (default vm/.cache)
#   CARGO             (default cargo)
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE=${MICA_VM_CACHE:-$ROOT/vm/.cache}
FIXTURES=${FIXTURES:-rootfs-fixtures/build}
CARGO=${CARGO:-cargo}
TIMEOUT=${MICA_VM_TIMEOUT:-270}
# q35, not microvm: under TCG on a busy host the guest's PIT calibration of
# the TSC often fails, and microvm has no HPET to fall back on (the boot hangs).
MACHINE="-M q35 -nic none -nographic -no-reboot"
APPEND="cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 console=ttyS0 quiet panic=-1 tsc=reliable no_timer_check"

die() { echo "vm/run.sh: error: $*" >&2; exit 1; }
log() { echo "vm/run.sh: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

T0=$(now)
mkdir -p "$CACHE"

# ---------------------------------------------------------------- packages

missing=""
for p in qemu-system-x86 cpio busybox-static; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    log "installing:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null \
        || die "apt-get install$missing failed"
fi
QEMU=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found"
[ -x /bin/busybox ] || die "/bin/busybox missing (busybox-static)"
[ -d "$FIXTURES/busybox" ] && [ -d "$FIXTURES/probe-only" ] \
    || die "fixtures missing in $FIXTURES: run 'make fixtures' (make test-cgroup2 does)"

# ---------------------------------------------------------------- kernel

T=$(now)
pkg_of_meta() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1; }
PKG=$(pkg_of_meta)
if [ -z "$PKG" ]; then
    log "apt-get update (no linux-image-amd64 in the package lists)"
    apt-get update -qq || true
    PKG=$(pkg_of_meta)
fi
if [ -z "$PKG" ]; then
    # Offline: any kernel unpacked before.
    PKG=$(ls -1 "$CACHE" 2>/dev/null | sed -n 's/^\(linux-image-[0-9].*\)/\1/p' | sort -V | tail -n1)
    [ -n "$PKG" ] || die "cannot find the kernel package linux-image-amd64 depends on"
    log "using cached $PKG (the package lists do not name one)"
fi
KDIR="$CACHE/$PKG"
KERNEL=$(ls -1 "$KDIR"/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
if [ -z "$KERNEL" ]; then
    log "downloading $PKG"
    dl="$CACHE/.download"
    rm -rf "$dl" "$KDIR.tmp"
    mkdir -p "$dl" "$KDIR.tmp"
    # apt's sandbox user cannot write into root-owned dirs; that is only a warning.
    (cd "$dl" && { apt-get download -q "$PKG" 2>/dev/null \
        || { apt-get update -qq && apt-get download -q "$PKG"; }; }) \
        || die "apt-get download $PKG failed"
    deb=$(ls -1 "$dl"/*.deb | head -n1)
    # Only boot/ is needed: cgroups need no modules, ttyS0 is built in.
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$KDIR.tmp" ./boot \
        || die "cannot unpack $deb"
    mv "$KDIR.tmp" "$KDIR"
    rm -rf "$dl"
    KERNEL=$(ls -1 "$KDIR"/boot/vmlinuz-* | head -n1)
    log "kernel $KERNEL (downloaded and unpacked in $(since "$T") s)"
else
    log "kernel $KERNEL (cached)"
fi
T_KERNEL=$(since "$T")

# ---------------------------------------------------------------- build

T=$(now)
log "building mica and tests/cgroups.rs"
json="$CACHE/cargo-build.json"
"$CARGO" test --test cgroups --no-run --message-format=json-render-diagnostics >"$json" \
    || die "cargo test --test cgroups --no-run failed"
artifact() {
    grep '"reason":"compiler-artifact"' "$json" | grep "\"kind\":\[\"$1\"\][^}]*\"name\":\"$2\"" \
        | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1
}
MICA=$(artifact bin mica)
TESTS=$(artifact test cgroups)
[ -x "$MICA" ] || die "no mica executable in cargo's output"
[ -x "$TESTS" ] || die "no tests/cgroups.rs executable in cargo's output"
T_BUILD=$(since "$T")

# ---------------------------------------------------------------- initramfs

T=$(now)
STAGE="$CACHE/initramfs"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/mica-vm/fixtures" "$STAGE/dev" "$STAGE/root"
# Smaller without debug info; a plain copy where strip is missing.
put() {
    mkdir -p "$(dirname "$2")"
    if command -v strip >/dev/null 2>&1; then
        strip -o "$2" "$1" || cp "$1" "$2"
    else
        cp "$1" "$2"
    fi
    chmod 0755 "$2"
}
cp /bin/busybox "$STAGE/bin/busybox"
install -m 0755 vm/init "$STAGE/init"
# The test executable runs mica from the path cargo compiled into it.
put "$MICA" "$STAGE$MICA"
put "$TESTS" "$STAGE/mica-vm/cgroups-test"
# Dynamic loader and libraries, at the paths ldd names.
for lib in $(ldd "$MICA" "$TESTS" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p' | sort -u); do
    mkdir -p "$STAGE$(dirname "$lib")"
    cp -L "$lib" "$STAGE$lib"
done
cp -a "$FIXTURES/busybox" "$FIXTURES/probe-only" "$STAGE/mica-vm/fixtures/"
INITRD="$CACHE/initramfs.cpio"
(cd "$STAGE" && find . | cpio -o -H newc --quiet -R 0:0) >"$INITRD.tmp" || die "cpio failed"
mv "$INITRD.tmp" "$INITRD"
T_INITRD=$(since "$T")
log "initramfs $(du -h "$INITRD" | cut -f1) in $T_INITRD s"

# ---------------------------------------------------------------- accelerator

T=$(now)
ACCEL=${MICA_VM_ACCEL:-}
if [ -z "$ACCEL" ]; then
    # KVM is tried once per host kernel / qemu / guest kernel: some /dev/kvm
    # (nested, PVM) cannot boot a stock kernel and just hang.
    key="$(uname -r) $("$QEMU" --version | head -n1) $PKG $MACHINE"
    verdict="$CACHE/kvm-verdict"
    if [ -f "$verdict" ] && [ "$(sed -n 1p "$verdict")" = "$key" ]; then
        ACCEL=$(sed -n 2p "$verdict")
    else
        ACCEL=tcg
        if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
            p="$CACHE/kvm-probe"
            rm -rf "$p" && mkdir -p "$p/bin"
            cp /bin/busybox "$p/bin/"
            printf '#!/bin/busybox sh\n/bin/busybox echo MICA-KVM-OK\n/bin/busybox poweroff -f\n' >"$p/init"
            chmod 0755 "$p/init"
            (cd "$p" && find . | cpio -o -H newc --quiet -R 0:0) >"$p.cpio"
            if timeout 20 "$QEMU" $MACHINE -accel kvm -cpu host -m 256 -smp 1 \
                -kernel "$KERNEL" -initrd "$p.cpio" -append "console=ttyS0 quiet panic=-1" \
                </dev/null 2>&1 | grep -q MICA-KVM-OK; then
                ACCEL=kvm
            fi
            rm -rf "$p" "$p.cpio"
        fi
        printf '%s\n%s\n' "$key" "$ACCEL" >"$verdict"
    fi
fi
case "$ACCEL" in
    kvm) CPU=host ;;
    tcg) CPU=max ;;
    *) die "MICA_VM_ACCEL=$ACCEL: expected kvm or tcg" ;;
esac
T_ACCEL=$(since "$T")
log "accelerator: $ACCEL (chosen in $T_ACCEL s)"

# ---------------------------------------------------------------- boot + tests

[ -n "${MICA_VM_TESTS:-}" ] && APPEND="$APPEND mica_tests=$MICA_VM_TESTS"
LOG="$CACHE/console.log"
T=$(now)
log "booting $(basename "$KERNEL") ($ACCEL); console log: $LOG"
rm -f "$LOG.rc"
{
    rc=0
    timeout "$TIMEOUT" "$QEMU" $MACHINE -accel "$ACCEL" -cpu "$CPU" -m 1024 -smp 2 \
        -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" </dev/null 2>&1 || rc=$?
    echo "$rc" >"$LOG.rc"
} | tee "$LOG"
QRC=$(cat "$LOG.rc" 2>/dev/null || echo "?")
T_VM=$(since "$T")

result=$(tr -d '\r' <"$LOG" | sed -n 's/.*MICA-TEST-RESULT: \([0-9][0-9]*\)$/\1/p' | tail -n1)
guest() { tr -d '\r' <"$LOG" | sed -n "s/.*MICA-VM-TIME: $1 \([0-9.]*\)$/\1/p" | tail -n1; }
t_init=$(guest init); t_start=$(guest tests-start); t_end=$(guest tests-end)
echo "vm/run.sh: timings: kernel ${T_KERNEL}s, build ${T_BUILD}s, initramfs ${T_INITRD}s, accel ${T_ACCEL}s, qemu ${T_VM}s" \
    "(guest: init at ${t_init:-?}s, tests from ${t_start:-?}s to ${t_end:-?}s uptime), total $(since "$T0")s"
if [ -z "$result" ]; then
    echo "vm/run.sh: FAILED: the VM reported no result (qemu status $QRC; timeout ${TIMEOUT}s); see $LOG" >&2
    exit 1
fi
if [ "$result" -eq 0 ]; then
    echo "vm/run.sh: cgroup v2 tests passed in the VM"
else
    echo "vm/run.sh: FAILED: cgroup v2 tests exited with $result in the VM" >&2
fi
exit "$result"
