#!/bin/sh
# Pack a rootfs directory into a one-layer OCI image archive (oci-archive:
# an OCI image layout inside a tar), with nothing but sh, tar, gzip and
# sha256sum (plus mkdir/mv/wc).
#
# usage: rootfs-fixtures/make-image.sh ROOTFS OUT.tar [NAME:TAG]
#
#   NAME:TAG  goes into index.json as org.opencontainers.image.ref.name, so
#             `mica image import OUT.tar` names the image by it
#   CMD       (environment) the image's Cmd as a JSON array, e.g.
#             CMD='["/mica-probe"]'; default: none
#   ARCH      (environment) the image's architecture; default: this host's
#
# The layer is gzip-compressed; entries keep their numeric owners. OUT.tar
# is written under a temporary name and renamed, so it is never half-made.
set -eu

die() { echo "make-image.sh: error: $*" >&2; exit 1; }

[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: $0 ROOTFS OUT.tar [NAME:TAG]" >&2; exit 2; }
ROOTFS=$1
OUT=$2
REF=${3:-}
CMD=${CMD:-}
[ -d "$ROOTFS" ] || die "$ROOTFS is not a directory"
case $REF in
    *[!a-z0-9._:/-]*) die "invalid NAME:TAG '$REF' (lowercase letters, digits and . _ : / - only)" ;;
esac
case $CMD in
    '' | '['*']') ;;
    *) die "CMD must be a JSON array, e.g. CMD='[\"/bin/sh\"]'" ;;
esac

case $(uname -m) in
    x86_64) host_arch=amd64 ;;
    aarch64) host_arch=arm64 ;;
    armv*) host_arch=arm ;;
    i?86) host_arch=386 ;;
    *) host_arch=$(uname -m) ;;
esac
ARCH=${ARCH:-$host_arch}

umask 022
WORK=$(mktemp -d "${TMPDIR:-/tmp}/make-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
OCI=$WORK/oci
mkdir -p "$OCI/blobs/sha256"

# sha256 hex / byte size of a file
sha() { set -- $(sha256sum "$1"); echo "$1"; }
size() { set -- $(wc -c < "$1"); echo "$1"; }
# move a file into blobs/sha256/ under its digest; prints the hex
blob() { h=$(sha "$1"); mv "$1" "$OCI/blobs/sha256/$h"; echo "$h"; }

# The layer: the rootfs as a tar (its uncompressed digest is the diff_id).
tar --numeric-owner -C "$ROOTFS" -cf "$WORK/layer.tar" . || die "tar of $ROOTFS failed"
diff_id=$(sha "$WORK/layer.tar")
gzip -n -c "$WORK/layer.tar" > "$WORK/layer.tar.gz"
rm -f "$WORK/layer.tar"
layer_size=$(size "$WORK/layer.tar.gz")
layer=$(blob "$WORK/layer.tar.gz")

# The config.
{
    printf '{"architecture":"%s","os":"linux",' "$ARCH"
    printf '"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'
    [ -n "$CMD" ] && printf ',"Cmd":%s' "$CMD"
    printf '},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},' "$diff_id"
    printf '"history":[{"created_by":"rootfs-fixtures/make-image.sh"}]}'
} > "$WORK/config.json"
config_size=$(size "$WORK/config.json")
config=$(blob "$WORK/config.json")

# The manifest.
{
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    printf '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},' "$config" "$config_size"
    printf '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$layer" "$layer_size"
} > "$WORK/manifest.json"
manifest_size=$(size "$WORK/manifest.json")
manifest=$(blob "$WORK/manifest.json")

# The layout: oci-layout + index.json.
printf '{"imageLayoutVersion":"1.0.0"}' > "$OCI/oci-layout"
{
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
    printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,' "$manifest" "$manifest_size"
    printf '"platform":{"architecture":"%s","os":"linux"}' "$ARCH"
    [ -n "$REF" ] && printf ',"annotations":{"org.opencontainers.image.ref.name":"%s"}' "$REF"
    printf '}]}'
} > "$OCI/index.json"

OUT_TMP="$OUT.tmp.$$"
tar -C "$OCI" -cf "$OUT_TMP" oci-layout index.json blobs || { rm -f "$OUT_TMP"; die "writing $OUT failed"; }
mv -f "$OUT_TMP" "$OUT"
echo "$OUT: sha256:$manifest${REF:+ ($REF)}"
