#!/usr/bin/env bash
# Start PostgreSQL, Redis and RabbitMQ on their loopback ports when they are down; fail loudly if one will not come up.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do port_open "$port" && { echo "$name: up on 127.0.0.1:$port"; return 0; }; sleep 1; done
  echo "$name: did not come up on 127.0.0.1:$port" >&2
  return 1
}

status=0
if ! port_open 5432; then
  echo "PostgreSQL: down, starting"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
wait_port PostgreSQL 5432 || status=1

if ! port_open 6379; then
  echo "Redis: down, starting"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
wait_port Redis 6379 || status=1

if ! port_open 5672; then
  echo "RabbitMQ: down, starting"
  rabbitmq-server -detached || true
fi
wait_port RabbitMQ 5672 || status=1
exit $status
