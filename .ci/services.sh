#!/usr/bin/env bash
# Installs (when missing, with apt-get as root) and starts the servers the
# integration tests talk to: RabbitMQ with its management plugin. Prometheus is
# installed here but started by the tests themselves (own port, temp data dir);
# the SQS-compatible server (moto) is a Python package the tests start. h2load
# (nghttp2-client) is installed for the throughput bench's smoke test.
# Idempotent: safe to run again while the broker is up.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v rabbitmq-server >/dev/null 2>&1 || need_apt+=(rabbitmq-server)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# h2load, for the smoke test of bench/bench_throughput.py (raw gRPC load from C).
command -v h2load >/dev/null 2>&1 || need_apt+=(nghttp2-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "services: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) or run as root" >&2
    exit 1
  fi
  echo "services: apt-get install ${need_apt[*]}"
  # Packages' postinst scripts start their services through invoke-rc.d or
  # deb-systemd-invoke, which ask /usr/sbin/policy-rc.d first; exit status 101
  # means "not allowed", so nothing starts: no system Prometheus on :9090 (the
  # tests start their own) and no RabbitMQ started twice (it is started below).
  # A policy already there (container images often have one) is put back after.
  policy=/usr/sbin/policy-rc.d
  saved_policy=""
  if [ -e "$policy" ]; then
    saved_policy=$(mktemp)
    cp -p "$policy" "$saved_policy"
  fi
  restore_policy() {
    if [ -n "$saved_policy" ]; then mv -f "$saved_policy" "$policy"; else rm -f "$policy"; fi
  }
  trap restore_policy EXIT
  printf '#!/bin/sh\n# .ci/services.sh: start no services while it installs packages\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  restore_policy
  trap - EXIT
fi

# RabbitMQ: AMQP on 127.0.0.1:5672, management HTTP API on 127.0.0.1:15672, guest/guest.
rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "services: starting rabbitmq-server"
  rabbitmq-server -detached
fi
# await_startup fails at once while the node has not yet registered with epmd
# (just after -detached): retry until it answers, within a bound.
for attempt in $(seq 1 60); do
  if rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1; then
    break
  fi
  if [ "$attempt" -eq 60 ]; then
    echo "services: rabbitmq did not start; its log is under /var/log/rabbitmq" >&2
    exit 1
  fi
  sleep 2
done
for _ in $(seq 1 60); do
  if curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
    echo "services: rabbitmq ready (amqp 5672, management 15672)"
    exit 0
  fi
  sleep 1
done
echo "services: rabbitmq management API did not answer on 127.0.0.1:15672" >&2
exit 1
