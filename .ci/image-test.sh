#!/usr/bin/env bash
# Builds the Dockerfile for real and runs the server from the built image.
#
# The public base image cannot be pulled here and podman cannot start containers
# on these machines (its OCI runtime needs what the sandbox forbids), but it can
# build. So, as root:
#   1. a Debian bookworm base (minbase + python3, python3-venv, ca-certificates)
#      made with mmdebstrap and `podman import`ed;
#   2. `podman build --isolation chroot --storage-driver vfs` with that base as
#      BASE_IMAGE; downloads inside the build trust this machine's CA bundle,
#      mounted with a pip.conf pointing at it (the Dockerfile knows nothing of it);
#   3. the image's filesystem mounted (`podman image mount`, read-only here, with a
#      tmpfs /tmp as the pod has) and its entrypoint run under chroot as the
#      image's own user, with the image's environment;
#   4. checks: the process runs as a non-root UID, gRPC health says SERVING, one
#      GetMetrics against the real RabbitMQ answers the queue's depth, the final
#      stage has no compiler and no pip; the image size is printed.
# Storage lives under $PREWARM_IMAGE_STATE (default /var/tmp/prewarm-image-test),
# so a second run reuses the base and the build cache.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

STATE=${PREWARM_IMAGE_STATE:-/var/tmp/prewarm-image-test}
CA_BUNDLE=${PREWARM_CA_BUNDLE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
BASE=localhost/prewarm-base:bookworm
IMAGE=localhost/prewarm:image-test
PY=${PY:-.venv/bin/python}
podman=(podman --root "$STATE/storage" --runroot "$STATE/run" --storage-driver vfs)

step() { printf 'image-test [%3ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() { printf 'image-test: FAIL: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  fail "needs root (podman's vfs storage, chroot, mounts)"
fi
need_apt=()
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
mkdir -p "$STATE"

# 1. The base.
if ! "${podman[@]}" image exists "$BASE"; then
  step "mmdebstrap bookworm (minbase, python3, python3-venv, ca-certificates)"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$STATE/base.tar"
  "${podman[@]}" import --quiet "$STATE/base.tar" "$BASE" >/dev/null
  rm -f "$STATE/base.tar"
fi

# 2. The build, trusting this machine's CA for the downloads inside it.
[ -r "$CA_BUNDLE" ] || fail "no CA bundle at $CA_BUNDLE (set PREWARM_CA_BUNDLE)"
printf '[global]\ncert = /etc/prewarm-build/ca.crt\n' >"$STATE/pip.conf"
step "podman build (BASE_IMAGE=$BASE)"
"${podman[@]}" build --quiet --isolation chroot --layers=false \
  --build-arg "BASE_IMAGE=$BASE" \
  -v "$CA_BUNDLE:/etc/prewarm-build/ca.crt:ro" \
  -v "$STATE/pip.conf:/etc/pip.conf:ro" \
  -t "$IMAGE" . >/dev/null
step "built"

inspect() { "${podman[@]}" image inspect --format "$1" "$IMAGE"; }
user=$(inspect '{{.Config.User}}')
size=$(inspect '{{.Size}}')
entrypoint=$(inspect '{{range .Config.Entrypoint}}{{.}} {{end}}')
mapfile -t image_env < <(inspect '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')

# 3. Its filesystem, and the server from it as the image's user.
root=$("${podman[@]}" image mount "$IMAGE")
server_pid=""
queue="prewarm-image-test-$$"
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  "$PY" - "$queue" <<'EOF' || true
import sys, requests
requests.delete(f"http://127.0.0.1:15672/api/queues/%2F/{sys.argv[1]}", auth=("guest", "guest"), timeout=5)
EOF
  "${podman[@]}" image umount "$IMAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# 4a. What the final stage holds.
uid=${user%%:*}
[[ "$uid" =~ ^[0-9]+$ ]] && [ "$uid" -ne 0 ] || fail "the image's USER is '$user', not a numeric non-root UID"
for tool in gcc cc c++ g++ clang make pip pip3; do
  for dir in /usr/bin /usr/local/bin /opt/prewarm/bin; do
    [ ! -e "$root$dir/$tool" ] || fail "the final stage has $dir/$tool"
  done
done
if chroot "$root" /opt/prewarm/bin/python -m pip --version >/dev/null 2>&1 \
  || chroot "$root" python3 -m pip --version >/dev/null 2>&1; then
  fail "pip is importable in the final stage"
fi
step "user $user, no compiler, no pip"

# The server: the image's entrypoint and environment, a private mount namespace
# with a tmpfs /tmp (the pod's emptyDir) and /proc, free ports chosen by the kernel.
log="$STATE/server.log"
unshare --mount --propagation private sh -c '
  root=$1; shift
  mount -t tmpfs -o size=16m,mode=1777 tmpfs "$root/tmp"
  mount -t proc proc "$root/proc"
  exec chroot --userspec="$0" "$root" "$@"
' "$user" "$root" env -i "${image_env[@]}" $entrypoint \
  --host 127.0.0.1 --port 0 --metrics-port 0 --log-format json >"$log" 2>&1 &
server_pid=$!

# 4b. Non-root, health, one GetMetrics against the real RabbitMQ.
"$PY" - "$server_pid" "$log" "$queue" <<'EOF' || { sed -n '1,40p' "$log" >&2; fail "the server from the image"; }
import json, os, sys, time

import grpc
import pika
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scaler._proto import externalscaler_pb2 as pb
from scaler._proto import externalscaler_pb2_grpc as pb_grpc

shell_pid, log, queue = int(sys.argv[1]), sys.argv[2], sys.argv[3]
deadline = time.monotonic() + 60
port = None
while port is None:
    if time.monotonic() > deadline:
        sys.exit("no 'serving' log line within 60 s")
    time.sleep(0.2)
    for line in open(log, encoding="utf-8"):
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("message") == "serving":
            port = record["grpc_port"]

# The server process (the shell execs chroot, chroot execs env, env execs prewarm).
uids = open(f"/proc/{shell_pid}/status").read().split("Uid:")[1].split()[:4]
assert set(uids) == {"10001"}, f"the server runs as uids {uids}"
cmdline = open(f"/proc/{shell_pid}/cmdline", "rb").read().split(b"\0")
assert any(b"prewarm" in part for part in cmdline), cmdline

channel = grpc.insecure_channel(f"127.0.0.1:{port}")
status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
assert status == health_pb2.HealthCheckResponse.SERVING, status

connection = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
ch = connection.channel()
ch.queue_declare(queue=queue)
for i in range(3):
    ch.basic_publish(exchange="", routing_key=queue, body=b"job")
connection.close()
meta = {"source": "rabbitmq", "host": "amqp://guest:guest@127.0.0.1:5672/%2F", "queueName": queue,
        "queueLength": "1"}
ref = pb.ScaledObjectRef(name="image-test", namespace="default", scalerMetadata=meta)
answer = pb_grpc.ExternalScalerStub(channel).GetMetrics(
    pb.GetMetricsRequest(scaledObjectRef=ref, metricName=""), timeout=30
)
assert answer.metricValues[0].metricValueFloat == 3, answer
print(f"image-test: uid {uids[0]}, health SERVING, GetMetrics = 3 (queue {queue})")
EOF

step "image size $((size / 1000000)) MB ($size bytes), on the mmdebstrap bookworm base"
step "ok"
