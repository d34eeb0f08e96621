#!/usr/bin/env bash
# Prometheus Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1, for the worker's
# pages (promise_tracker/paging/pager.py). Tests, CI and the demo all start Alertmanager
# through this script.
#
#   deploy/alertmanager/alertmanager.sh start     start it in the background, wait until ready
#   deploy/alertmanager/alertmanager.sh stop      stop it (SIGTERM, then SIGKILL after 30 s)
#   deploy/alertmanager/alertmanager.sh status    exit 0 when it answers /-/ready
#
# Settings (environment): ALERTMANAGER_PORT (9093), ALERTMANAGER_DATA (.data/alertmanager
# under the repo), ALERTMANAGER_CONFIG (deploy/alertmanager/alertmanager.yml),
# ALERTMANAGER_BIN (prometheus-alertmanager, else alertmanager, on the PATH).
# Gossip is off (--cluster.listen-address=): a single instance, and no second port to clash.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PORT=${ALERTMANAGER_PORT:-9093}
DATA=${ALERTMANAGER_DATA:-$ROOT/.data/alertmanager}
CONFIG=${ALERTMANAGER_CONFIG:-$HERE/alertmanager.yml}
PIDFILE=$DATA/alertmanager.pid
URL=http://127.0.0.1:$PORT

NAME=alertmanager.sh
# shellcheck source=../daemon.sh
. "$HERE/../daemon.sh"

binary() {
  if [ -n "${ALERTMANAGER_BIN:-}" ]; then
    echo "$ALERTMANAGER_BIN"
  elif command -v prometheus-alertmanager >/dev/null; then
    command -v prometheus-alertmanager
  elif command -v alertmanager >/dev/null; then
    command -v alertmanager
  else
    say "Alertmanager is not installed: apt-get install prometheus-alertmanager"
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
    say "port $PORT is taken by another process: set ALERTMANAGER_PORT"
    exit 1
  fi
  [ -f "$CONFIG" ] || { say "no config file at $CONFIG"; exit 1; }
  mkdir -p "$DATA"
  "$bin" --config.file="$CONFIG" --storage.path="$DATA" \
    --web.listen-address="127.0.0.1:$PORT" --cluster.listen-address= \
    </dev/null >>"$DATA/alertmanager.log" 2>&1 &
  echo $! >"$PIDFILE"
  await_start ready 30 "$DATA/alertmanager.log" Alertmanager
  say "serving on $URL (pid $(cat "$PIDFILE"), data $DATA)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) ready ;;
  *) echo "usage: alertmanager.sh start | stop | status" >&2; exit 2 ;;
esac
