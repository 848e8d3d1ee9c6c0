#!/usr/bin/env bash
# bench/sweep.sh: for each worker count, start the server, run sluice-loadgen at each
# concurrency, stop the server; print a progress line per step and a markdown table.
# Bounded: the server gets START_TIMEOUT s to listen, each run WARMUP + DURATION + TIMEOUT
# (loadgen's own bound, with `timeout` as a guard), and only the started PID is stopped.
#
#   SLUICE_START='build/sluice run -c /tmp/conf-{WORKERS}.lua' PORT=2525 bench/sweep.sh \
#       --tls starttls --insecure --auth plain --user u --password p --pipelining
#
# Environment (defaults): SLUICE_START (required; {WORKERS} is replaced), WORKERS ("1 2 4"),
# CONCURRENCY ("1 4 12 32"), DURATION (10), WARMUP (2), TIMEOUT (10), HOST (127.0.0.1),
# PORT (2525), LOADGEN (build/sluice-loadgen), START_TIMEOUT (10), OUT (a new temp dir).
# Arguments are passed to every loadgen run.
set -euo pipefail

if [[ -z ${SLUICE_START:-} ]]; then
    echo "sweep: set SLUICE_START, the server command;" \
         "e.g. SLUICE_START='build/sluice run -c /tmp/conf-{WORKERS}.lua'" >&2
    exit 2
fi
WORKERS=${WORKERS:-"1 2 4"}
CONCURRENCY=${CONCURRENCY:-"1 4 12 32"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
TIMEOUT=${TIMEOUT:-10}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-2525}
LOADGEN=${LOADGEN:-build/sluice-loadgen}
START_TIMEOUT=${START_TIMEOUT:-10}
OUT=${OUT:-$(mktemp -d /tmp/sluice-sweep.XXXXXX)}
mkdir -p "$OUT"

pid=
stop_server() {
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

is_listening() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

wait_port() {
    for _ in $(seq $((START_TIMEOUT * 10))); do
        kill -0 "$pid" 2>/dev/null || return 1
        is_listening && return 0
        sleep 0.1
    done
    return 1
}

# field NAME FILE: a number from loadgen's one-line JSON ("p50" and "p99" are unique keys)
field() { grep -o "\"$1\":[0-9.]*" "$2" | head -n 1 | cut -d: -f2 || true; }

if is_listening; then
    echo "sweep: something already listens on $HOST:$PORT; stop it first" >&2
    exit 1
fi
rows=()
for w in $WORKERS; do
    cmd=${SLUICE_START//\{WORKERS\}/$w}
    bash -c "exec $cmd" >"$OUT/server-w$w.log" 2>&1 &
    pid=$!
    if ! wait_port; then
        echo "sweep: workers=$w: no listener on $HOST:$PORT after ${START_TIMEOUT}s;" \
             "see $OUT/server-w$w.log" >&2
        exit 1
    fi
    for c in $CONCURRENCY; do
        json=$OUT/w$w-c$c.json
        timeout $((WARMUP + DURATION + TIMEOUT + 15)) "$LOADGEN" --host "$HOST" --port "$PORT" \
            --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" --timeout "$TIMEOUT" \
            --json "$@" >"$json" 2>"$OUT/w$w-c$c.log" || true
        rate=$(field msg_per_s "$json") p50=$(field p50 "$json") p99=$(field p99 "$json")
        failed=$(field failed "$json")
        echo "sweep: workers=$w concurrency=$c: ${rate:--} msg/s, p50 ${p50:--} ms," \
             "p99 ${p99:--} ms, failed ${failed:--}" >&2
        rows+=("| $w | $c | ${rate:--} | ${p50:--} | ${p99:--} | ${failed:--} |")
    done
    stop_server
done

echo "Command: SLUICE_START='$SLUICE_START' $LOADGEN --duration $DURATION --warmup $WARMUP $*"
echo
echo "| workers | concurrency | msg/s | p50 ms | p99 ms | failed |"
echo "|--------:|------------:|------:|-------:|-------:|-------:|"
printf '%s\n' "${rows[@]}"
echo
echo "Logs and JSON: $OUT" >&2
