#!/usr/bin/env bash
# bench/sweep.sh: for each worker count, start the server, run sluice-loadgen at each
# concurrency, stop the server; print a progress line per step and a markdown table.
# Bounded: the server gets START_TIMEOUT s to listen, each run WARMUP + DURATION + TIMEOUT
# (loadgen's own bound, with `timeout` as a guard), and only the started PID is stopped.
# "server CPU %" is the server process's CPU time over the run's wall time (100 = one core).
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

pid='' lpid=''
stop_server() {
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}
stop_loadgen() {
    [[ -n $lpid ]] || return 0
    kill "$lpid" 2>/dev/null || true # timeout passes TERM on to loadgen
    wait "$lpid" 2>/dev/null || true
    lpid=
}
trap 'stop_loadgen; stop_server' EXIT
trap 'stop_loadgen; stop_server; exit 130' INT TERM

is_listening() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

wait_port() {
    for _ in $(seq $((START_TIMEOUT * 10))); do
        kill -0 "$pid" 2>/dev/null || return 1
        is_listening && return 0
        sleep 0.1
    done
    return 1
}

# CPU seconds (user + system) the server has used so far; 0 if it is gone
server_cpu() {
    local s
    s=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || { echo 0; return; }
    awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / t }' <<<"$s"
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
        cpu0=$(server_cpu) t0=$(date +%s.%N)
        # in the background, so that a signal stops the sweep at once
        timeout $((WARMUP + DURATION + TIMEOUT + 15)) "$LOADGEN" --host "$HOST" --port "$PORT" \
            --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" --timeout "$TIMEOUT" \
            --json "$@" >"$json" 2>"$OUT/w$w-c$c.log" &
        lpid=$!
        wait "$lpid" || true
        lpid=
        # the server's CPU over the whole loadgen run, warmup included; 100 = one core
        cpu=$(awk -v a="$cpu0" -v b="$(server_cpu)" -v t0="$t0" -v t1="$(date +%s.%N)" \
            'BEGIN { printf "%.0f", (b - a) / (t1 - t0) * 100 }')
        rate=$(field msg_per_s "$json") p50=$(field p50 "$json") p99=$(field p99 "$json")
        failed=$(field failed "$json")
        echo "sweep: workers=$w concurrency=$c: ${rate:--} msg/s, p50 ${p50:--} ms," \
             "p99 ${p99:--} ms, failed ${failed:--}, server CPU ${cpu}%" >&2
        rows+=("| $w | $c | ${rate:--} | ${p50:--} | ${p99:--} | ${failed:--} | $cpu |")
    done
    stop_server
done

echo "Command: SLUICE_START='$SLUICE_START' $LOADGEN --duration $DURATION --warmup $WARMUP $*"
echo
echo "| workers | concurrency | msg/s | p50 ms | p99 ms | failed | server CPU % |"
echo "|--------:|------------:|------:|-------:|-------:|-------:|-------------:|"
printf '%s\n' "${rows[@]}"
echo
echo "Logs and JSON: $OUT" >&2
