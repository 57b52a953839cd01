#!/usr/bin/env python3
"""A tiny CRI (Kubernetes runtime.v1) client, for hosts without crictl.

Debian 12 has no cri-tools package; this speaks the CRI gRPC API to
containerd's CRI plugin with python3-grpcio and a hand-written protobuf
encoder (only the few messages used below; field numbers from
k8s.io/cri-api runtime/v1 api.proto).

usage: cri.py --socket SOCK COMMAND ...
  version
  runp    --name N --uid U --namespace NS --handler H --cgroup-parent P [--log-dir D]
  create  POD --name N --image I [--env K=V]... [--workdir D] [--memory BYTES] --pod-json F -- CMD...
  start   CID
  exec    CID -- CMD...        (stdout/stderr passed through; exits with the command's status)
  status  CID                  (JSON: state, exit_code, reason, message)
  stop    CID TIMEOUT
  rm      CID
  stopp   POD
  rmp     POD

`runp` prints the pod id and writes the pod config it sent as JSON to
--pod-json-out (if given): `create` needs the same config again.
"""

import argparse
import json
import sys

import grpc

SERVICE = "/runtime.v1.RuntimeService/"
STATES = {0: "CREATED", 1: "RUNNING", 2: "EXITED", 3: "UNKNOWN"}


# ---------------------------------------------------------------- protobuf


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n) if n else b""


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return key(field, 2) + varint(len(data)) + data


def f_str(field, s):
    return f_bytes(field, s) if s else b""


def f_msg(field, body):
    return f_bytes(field, body)


def f_map(field, d):
    return b"".join(f_msg(field, f_str(1, k) + f_str(2, v)) for k, v in d.items())


