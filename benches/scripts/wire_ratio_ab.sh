#!/usr/bin/env bash
# Two builds of `arbiter serve` side by side on one policy set: per round, each server's `Authorize` (or any
# unary call, with AUTH_PATH) and then its `grpc.health.v1.Health/Check`, driven by h2load, the order of the
# servers flipped every other round. Prints each run's throughput, the server's CPU time per call (user + sys,
# from /proc/<pid>/stat), the ratio to Health/Check, then each build's medians (`ab_medians.py`) and each
# server's decision counters (h2load only judges HTTP status).
#
#   cargo bench --bench loadgen -- --policies 1000 --write-dir /tmp/p1k --write-frame /tmp/frame.bin
#   benches/scripts/wire_ratio_ab.sh ROUNDS CALLS OLD_BINARY NEW_BINARY /tmp/p1k /tmp/frame.bin
#
# Needs h2load (Debian nghttp2-client), curl and bc. Set AUTH_PATH=arbiter.v1.Authorizer/AuthorizeBatch with a
# frame from `--write-batch-frame` for batches.
set -euo pipefail
ROUNDS=$1 CALLS=$2 A=$3 B=$4 POLICIES=$5 FRAME=$6
AUTH=${AUTH_PATH:-arbiter.v1.Authorizer/Authorize}
HEALTH=grpc.health.v1.Health/Check
HEALTH_FRAME=$(mktemp)
ROUND_LINES=$(mktemp)
printf '\x00\x00\x00\x00\x00' >"$HEALTH_FRAME" # an empty HealthCheckRequest, gRPC-framed

start() { # binary port
  "$1" serve --policies "$POLICIES" --listen "127.0.0.1:$2" --metrics-listen "127.0.0.1:$(($2 + 1))" \
    --log warn >/dev/null 2>&1 &
  echo $!
}
PA=$(start "$A" 52000)
PB=$(start "$B" 52100)
trap 'kill $PA $PB 2>/dev/null; rm -f "$HEALTH_FRAME" "$ROUND_LINES"' EXIT
for port in 52001 52101; do
  for _ in $(seq 300); do
    curl -sf "127.0.0.1:$port/metrics" >/dev/null && break
    sleep 0.1
  done
done

h2() { # port path frame calls
  h2load -n "$4" -c 4 -m 32 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$3" \
    "http://127.0.0.1:$1/$2" 2>&1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # pid port path frame -> "calls/s µs-per-call"
  local before after out
  before=$(cpu_ticks "$1")
  out=$(h2 "$2" "$3" "$4" "$CALLS")
  after=$(cpu_ticks "$1")
  grep -q "$CALLS succeeded" <<<"$out" || echo "not every call succeeded: $(grep -o '[0-9]* succeeded' <<<"$out")" >&2
  local rps
  rps=$(grep -o 'finished in [^,]*, [0-9.]* req/s' <<<"$out" | grep -o '[0-9.]* req/s' | cut -d' ' -f1)
  echo "$rps $(echo "($after - $before) * 1000000 / $(getconf CLK_TCK) / $CALLS" | bc -l | cut -c1-5)"
}

for port in 52000 52100; do h2 "$port" "$AUTH" "$FRAME" 20000 >/dev/null; done
for r in $(seq "$ROUNDS"); do
  order="A B"
  [ $((r % 2)) = 0 ] && order="B A"
  for who in $order; do
    if [ "$who" = A ]; then pid=$PA port=52000; else pid=$PB port=52100; fi
    read -r a_rps a_cpu <<<"$(run "$pid" "$port" "$AUTH" "$FRAME")"
    read -r h_rps h_cpu <<<"$(run "$pid" "$port" "$HEALTH" "$HEALTH_FRAME")"
    echo "round $r $who $(date +%T) load $(cut -d' ' -f1 /proc/loadavg): call ${a_rps}/s (${a_cpu} us)" \
      "health ${h_rps}/s (${h_cpu} us) ratio $(echo "$a_rps / $h_rps" | bc -l | cut -c1-5)" | tee -a "$ROUND_LINES"
  done
done
python3 "$(dirname "$0")/ab_medians.py" "$ROUND_LINES"
for port in 52001 52101; do
  echo "$port: $(curl -s "127.0.0.1:$port/metrics" | grep '^arbiter_decisions_total' | tr '\n' ' ')"
done
