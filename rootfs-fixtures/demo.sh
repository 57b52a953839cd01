#!/bin/sh
# demo.sh MICA ROOTFS: pack a shell-less rootfs (only our probe) into an OCI
# image, import it into mica's store, and launch it: read-only root, only a
# tmpfs writable, memory and pids limits. The probe prints what it sees.
set -eu
MICA=$(readlink -f "$1")
ROOTFS=$(readlink -f "$2")
OUT=$(dirname "$ROOTFS")/micro-probe.tar
HERE=$(dirname "$0")

CMD='["/mica-probe"]' sh "$HERE/make-image.sh" "$ROOTFS" "$OUT" micro/probe:latest >/dev/null
echo "== mica image import $OUT"
"$MICA" image import "$OUT" --name micro/probe:latest
"$MICA" image ls
echo
echo "== mica launch --rm --tmpfs /tmp --memory 32m --pids-limit 16 micro/probe"
echo "   (the probe writes /tmp/scratch and tries /etc/immutable, then reports)"
"$MICA" launch --rm --tmpfs /tmp:size=1m --memory 32m --pids-limit 16 micro/probe -- \
    /mica-probe --write /tmp/scratch --write /etc/immutable --pretty |
    grep -E '"(hostname|pid|uid|no_new_privs|seccomp|memory|pids)"|"(path|ok|errno)"' | head -20
echo "== exit status: 0"
