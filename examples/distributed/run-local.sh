#!/usr/bin/env bash
# The distributed example without Docker: the services of docker-compose.yml as local
# processes, against the RabbitMQ and PostgreSQL of this machine. Ctrl-C stops them all.
#
#   examples/distributed/run-local.sh
#
# Environment (defaults in brackets):
#   BROKER_URL    [amqp://guest:guest@localhost:5672]
#   DATABASE_URL  [postgres://postgres@localhost:5432/xcomponent_fsm?sslmode=disable]
#                 created if missing, schema from deploy/postgres/init.sql
#   PORT_OFFSET   [0] added to every port (dashboard 3000, runtimes 8081-8084)
#   LOG_DIR       [examples/distributed/logs]   one log file per service
#   BIN_DIR       [bin]                          where the binaries are built
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

BROKER_URL=${BROKER_URL:-amqp://guest:guest@localhost:5672}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@localhost:5432/xcomponent_fsm?sslmode=disable}
PORT_OFFSET=${PORT_OFFSET:-0}
LOG_DIR=${LOG_DIR:-$ROOT/examples/distributed/logs}
BIN_DIR=${BIN_DIR:-$ROOT/bin}
EXAMPLE=$ROOT/examples/distributed

say() { printf '%s\n' "$*"; }
die() { printf 'run-local: %s\n' "$*" >&2; exit 1; }

# --- prerequisites -----------------------------------------------------------------------
command -v go >/dev/null || die "go not found in PATH (https://go.dev/dl)"
command -v psql >/dev/null || die "psql not found in PATH (apt-get install postgresql-client)"
command -v curl >/dev/null || die "curl not found in PATH"

hostport=${BROKER_URL#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
bhost=${hostport%%:*}; bport=${hostport##*:}; [ "$bport" = "$hostport" ] && bport=5672
(exec 3<>"/dev/tcp/$bhost/$bport") 2>/dev/null ||
  die "RabbitMQ is not reachable at $bhost:$bport (BROKER_URL): start it, e.g. 'rabbitmq-server -detached'"

# --- database: created if missing, schema applied (idempotent) ----------------------------
db=${DATABASE_URL##*/}; db=${db%%\?*}
admin_url=${DATABASE_URL%/*}/postgres
[ "$DATABASE_URL" != "${DATABASE_URL#*\?}" ] && admin_url="$admin_url?${DATABASE_URL#*\?}"
psql "$admin_url" -Atqc 'SELECT 1' >/dev/null 2>&1 ||
  die "PostgreSQL is not reachable with $admin_url: start it (e.g. 'pg_ctlcluster 15 main start') or set DATABASE_URL"
if [ "$(psql "$admin_url" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
  say "creating database $db"
  psql "$admin_url" -qc "CREATE DATABASE \"$db\"" >/dev/null
fi
PGOPTIONS="-c client_min_messages=warning" psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 -f "$ROOT/deploy/postgres/init.sql" >/dev/null

# --- binaries ------------------------------------------------------------------------------
say "building $BIN_DIR/xcomponent and $BIN_DIR/runtime"
mkdir -p "$BIN_DIR" "$LOG_DIR"
go build -o "$BIN_DIR/" ./cmd/xcomponent ./examples/distributed/runtime

# --- services ------------------------------------------------------------------------------
NAMES=() PIDS=() PORTS=()
# On exit (Ctrl-C, SIGTERM, or an error), every service started is stopped gracefully.
cleanup() {
  local rc=$?
  trap - INT TERM EXIT
  if [ ${#PIDS[@]} -gt 0 ]; then
    say ""
    say "stopping ${#PIDS[@]} services (SIGTERM: each finishes its work and announces its shutdown)"
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -f "$LOG_DIR"/*.pid
    say "stopped; logs are in $LOG_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# start SERVICE PORT PROGRAM COMPONENT_FILE CREATE_DEMO_INSTANCE
#   PROGRAM: xcomponent:dashboard, xcomponent:runtime (the binary with a subcommand) or
#   runtime (the example's Go runtime with its hooks); "-": not applicable.
start() {
  local name=$1 port=$(($2 + PORT_OFFSET)) program=${3/:/ } comp=$4 demo=$5
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port ($name) is already in use: stop what listens there, or set PORT_OFFSET (e.g. PORT_OFFSET=100)"
  fi
  local env=(BROKER_URL="$BROKER_URL" DATABASE_URL="$DATABASE_URL" PORT="$port")
  if [ "$comp" != - ]; then
    env+=(COMPONENT_FILE="$EXAMPLE/$comp" RUNTIME_NAME="$name" CREATE_DEMO_INSTANCE="$demo")
  fi
  # shellcheck disable=SC2086 # program is "binary [subcommand]"
  env "${env[@]}" "$BIN_DIR"/$program >"$LOG_DIR/$name.log" 2>&1 &
  NAMES+=("$name") PIDS+=("$!") PORTS+=("$port")
  echo "$!" >"$LOG_DIR/$name.pid"
  say "started $name (pid $!, port $port)"
}

# The topology: the same services, ports and settings as docker-compose.yml.
#     service             port  program              component file          demo instance
start dashboard           3000  xcomponent:dashboard -                       -
start runtime-approval    8081  xcomponent:runtime   approval-workflow.yaml  true
start runtime-approval-2  8082  xcomponent:runtime   approval-workflow.yaml  false
start runtime-order       8083  runtime              order.yaml              false
start runtime-payment     8084  runtime              payment.yaml            false

# Wait until every service answers /readyz (60 s at most).
for i in "${!NAMES[@]}"; do
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "http://127.0.0.1:${PORTS[$i]}/readyz" 2>/dev/null && break
    kill -0 "${PIDS[$i]}" 2>/dev/null || break
    sleep 0.5
  done
  if ! curl -fsS -o /dev/null "http://127.0.0.1:${PORTS[$i]}/readyz" 2>/dev/null; then
    say "${NAMES[$i]} is not ready; the end of $LOG_DIR/${NAMES[$i]}.log:"
    tail -n 20 "$LOG_DIR/${NAMES[$i]}.log" || true
    exit 1
  fi
done

cat <<MSG

All services are up.
  Dashboard:  http://localhost:$((3000 + PORT_OFFSET))
  Logs:       $LOG_DIR/<service>.log   (tail -f $LOG_DIR/*.log)
  PIDs:       $LOG_DIR/<service>.pid
  Services:   ${NAMES[*]}
Press Ctrl-C to stop everything.
MSG

# Report a service that exits on its own; the others keep running until Ctrl-C.
declare -A reported=()
while :; do
  for i in "${!PIDS[@]}"; do
    if [ -z "${reported[$i]:-}" ] && ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      reported[$i]=1
      say "${NAMES[$i]} exited; see $LOG_DIR/${NAMES[$i]}.log"
    fi
  done
  sleep 1 &
  wait $! || true
done
