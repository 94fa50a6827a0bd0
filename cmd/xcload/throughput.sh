#!/usr/bin/env bash
# Throughput: `xcomponent serve` flat out under xcload (toggle component, each client driving
# its own instance) on the memory, SQLite and PostgreSQL stores, runs interleaved. For each
# run: events/s, p50/p99, and the CPU spent per answered event by each process — serve, the
# PostgreSQL backends serving it (its own database), xcload — read from /proc/PID/stat, the
# figure that stays meaningful on a shared machine (events/s on 2 cores ≈ 2e6 / total µs).
#
#   cmd/xcload/throughput.sh [memory] [sqlite] [postgres]      (default: all three)
#
# Environment [defaults]: INSTANCES [256], DURATION [15s] measured, WARMUP [2s], RUNS [2]
# (rounds over the stores), PORT [3999], OUT [/tmp/xcload-throughput] (binaries, logs, one
# JSON report per run), PGURL [postgres://postgres@127.0.0.1:5432], SERVE_FLAGS [] (extra
# flags for serve, e.g. --pprof 127.0.0.1:6060), CLIENT [fast] (xcload --client: fast|std).
# It creates its own PostgreSQL database and drops it at the end; SQLite runs on a new file.
set -euo pipefail
cd "$(dirname "$0")/../.."
stores=("$@")
[ ${#stores[@]} -eq 0 ] && stores=(memory sqlite postgres)
INSTANCES=${INSTANCES:-256} DURATION=${DURATION:-15s} WARMUP=${WARMUP:-2s} RUNS=${RUNS:-2}
PORT=${PORT:-3999} OUT=${OUT:-/tmp/xcload-throughput} PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
SERVE_FLAGS=${SERVE_FLAGS:-} CLIENT=${CLIENT:-fast}
db=xc_throughput_$$
mkdir -p "$OUT"
go build -o "$OUT/" ./cmd/xcomponent ./cmd/xcload

spid= made_db=
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
  [ -n "$made_db" ] && psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  return 0
}
trap cleanup EXIT

ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pgticks() { # the backends connected to our database
  local t=0 p
  for p in $(pgrep -f "postgres: .*postgres $db " || true); do t=$((t + $(ticks "$p"))); done
  echo $t
}

run() {
  local store=$1 round=$2 url=http://127.0.0.1:$PORT s
  case $store in
    memory) s=memory ;;
    sqlite) rm -f "$OUT"/load.db*; s=sqlite:$OUT/load.db ;;
    postgres)
      psql "$PGURL/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
      psql "$PGURL/postgres" -qc "CREATE DATABASE $db" >/dev/null; made_db=1
      s="$PGURL/$db?sslmode=disable" ;;
    *) echo "unknown store $store" >&2; exit 2 ;;
  esac
  # shellcheck disable=SC2086
  "$OUT/xcomponent" serve cmd/xcload/testdata/toggle.yaml --store "$s" --port "$PORT" --log-level warn \
    $SERVE_FLAGS >"$OUT/serve-$store.log" 2>&1 &
  spid=$!
  for _ in $(seq 300); do curl -fs -o /dev/null "$url/readyz" && break; sleep 0.1; done
  local s0 p0 s1 p1 tm json=$OUT/$store-$round.json
  # Warm-up: its own xcload run (connections, caches, the database's first pages), so that the
  # measured run's CPU, read around it, divides by its own answered events.
  "$OUT/xcload" --url "$url" --component Bench --machine Toggle --event FLIP --instances "$INSTANCES" \
    --duration "$WARMUP" --client "$CLIENT" --no-watch --progress off >/dev/null 2>&1
  s0=$(ticks $spid) p0=$(pgticks)
  tm=$( { TIMEFORMAT='%U %S'; time "$OUT/xcload" --url "$url" --component Bench --machine Toggle --event FLIP \
    --instances "$INSTANCES" --duration "$DURATION" --client "$CLIENT" --no-watch \
    --progress off --json >"$json" 2>"$OUT/xcload-$store.log"; } 2>&1 )
  s1=$(ticks $spid) p1=$(pgticks)
  kill $spid; wait $spid 2>/dev/null || true; spid=
  # CPU of the measured run (its 256 creations included: negligible) per answered event.
  python3 - "$json" "$store" "$((s1 - s0))" "$((p1 - p0))" "$tm" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
path, store, sv, pg, tm, load = sys.argv[1:7]
r = json.load(open(path))
hz = 100  # clock ticks per second (/proc/PID/stat)
ev, n = r["eventsPerSecond"], r["ok"]
u, s = map(float, tm.split())
per = lambda sec: sec * 1e6 / max(n, 1)
sv_us, pg_us, xl_us = per(int(sv) / hz), per(int(pg) / hz), per(u + s)
lat = r["latencyMs"]
print(f"{store:8s} events/s {ev:8.0f}  p50 {lat['p50']:6.1f} ms  p99 {lat['p99']:6.1f} ms  errors {r['failed']}  "
      f"| CPU µs/event: serve {sv_us:6.1f}  postgres {pg_us:6.1f}  xcload {xl_us:6.1f}  total {sv_us + pg_us + xl_us:6.1f}  (load {load})")
PY
}

for round in $(seq "$RUNS"); do
  for store in "${stores[@]}"; do run "$store" "$round"; done
done
