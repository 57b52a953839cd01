#!/bin/sh
# An OCI runtime that records how an engine calls it, then execs the real one.
#
# Copy (or link) this script to a path of your choice, e.g. /usr/local/bin/mica-logged,
# and put its settings next to it in "<that path>.env" (sourced as shell):
#
#   REAL_RUNTIME=/usr/local/bin/mica   # the runtime to exec (mica, runc, ...)
#   ARGV_LOG=/tmp/mica-argv.log        # one line per call: the arguments, tab-separated
#   EXTRA_ARGS="--root /tmp/state"     # optional: global flags put first (podman passes
#                                      # no --root of its own; containerd's shim does)
#   SAVE_CONFIG=/tmp/configs           # optional: copy each bundle's config.json there
#                                      # as <container id>.json
#
# Then give the engine the copy's path as its runtime (podman --runtime,
# containers.conf [engine.runtimes], ctr run --runc-binary, containerd BinaryName).
set -u
. "$0.env"
line=""
for a in "$@"; do
    line="$line$(printf '\t%s' "$a")"
done
printf '%s%s\n' "$(basename "$REAL_RUNTIME")" "$line" >>"$ARGV_LOG"
if [ -n "${SAVE_CONFIG:-}" ]; then
    prev="" bundle="" last=""
    for a in "$@"; do
        [ "$prev" = "--bundle" ] && bundle=$a
        case $a in --bundle=*) bundle=${a#--bundle=} ;; esac
        prev=$a last=$a
    done
    if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
        mkdir -p "$SAVE_CONFIG" && cp "$bundle/config.json" "$SAVE_CONFIG/$last.json"
    fi
fi
# shellcheck disable=SC2086 # EXTRA_ARGS is a list of words on purpose
exec "$REAL_RUNTIME" ${EXTRA_ARGS:-} "$@"
