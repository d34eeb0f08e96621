#!/usr/bin/env bash
# Prometheus (Debian's package) on 127.0.0.1, scraping the worker(s) and the sink.
# The metrics tests start Prometheus through this script.
#
#   deploy/prometheus/prometheus.sh start     check the config, start in the background, wait until ready
#   deploy/prometheus/prometheus.sh stop      stop it (SIGTERM, then SIGKILL after 30 s)
#   deploy/prometheus/prometheus.sh status    exit 0 when it answers /-/ready
#
# Settings (environment): PROMETHEUS_PORT (9090), PROMETHEUS_DATA (.data/prometheus-$PORT under
# the repo; the TSDB is in its tsdb/), PROMETHEUS_CONFIG (deploy/prometheus/prometheus.yml),
# PROMETHEUS_RETENTION (15d), PROMETHEUS_BIN (prometheus on the PATH).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PORT=${PROMETHEUS_PORT:-9090}
DATA=${PROMETHEUS_DATA:-$ROOT/.data/prometheus-$PORT}
CONFIG=${PROMETHEUS_CONFIG:-$HERE/prometheus.yml}
PIDFILE=$DATA/prometheus.pid
URL=http://127.0.0.1:$PORT

NAME=prometheus.sh
# shellcheck source=../daemon.sh
. "$HERE/../daemon.sh"

binary() {
  if [ -n "${PROMETHEUS_BIN:-}" ]; then
    echo "$PROMETHEUS_BIN"
  elif command -v prometheus >/dev/null; then
    command -v prometheus
  else
    say "Prometheus is not installed: apt-get install prometheus"
    exit 1
  fi
}

start() {
  local bin
  bin=$(binary)
  if running_pid >/dev/null; then
    say "already running (pid $(cat "$PIDFILE")) on $URL"
    return
  fi
  if serving; then
    say "port $PORT is taken by another process: set PROMETHEUS_PORT"
    exit 1
  fi
  [ -f "$CONFIG" ] || { say "no configuration at $CONFIG: set PROMETHEUS_CONFIG"; exit 1; }
  mkdir -p "$DATA"
  if command -v promtool >/dev/null; then  # a readable error now, not a dead process later
    promtool check config "$CONFIG" >"$DATA/promtool.log" 2>&1 \
      || { cat "$DATA/promtool.log" >&2; say "$CONFIG is not valid"; exit 1; }
  fi
  "$bin" --config.file="$CONFIG" \
    --storage.tsdb.path="$DATA/tsdb" \
    --storage.tsdb.retention.time="${PROMETHEUS_RETENTION:-15d}" \
    --web.listen-address="127.0.0.1:$PORT" \
    --web.enable-lifecycle \
    </dev/null >>"$DATA/prometheus.log" 2>&1 &
  echo $! >"$PIDFILE"
  await_start ready 60 "$DATA/prometheus.log" Prometheus
  say "ready on $URL (pid $(cat "$PIDFILE"), config $CONFIG, data $DATA)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) ready ;;
  *) echo "usage: prometheus.sh start | stop | status" >&2; exit 2 ;;
esac
