#!/usr/bin/env bash
# bench/breakdown.sh: where sluice's own CPU goes, as evidence for docs/benchmarks.md.
#
# Starts a `sluice sink --discard` and sluice (bench/conf, WORKERS workers, free ports on
# 127.0.0.1), then for a few fixed-count loadgen runs:
#   * system calls per message in sluice (strace -c -f attached to sluice's PID; strace
#     slows sluice down, so only the counts matter, not the times);
#   * CPU per sluice thread (workers, offload pool) from /proc/PID/task/*/stat;
#   * a perf profile of sluice (perf record -e cpu-clock; software clock, so it also works in
#     a VM without hardware counters), top shared objects and symbols.
# Prints markdown on stdout. Bounded: every loadgen run has a message count and a
# duration cap; strace and perf are attached for at most that long. Only the processes it
# started are stopped, by PID. Needs strace; perf is optional.
#
# Environment: as bench/run.sh (BUILD, WORKERS, OUT, START_TIMEOUT), plus N_REUSE (20000),
# N_PERCONN (1000), PERF_SECS (4).
set -euo pipefail
BENCH_LIB=1
# shellcheck source=bench/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"
N_REUSE=${N_REUSE:-20000}
N_PERCONN=${N_PERCONN:-1000}
PERF_SECS=${PERF_SECS:-4}

if ! command -v strace >/dev/null; then
    log "strace is needed (apt-get install strace)"
    exit 1
fi

lg() { # lg NAME ARGS...: one bounded loadgen run against sluice's smtps port
    local name=$1
    shift
    timeout 120 "$LOADGEN" --host 127.0.0.1 --port "$SMTPS" --insecure --tls implicit "${AUTH_ARGS[@]}" \
        --user "$FROM" --timeout 10 --json "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" || true
}

thread_cpu() { # TID ticks, one line per thread of sluice
    local t
    for t in /proc/"$SLUICE_PID"/task/*; do
        echo "${t##*/} $(sed 's/^.*) //' "$t/stat" | awk '{ print $12 + $13 }')"
    done
}

# syscalls NAME N ARGS...: strace -c on sluice around one loadgen run of N messages
syscalls() {
    local name=$1 n=$2 spid
    shift 2
    strace -c -f -p "$SLUICE_PID" -o "$OUT/$name.strace" 2>/dev/null &
    spid=$!
    PIDS+=("$spid")
    sleep 1 # attached to every thread
    lg "$name" -n "$n" -d 60 "$@"
    kill -INT "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    forget_pid "$spid"
    echo "#### $name: $n messages, loadgen $* (ok $(jnum ok "$OUT/$name.json"), failed $(jnum failed "$OUT/$name.json"))"
    echo
    echo "| syscall | calls | errors | per message |"
    echo "|---|---:|---:|---:|"
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
            name = $NF; calls = $4; errs = (NF == 6 ? $5 : 0)
            if (name == "total") { total = calls; next }
            printf "| %s | %d | %d | %.2f |\n", name, calls, errs, calls / n }
        END { printf "| **total** | %d | | %.2f |\n", total, total / n }' "$OUT/$name.strace"
    echo
}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
start_sink sink-plain
SINK_PLAIN_PID=$SINK_PID SINK_PLAIN_PORT=$SINK_PORT
start_sluice sluice
log "sink pid $SINK_PLAIN_PID port $SINK_PLAIN_PORT; sluice pid $SLUICE_PID smtps $SMTPS; output in $OUT"

echo "## sluice breakdown: $(date -u '+%Y-%m-%d %H:%M UTC'), workers = $WORKERS, source $SOURCE_STATE"
echo
echo "### System calls in sluice per message (strace -c -f)"
echo
lg warm -n 2000 -c 4 # first handshakes, pool connections to the sink
syscalls reuse-c1 "$N_REUSE" -c 1 --per-conn 0
syscalls reuse-c12 "$N_REUSE" -c 12 --per-conn 0
syscalls perconn-c1 "$N_PERCONN" -c 1 --per-conn 1

echo "### CPU per sluice thread, reuse, c=12, $N_REUSE messages"
echo
thread_cpu >"$OUT/threads.0"
lg threads -n "$N_REUSE" -d 60 -c 12 --per-conn 0
thread_cpu >"$OUT/threads.1"
echo "| thread id | CPU s |"
echo "|---|---:|"
join "$OUT/threads.0" "$OUT/threads.1" |
    awk -v t="$CLK_TCK" '{ printf "| %s | %.2f |\n", $1, ($3 - $2) / t }'
echo
echo "($(jnum msg_per_s "$OUT/threads.json") msg/s. The main thread and the offload pool" \
     "threads show ~0 with connection reuse: AUTH runs once per connection.)"
echo

if command -v perf >/dev/null && perf record -e cpu-clock -o "$OUT/perf.probe" -- true \
    >/dev/null 2>&1; then
    echo "### perf profile of sluice, reuse, c=12 (cpu-clock, ${PERF_SECS} s)"
    echo
    lg perf -d $((PERF_SECS + 2)) -c 12 --per-conn 0 &
    lpid=$!
    PIDS+=("$lpid")
    sleep 1
    perf record -F 999 -e cpu-clock -g -p "$SLUICE_PID" -o "$OUT/perf.data" \
        -- sleep "$PERF_SECS" >/dev/null 2>&1 || true
    wait "$lpid" 2>/dev/null || true
    forget_pid "$lpid"
    echo '```'
    perf report -i "$OUT/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 10 || true
    echo
    perf report -i "$OUT/perf.data" --stdio --no-children --sort dso,sym -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -n 30 || true
    echo '```'
    echo
fi
stop_all
log "done in $(elapsed) s; files in $OUT"
