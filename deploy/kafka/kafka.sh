#!/usr/bin/env bash
# One Apache Kafka 4.x broker (KRaft, broker and controller in one process) on 127.0.0.1.
# Tests, CI and the demo all start Kafka through this script; there is no Docker here.
#
#   deploy/kafka/kafka.sh fetch     jars from Maven Central into the cache (once)
#   deploy/kafka/kafka.sh start     fetch, format storage if new, start, wait until it serves
#   deploy/kafka/kafka.sh stop      stop it cleanly (SIGTERM, then SIGKILL after 30 s); with
#                                   neither KAFKA_PORT nor KAFKA_DATA and none on 9092, the
#                                   one started with another KAFKA_PORT (.data/kafka-PORT)
#   deploy/kafka/kafka.sh status    exit 0 when it accepts connections
#
# Settings (environment): KAFKA_PORT (9092; the controller listens on KAFKA_PORT+1),
# KAFKA_DATA (.data/kafka-$KAFKA_PORT under the repo), KAFKA_CACHE (~/.cache/promise-tracker),
# KAFKA_HEAP (512m).
#
# Optional SASL/PLAIN listener (SASL_PLAINTEXT; the controller and the broker-to-broker
# listener stay PLAINTEXT): KAFKA_SASL_PORT (its port; unset: no such listener) and
# KAFKA_SASL_USERS, the accounts as "name:password name2:password2" (no quotes, backslashes
# or spaces in them). They are written into $KAFKA_DATA/server.properties (mode 600).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")
PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=$((PORT + 1))
DATA=${KAFKA_DATA:-$ROOT/.data/kafka-$PORT}
CACHE=${KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/promise-tracker}
LIBS=$CACHE/kafka-$VERSION/libs
PIDFILE=$DATA/kafka.pid

NAME=kafka.sh
# shellcheck source=../daemon.sh
. "$HERE/../daemon.sh"

fetch() {
  # the jars of this pom.xml are there (by content: a fresh clone's pom.xml is newer than
  # any cache)
  local want
  want=$(sha256sum "$HERE/pom.xml" | cut -c1-16)
  if [ "$(cat "$LIBS/.complete" 2>/dev/null)" = "$want" ]; then
    return
  fi
  command -v mvn >/dev/null || { say "mvn is not installed: apt-get install maven"; exit 1; }
  command -v java >/dev/null || { say "java is not installed: apt-get install openjdk-17-jre-headless"; exit 1; }
  say "fetching Apache Kafka $VERSION jars from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  # jansi.noreset: Debian's Maven 3.8 writes ANSI resets (ESC[0m) to stdout and stderr even
  # with -B and style.color=never
  MAVEN_OPTS="${MAVEN_OPTS:-} -Djansi.noreset=true" \
    mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS"
  echo "$want" >"$LIBS/.complete"
}

java_run() {
  exec java -Xms128m -Xmx"${KAFKA_HEAP:-512m}" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -cp "$LIBS/*" "$@"
}

sasl_config() {
  # the JAAS line of the SASL listener: user_NAME="PASSWORD" per account
  local users="" first="" account name password
  [ -n "${KAFKA_SASL_USERS:-}" ] || { say "KAFKA_SASL_PORT needs KAFKA_SASL_USERS=name:password"; exit 1; }
  for account in $KAFKA_SASL_USERS; do
    name=${account%%:*}
    password=${account#*:}
    case "$account" in
      *:*) ;;
      *) say "KAFKA_SASL_USERS: expected name:password, got an entry without ':'"; exit 1 ;;
    esac
    case "$name$password" in
      *'"'*|*\\*|'') say "KAFKA_SASL_USERS: no quotes or backslashes in names and passwords"; exit 1 ;;
    esac
    [ -n "$first" ] || first="username=\"$name\" password=\"$password\""
    users="$users user_$name=\"$password\""
  done
  cat <<CONF
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required $first$users;
CONF
}

write_config() {
  local listeners="PLAINTEXT://127.0.0.1:$PORT" map="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  local sasl=""
  if [ -n "${KAFKA_SASL_PORT:-}" ]; then
    listeners="$listeners,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
    map="$map,SASL_PLAINTEXT:SASL_PLAINTEXT"
    sasl=$(sasl_config)
  fi
  (umask 077 && : > "$DATA/server.properties")
  cat > "$DATA/server.properties" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$map
$sasl
log.dirs=$DATA/logs
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.segment.bytes=67108864
log.cleaner.backoff.ms=5000
CONF
}

start() {
  fetch
  if running_pid >/dev/null; then
    say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
    return
  fi
  if serving; then
    say "port $PORT is taken by another process: set KAFKA_PORT"
    exit 1
  fi
  mkdir -p "$DATA"
  write_config
  if [ ! -f "$DATA/logs/meta.properties" ]; then
    (java_run kafka.tools.StorageTool format -t "$(java_run kafka.tools.StorageTool random-uuid)" \
      -c "$DATA/server.properties") >"$DATA/format.log" 2>&1 \
      || { say "formatting storage failed: see $DATA/format.log"; exit 1; }
  fi
  java_run kafka.Kafka "$DATA/server.properties" </dev/null >>"$DATA/server.log" 2>&1 &
  echo $! >"$PIDFILE"
  await_start serving 60 "$DATA/server.log" "the broker"
  say "serving on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), data $DATA)"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop)
    if [ -n "${KAFKA_PORT:-}${KAFKA_DATA:-}" ]; then
      stop
    else
      stop_started KAFKA_PORT "$ROOT/.data" "kafka-*/kafka.pid"
    fi
    ;;
  status) serving ;;
  *) echo "usage: kafka.sh fetch | start | stop | status" >&2; exit 2 ;;
esac