def decode(data):
    """field number -> list of values (int for varints, bytes otherwise)."""
    out = {}
    i = 0
    while i < len(data):
        k, i = read_varint(data, i)
        field, wire = k >> 3, k & 7
        if wire == 0:
            v, i = read_varint(data, i)
        elif wire == 2:
            n, i = read_varint(data, i)
            v, i = data[i:i + n], i + n
        elif wire == 1:
            v, i = data[i:i + 8], i + 8
        elif wire == 5:
            v, i = data[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        out.setdefault(field, []).append(v)
    return out


def read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def first(d, field, default=None):
    return d.get(field, [default])[0]


def signed32(n):
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= 1 << 63 else n


# ---------------------------------------------------------------- messages


def pod_config(p):
    # PodSandboxConfig: metadata=1 hostname=2 log_directory=3 labels=6 linux=8
    metadata = f_str(1, p["name"]) + f_str(2, p["uid"]) + f_str(3, p["namespace"])
    # NamespaceOption: network=1 pid=2 ipc=3 (POD=0 CONTAINER=1 NODE=2)
    ns = f_varint(1, 2) + f_varint(2, 1)
    security = f_msg(1, ns)
    linux = f_str(1, p["cgroup_parent"]) + f_msg(2, security)
    return (f_msg(1, metadata) + f_str(3, p.get("log_dir", "")) +
            f_map(6, {"io.mica.test": "engines"}) + f_msg(8, linux))


def container_config(a, cmd):
    # ContainerConfig: metadata=1 image=2 command=3 args=4 working_dir=5 envs=6 log_path=11
    body = f_msg(1, f_str(1, a.name)) + f_msg(2, f_str(1, a.image))
    body += b"".join(f_str(3, c) for c in cmd)
    body += f_str(5, a.workdir or "")
    for e in a.env or []:
        k, _, v = e.partition("=")
        body += f_msg(6, f_str(1, k) + f_str(2, v))
    body += f_str(11, a.name + ".log")
    if a.memory:
        # linux=15: LinuxContainerConfig.resources=1: LinuxContainerResources.memory_limit_in_bytes=4
        body += f_msg(15, f_msg(1, f_varint(4, a.memory)))
    return body


# ---------------------------------------------------------------- calls


class Client:
    def __init__(self, socket):
        self.channel = grpc.insecure_channel("unix://" + socket)

    def call(self, method, body, timeout=60):
        fn = self.channel.unary_unary(SERVICE + method)
        return decode(fn(body, timeout=timeout))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version")
    r = sub.add_parser("runp")
    for o in ("name", "uid", "namespace", "handler", "cgroup-parent"):
        r.add_argument("--" + o, required=True)
    r.add_argument("--log-dir", default="")
    r.add_argument("--pod-json-out")
    c = sub.add_parser("create")
    c.add_argument("pod")
    c.add_argument("--name", required=True)
    c.add_argument("--image", required=True)
    c.add_argument("--env", action="append")
    c.add_argument("--workdir")
    c.add_argument("--memory", type=int)
    c.add_argument("--pod-json", required=True)
    c.add_argument("command", nargs="+")
    for name in ("start", "status", "rm"):
        sub.add_parser(name).add_argument("cid")
    s = sub.add_parser("stop")
    s.add_argument("cid")
    s.add_argument("timeout", type=int)
    e = sub.add_parser("exec")
    e.add_argument("cid")
    e.add_argument("command", nargs="+")
    for name in ("stopp", "rmp"):
        sub.add_parser(name).add_argument("pod")
    a = ap.parse_args()
    cl = Client(a.socket)
    try:
        if a.cmd == "version":
            v = cl.call("Version", f_str(1, "v1"))
            print(json.dumps({"runtime_name": first(v, 2, b"").decode(),
                              "runtime_version": first(v, 3, b"").decode(),
                              "runtime_api_version": first(v, 4, b"").decode()}))
        elif a.cmd == "runp":
            p = {"name": a.name, "uid": a.uid, "namespace": a.namespace,
                 "cgroup_parent": a.cgroup_parent, "log_dir": a.log_dir}
            if a.pod_json_out:
                with open(a.pod_json_out, "w") as f:
                    json.dump(p, f)
            v = cl.call("RunPodSandbox", f_msg(1, pod_config(p)) + f_str(2, a.handler), 120)
            print(first(v, 1).decode())
        elif a.cmd == "create":
            with open(a.pod_json) as f:
                p = json.load(f)
            body = f_str(1, a.pod) + f_msg(2, container_config(a, a.command)) + f_msg(3, pod_config(p))
            v = cl.call("CreateContainer", body, 120)
            print(first(v, 1).decode())
        elif a.cmd == "start":
            cl.call("StartContainer", f_str(1, a.cid), 120)
        elif a.cmd == "status":
            v = cl.call("ContainerStatus", f_str(1, a.cid))
            st = decode(first(v, 1, b""))
            print(json.dumps({"state": STATES.get(first(st, 3, 0), "?"),
                              "exit_code": signed32(first(st, 7, 0)),
                              "reason": first(st, 10, b"").decode(),
                              "message": first(st, 11, b"").decode()}))
        elif a.cmd == "exec":
            body = f_str(1, a.cid) + b"".join(f_str(2, x) for x in a.command) + f_varint(3, 30)
            v = cl.call("ExecSync", body, 60)
            sys.stdout.buffer.write(first(v, 1, b""))
            sys.stderr.buffer.write(first(v, 2, b""))
            sys.exit(signed32(first(v, 3, 0)) & 0xFF)
        elif a.cmd == "stop":
            cl.call("StopContainer", f_str(1, a.cid) + f_varint(2, a.timeout), a.timeout + 60)
        elif a.cmd == "rm":
            cl.call("RemoveContainer", f_str(1, a.cid), 120)
        elif a.cmd == "stopp":
            cl.call("StopPodSandbox", f_str(1, a.pod), 120)
        elif a.cmd == "rmp":
            cl.call("RemovePodSandbox", f_str(1, a.pod), 120)
    except grpc.RpcError as err:
        print("cri.py %s: %s: %s" % (a.cmd, err.code().name, err.details()), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
