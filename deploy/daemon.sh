# What deploy/kafka/kafka.sh, deploy/alertmanager/alertmanager.sh and
# deploy/prometheus/prometheus.sh share: a background process behind a pid file on a
# 127.0.0.1 port. Sourced, not run. The script sets NAME (for messages), PORT, PIDFILE and,
# for ready, URL.

say() { echo "$NAME: $*" >&2; }

# an HTTP server at $URL that says it is ready (Alertmanager's and Prometheus' /-/ready)
ready() {
  curl -fsS -o /dev/null --max-time 2 "$URL/-/ready" 2>/dev/null
}

# something accepts connections on the port
serving() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

# the pid of our process, when it is alive
running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# await_start CHECK SECONDS LOG WHAT: until CHECK succeeds (then 0); exits 1 with the log's
# tail when the process dies first or SECONDS pass
await_start() {
  local check=$1 seconds=$2 log=$3 what=$4
  for _ in $(seq 1 $((seconds * 10))); do
    if "$check"; then
      return 0
    fi
    if ! running_pid >/dev/null; then
      say "$what exited during start: see $log"
      tail -20 "$log" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    sleep 0.1
  done
  say "not ready after $seconds s: see $log"
  exit 1
}

# SIGTERM, then SIGKILL after 30 s
stop() {
  local pid
  if ! pid=$(running_pid); then
    rm -f "$PIDFILE"
    say "not running on 127.0.0.1:$PORT"
    return
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; say "stopped"; return; }
    sleep 0.1
  done
  say "still running after 30 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

# stop_started VAR BASE GLOB, for a stop without the port (VAR) or the data directory: stop
# what runs on the default port; else find what was started with another port. BASE/GLOB
# matches the pid files of the default data directories ($ROOT/.data + NAME-*/NAME.pid),
# whose names end with the port. One running: it is stopped; several: listed with the
# command that stops each (exit 1); none: said (exit 0).
stop_started() {
  local var=$1 base=$2 glob=$3 file dir found=() pattern="$2/$3"
  if running_pid >/dev/null; then
    stop
    return
  fi
  for file in "$base"/$glob; do
    [ -f "$file" ] || continue
    dir=$(dirname "$file")
    # ours and alive: a stale pid file may name a pid reused by another program
    ps -o args= -p "$(cat "$file")" 2>/dev/null | grep -qF -- "$dir/" && found+=("$file")
  done
  case ${#found[@]} in
    0)
      rm -f "$PIDFILE"
      say "nothing to stop: none on 127.0.0.1:$PORT, none started with another $var ($pattern)"
      ;;
    1)
      dir=$(dirname "${found[0]}")
      say "none on 127.0.0.1:$PORT; stopping the one started with $var=${dir##*-}"
      PIDFILE=${found[0]}
      PORT=${dir##*-}
      stop
      ;;
    *)
      say "none on 127.0.0.1:$PORT, but ${#found[@]} started with another $var; stop each with:"
      for file in "${found[@]}"; do
        dir=$(dirname "$file")
        say "  $var=${dir##*-} $0 stop"
      done
      exit 1
      ;;
  esac
}
