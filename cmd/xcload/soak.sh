#!/usr/bin/env bash
# Soak: a steady-rate xcload run against `xcomponent serve` (SQLite or PostgreSQL) or against
# the distributed topology (`xcomponent dashboard` + N `xcomponent runtime` on PostgreSQL and
# RabbitMQ), sampling every server process's RSS, goroutines, open file descriptors and TCP
# connections; the report compares the first and last third of the run after the warm-up.
#
#   cmd/xcload/soak.sh sqlite|postgres|distributed
#
# Environment [defaults]: RATE [300] events/s, DURATION [10m] measured, WARMUP [30s],
# SAMPLE [5s], INSTANCES [64], RUNTIMES [2] (distributed), PORT [3990] (runtimes PORT+1…),
# OUT [/tmp/xcload-soak] (binaries, logs, MODE.json report, MODE.samples.jsonl samples),
# PGURL [postgres://postgres@127.0.0.1:5432], AMQP_HOST [127.0.0.1:5672] (guest/guest).
# It creates its own database / RabbitMQ vhost (rabbitmqctl) and drops them at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: $0 sqlite|postgres|distributed}
RATE=${RATE:-300} DURATION=${DURATION:-10m} WARMUP=${WARMUP:-30s} SAMPLE=${SAMPLE:-5s}
INSTANCES=${INSTANCES:-64} RUNTIMES=${RUNTIMES:-2} PORT=${PORT:-3990} OUT=${OUT:-/tmp/xcload-soak}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432} AMQP_HOST=${AMQP_HOST:-127.0.0.1:5672}
COMPONENT=cmd/xcload/testdata/toggle.yaml
tag=xcsoak_${mode}_$$
mkdir -p "$OUT"
go build -o "$OUT/" ./cmd/xcomponent ./cmd/xcload

PIDS=() PORTS=() db= vhost=
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "$db" ] && psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  [ -n "$vhost" ] && rabbitmqctl --quiet delete_vhost "$vhost" >/dev/null 2>&1
  rm -f "$OUT/$tag".db*
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run NAME PORT ENV... -- ARGS...: start a server process in the background, logs in OUT.
run() {
  local name=$1 port=$2; shift 2
  local env=()
  while [ "$1" != -- ]; do env+=("$1"); shift; done
  shift
  env "${env[@]}" "$OUT/xcomponent" "$@" >"$OUT/$mode-$name.log" 2>&1 &
  PIDS+=("$!") PORTS+=("$port")
}

case $mode in
sqlite)
  run serve "$PORT" PORT= DATABASE_URL= -- serve "$COMPONENT" --store "sqlite:$OUT/$tag.db" --port "$PORT" --log-level warn ;;
postgres)
  db=$tag
  psql "$PGURL/postgres" -qc "CREATE DATABASE $db" >/dev/null
  run serve "$PORT" PORT= DATABASE_URL= -- serve "$COMPONENT" --store "$PGURL/$db?sslmode=disable" --port "$PORT" --log-level warn ;;
distributed)
  db=$tag vhost=$tag
  psql "$PGURL/postgres" -qc "CREATE DATABASE $db" >/dev/null
  rabbitmqctl --quiet add_vhost "$vhost" >/dev/null
  rabbitmqctl --quiet set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
  export BROKER_URL="amqp://guest:guest@$AMQP_HOST/$vhost" DATABASE_URL="$PGURL/$db?sslmode=disable"
  for i in $(seq 1 "$RUNTIMES"); do
    run "runtime-$i" $((PORT + i)) COMPONENT_FILE="$COMPONENT" RUNTIME_NAME="soak-$i" PORT= -- runtime --port $((PORT + i)) --log-level warn
  done
  run dashboard "$PORT" PORT= -- dashboard --port "$PORT" --log-level warn ;;
*) echo "usage: $0 sqlite|postgres|distributed" >&2; exit 2 ;;
esac

for i in "${!PIDS[@]}"; do
  for _ in $(seq 1 240); do
    curl -fsS -o /dev/null "http://127.0.0.1:${PORTS[$i]}/readyz" 2>/dev/null && break
    kill -0 "${PIDS[$i]}" 2>/dev/null || { tail -20 "$OUT"/"$mode"-*.log; exit 1; }
    sleep 0.5
  done
done

echo "soak $mode: $RATE events/s for $DURATION after $WARMUP, pids ${PIDS[*]}, load average $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$OUT/$mode.samples.jsonl"
"$OUT/xcload" --url "http://127.0.0.1:$PORT" --component Bench --machine Toggle --event FLIP \
  --instances "$INSTANCES" --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" \
  --sample "$SAMPLE" --server-pid "$(IFS=,; echo "${PIDS[*]}")" --timeout 10s \
  --sample-out "$OUT/$mode.samples.jsonl" --json-out "$OUT/$mode.json" --progress on
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg); report $OUT/$mode.json"
