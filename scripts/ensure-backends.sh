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

# RabbitMQ opens its AMQP port late in boot, but "port open" is not "booted": await_startup is the readiness
# check. A node whose Erlang VM runs with the application stopped (rabbitmqctl stop_app) gets start_app; a
# second rabbitmq-server would refuse to start under the same node name. RABBITMQ_NODENAME / RABBITMQ_NODE_PORT
# select another node (the packaged one, rabbit@localhost on 5672, by default).
rabbit_port=${RABBITMQ_NODE_PORT:-5672}
rabbit_ctl() { timeout 60 rabbitmqctl ${RABBITMQ_NODENAME:+-n "$RABBITMQ_NODENAME"} "$@"; }
if ! port_open "$rabbit_port"; then
  if rabbit_ctl -q ping >/dev/null 2>&1; then
    echo "RabbitMQ: node up with the application stopped, start_app"
    rabbit_ctl start_app || true
  else
    echo "RabbitMQ: down, starting"
    rabbitmq-server -detached || true
  fi
fi
rabbit_ready=0
for _ in $(seq 1 60); do
  # await_startup fails at once until the new node has registered with epmd, hence the bounded retry.
  if rabbit_ctl await_startup --timeout 60 >/dev/null 2>&1; then rabbit_ready=1; break; fi
  sleep 1
done
if [ "$rabbit_ready" = 1 ]; then
  wait_port RabbitMQ "$rabbit_port" || status=1
else
  echo "RabbitMQ: the node did not finish booting" >&2
  status=1
fi
exit $status
