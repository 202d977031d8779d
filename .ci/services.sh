#!/usr/bin/env bash
# Installs (when missing, with apt-get as root) and starts the servers the
# integration tests talk to: RabbitMQ with its management plugin. Prometheus is
# installed here but started by the tests themselves (own port, temp data dir);
# the SQS-compatible server (moto) is a Python package the tests start.
# Idempotent: safe to run again while the broker is up.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
need_apt=()
command -v rabbitmq-server >/dev/null 2>&1 || need_apt+=(rabbitmq-server)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "services: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) or run as root" >&2
    exit 1
  fi
  echo "services: apt-get install ${need_apt[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian's postinst may start a system Prometheus on :9090; the tests start their own.
  pkill -x prometheus 2>/dev/null || true
fi

# RabbitMQ: AMQP on 127.0.0.1:5672, management HTTP API on 127.0.0.1:15672, guest/guest.
rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "services: starting rabbitmq-server"
  rabbitmq-server -detached
fi
rabbitmqctl -q await_startup --timeout 120
for _ in $(seq 1 60); do
  if curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
    echo "services: rabbitmq ready (amqp 5672, management 15672)"
    exit 0
  fi
  sleep 1
done
echo "services: rabbitmq management API did not answer on 127.0.0.1:15672" >&2
exit 1
