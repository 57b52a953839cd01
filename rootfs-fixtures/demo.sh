#!/bin/sh
# demo.sh MICA ROOTFS: run a micro-container from a shell-less rootfs with a
# read-only root, and show what the process inside sees.
set -eu
MICA=$(readlink -f "$1")
ROOTFS=$(readlink -f "$2")
WORK=$(mktemp -d /tmp/mica-demo.XXXXXX)
STATE="$WORK/state"
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/config.json" <<JSON
{
  "ociVersion": "1.2.0",
  "process": {
    "user": {"uid": 0, "gid": 0},
    "args": ["/mica-probe", "--write", "/tmp/scratch", "--write", "/etc/immutable", "--pretty"],
    "env": ["PATH=/usr/bin:/bin"],
    "cwd": "/",
    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
    "noNewPrivileges": true
  },
  "root": {"path": "$ROOTFS", "readonly": true},
  "hostname": "micro",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=1m"]}
  ],
  "linux": {
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
    "resources": {"memory": {"limit": 33554432}, "pids": {"limit": 16}}
  }
}
JSON
echo "== mica run (read-only root, only /tmp writable, 32 MiB, 16 pids) =="
"$MICA" --root "$STATE" run --bundle "$WORK" demo-$$ > "$WORK/out.json"
grep -E '"(hostname|pid|root_writable|no_new_privs|memory|pids)"|"(path|ok|errno)"' "$WORK/out.json" | head -40
echo "== exit status: 0 =="
