#!/usr/bin/env bash
# bench/run.sh: the benchmark of docs/benchmarks.md in one command (`make bench`).
#
# Starts `sluice sink --discard` (plain, and a second one with implicit TLS and AUTH as the
# TLS ceiling) and sluice with bench/conf/sluice-bench.lua.in (WORKERS workers, ports picked
# free on 127.0.0.1), runs build/sluice-loadgen for each scenario RUNS times (in rounds, so
# drift hits every scenario alike), measures sluice's RSS per idle TLS connection, and
# prints markdown tables on stdout (progress on stderr). Everything stays on 127.0.0.1.
#
# Bounded: each loadgen run is WARMUP + DURATION s (loadgen's own bound, and `timeout` as a
# guard), each server gets START_TIMEOUT s to listen, and the whole run stops starting new
# steps after MAX_SECS. About 4 minutes with the defaults. Only the processes this script
# started are stopped, by PID (TERM, then KILL after 5 s).
#
#   bench/run.sh              the scenarios and the idle-memory measurement
#   bench/run.sh --sweep      only the workers x concurrency sweep (bench/sweep.sh)
#   bench/run.sh --all        both
#
# The machine may be shared: before each run it waits up to QUIET_WAIT s (in all at most
# QUIET_BUDGET s) for a 0.5 s window in which the machine is less than QUIET_PCT % of one
# core busy, and each run reports the CPU used by everything else ("other").
#
# Environment (defaults): BUILD (build; relative to the repository or absolute), WORKERS (2), DURATION (5), WARMUP (1), RUNS (2),
# IDLE ("2000 10000"; "" skips the memory measurement), IDLE_HOLD (3), MAX_SECS (420),
# QUIET_WAIT (5), QUIET_BUDGET (60), QUIET_PCT (15),
# START_TIMEOUT (10), OUT (a new /tmp/sluice-bench.* directory: configs, logs, JSON),
# POLICIES ("policies/auth.lua policies/sender_domain.lua"), LUA_DIR (lua),
# SWEEP_WORKERS ("1 2 4"), SWEEP_CONCURRENCY ("1 4 12 32"), SWEEP_DURATION (5),
# SWEEP_WARMUP (1), SWEEP_ARGS (scenario a's loadgen options).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
SLUICE=$BUILD/sluice
LOADGEN=$BUILD/sluice-loadgen
WORKERS=${WORKERS:-2}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
RUNS=${RUNS:-2}
IDLE=${IDLE-"2000 10000"}
IDLE_HOLD=${IDLE_HOLD:-3}
MAX_SECS=${MAX_SECS:-420}
START_TIMEOUT=${START_TIMEOUT:-10}
QUIET_WAIT=${QUIET_WAIT:-5}
QUIET_BUDGET=${QUIET_BUDGET:-60}
QUIET_PCT=${QUIET_PCT:-15}
SWEEP_WORKERS=${SWEEP_WORKERS:-"1 2 4"}
SWEEP_CONCURRENCY=${SWEEP_CONCURRENCY:-"1 4 12 32"}
SWEEP_DURATION=${SWEEP_DURATION:-5}
SWEEP_WARMUP=${SWEEP_WARMUP:-1}
OUT=${OUT:-$(mktemp -d /tmp/sluice-bench.XXXXXX)}
mkdir -p "$OUT"

MODE=main
if [[ -z ${BENCH_LIB:-} ]]; then # bench/breakdown.sh sources this file for its functions
    case ${1:-} in
        "") ;;
        --sweep) MODE=sweep ;;
        --all) MODE=all ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (--sweep, --all, --help)" >&2; exit 2 ;;
    esac
fi

for f in "$SLUICE" "$LOADGEN" certs/dev-ecdsa.crt certs/dev-rsa.crt; do
    if [[ ! -e $f ]]; then
        echo "run.sh: $f is missing; build first (make build, make certs;" \
             "cmake --build build --target sluice-loadgen)" >&2
        exit 1
    fi
done

# Others may rebuild build/ while this runs: every step uses this one snapshot.
mkdir -p "$OUT/bin"
cp "$SLUICE" "$LOADGEN" "$OUT/bin/"
SLUICE=$OUT/bin/sluice
LOADGEN=$OUT/bin/sluice-loadgen
# HEAD, and the uncommitted changes in core/ (their count and a hash of the diff). This is
# the working tree now; the binaries are whatever BUILD holds (see docs/benchmarks.md).
SOURCE_STATE="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
SOURCE_STATE+=" + $(git -C "$ROOT" status --porcelain -- core 2>/dev/null | wc -l) changed files in core/"
SOURCE_STATE+=" (diff $(git -C "$ROOT" diff HEAD -- core 2>/dev/null | sha256sum | cut -c1-12))"
SOURCE_STATE+=", sluice sha256 $(sha256sum "$SLUICE" | cut -c1-12)"

# The user sluice authenticates (sha512-crypt, default 5000 rounds; see bench/conf/users).
USER_DOMAIN=example.org
PASSWORD=bench-secret
FROM=bench@$USER_DOMAIN
# Idle connections come from these sources, away from the TIME_WAIT sockets the
# per-message-connection runs leave on 127.0.0.1 (all of 127.0.0.0/8 is loopback).
IDLE_BIND=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5

T_START=$(date +%s)
CLK_TCK=$(getconf CLK_TCK)
log() { echo "run.sh: $*" >&2; }
elapsed() { echo $(($(date +%s) - T_START)); }
over_budget() { (($(date +%s) - T_START >= MAX_SECS)); }

# ---- processes: only the PIDs started here are ever signalled ----

PIDS=()
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_all() {
    local p
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    PIDS=()
}
forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
trap stop_all EXIT
trap 'stop_all; exit 130' INT TERM

is_listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port below the ephemeral range (where loadgen's own connections come from) that nothing
# listens on. sluice binds with SO_REUSEPORT; builds before 16deec9 silently shared a port
# with another listener, so this check matters when benchmarking those.
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        if ! is_listening "$p" && ! grep -qi ":$(printf '%04X' "$p") " /proc/net/tcp; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# start_sink NAME ARGS...: sets SINK_PID and SINK_PORT (sink picks an ephemeral port).
start_sink() {
    local name=$1 line=
    shift
    "$SLUICE" sink --listen 127.0.0.1:0 --discard "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    for _ in $(seq $((START_TIMEOUT * 10))); do
        line=$(grep -m1 '^sink listening on ' "$OUT/$name.err" || true)
        [[ -n $line ]] && break
        kill -0 "$SINK_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $line ]]; then
        log "$name did not start; see $OUT/$name.err"
        exit 1
    fi
    SINK_PORT=${line##*:}
}

# The policy files the config lists, in order, and the `sluice` Lua module's directory:
# relative to the repository or absolute (bench/policy_cost.sh changes them per variant).
POLICIES=${POLICIES:-"policies/auth.lua policies/sender_domain.lua"}
LUA_DIR=${LUA_DIR:-lua}
abs_path() { if [[ $1 == /* ]]; then echo "$1"; else echo "$ROOT/$1"; fi; }

# write_conf FILE WORKERS SMTPS SUBMISSION SINK
write_conf() {
    local p list=
    for p in $POLICIES; do list+="'$(abs_path "$p")', "; done
    sed -e "s|@WORKERS@|$2|; s|@USERS_DIR@|${USERS_DIR:-$ROOT/bench/conf/users}|" \
        -e "s|@MAX_REUSE@|${MAX_REUSE:-1000}|; s|@UPSTREAM_TLS@|${UPSTREAM_TLS:-'none'}|" \
        -e "s|@SMTPS_PORT@|$3|; s|@SUBMISSION_PORT@|$4|; s|@SINK_PORT@|$5|" \
        -e "s|@POLICIES@|$list|; s|@LUA_DIR@|$(abs_path "$LUA_DIR")|" \
        -e "s|@DOMAIN@|${DOMAIN_CONF:-}|; s|@EXTRA@|${EXTRA_CONF:-}|" \
        -e "s|@CERTS_DIR@|$ROOT/certs|g; s|@ROOT@|$ROOT|g" bench/conf/sluice-bench.lua.in >"$1"
}

# start_sluice NAME: a sluice relaying to the plain sink; sets SLUICE_PID, SMTPS, SUBMISSION.
start_sluice() {
    local name=$1 conf=$OUT/$1.lua
    for _ in 1 2 3; do
        SMTPS=$(free_port) SUBMISSION=$(free_port)
        [[ $SMTPS != "$SUBMISSION" ]] || continue
        write_conf "$conf" "$WORKERS" "$SMTPS" "$SUBMISSION" "$SINK_PLAIN_PORT"
        "$SLUICE" run -c "$conf" >"$OUT/$name.out" 2>"$OUT/$name.err" &
        SLUICE_PID=$!
        PIDS+=("$SLUICE_PID")
        for _ in $(seq $((START_TIMEOUT * 10))); do
            kill -0 "$SLUICE_PID" 2>/dev/null || break
            if is_listening "$SMTPS" && is_listening "$SUBMISSION"; then
                return 0
            fi
            sleep 0.1
        done
        log "sluice did not start on ports $SMTPS/$SUBMISSION; retrying (see $OUT/$name.err)"
        stop_pid "$SLUICE_PID"
        forget_pid "$SLUICE_PID"
    done
    log "sluice would not start; see $OUT/$name.err"
    exit 1
}

# ---- measurements ----

# CPU seconds (user + system) of a process so far
cpu_secs() {
    local s
    s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    awk -v t="$CLK_TCK" '{ printf "%.2f", ($12 + $13) / t }' <<<"$s"
}
# busy CPU seconds of the whole machine (all CPUs): user nice system irq softirq steal
machine_busy() {
    awk -v t="$CLK_TCK" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / t }' /proc/stat
}
# wait_quiet: up to QUIET_WAIT s (QUIET_BUDGET s over the whole run) for a 0.5 s window in
# which the machine is less than QUIET_PCT % of one core busy (our idle servers included).
QUIET_SPENT=0
wait_quiet() {
    local t0 b0 b1 pct waited=0
    t0=$(date +%s)
    while :; do
        b0=$(machine_busy)
        sleep 0.5
        b1=$(machine_busy)
        pct=$(awk -v a="$b0" -v b="$b1" 'BEGIN { printf "%.0f", (b - a) / 0.5 * 100 }')
        ((pct < QUIET_PCT)) && break
        waited=$(($(date +%s) - t0))
        if ((QUIET_SPENT + waited >= QUIET_BUDGET)); then
            log "machine ${pct}% busy; QUIET_BUDGET (${QUIET_BUDGET}s) spent: running anyway"
            break
        elif ((waited >= QUIET_WAIT)); then
            log "machine still ${pct}% busy after ${waited}s; running anyway"
            break
        fi
    done
    QUIET_SPENT=$((QUIET_SPENT + $(date +%s) - t0))
}
# loadgen_cpu PID JSON LOG LOADGEN-ARGS...: one bounded sluice-loadgen run (127.0.0.1,
# DURATION after WARMUP, its JSON into JSON, stderr into LOG) against the sluice PID;
# sets LG_US to PID's CPU (user + system) per message the run counted ("ok"), in us, from
# the end of the warmup (as the messages are counted) to the end, or "-" without messages.
# Runs in the background, so that TERM/INT stop it with everything else.
loadgen_cpu() {
    local pid=$1 json=$2 log=$3 lpid c0 c1
    shift 3
    timeout $((WARMUP + DURATION + 45)) "$LOADGEN" --host 127.0.0.1 --insecure \
        --duration "$DURATION" --warmup "$WARMUP" --timeout 10 --json "$@" >"$json" 2>"$log" &
    lpid=$!
    PIDS+=("$lpid")
    sleep "$WARMUP"
    c0=$(cpu_secs "$pid")
    wait "$lpid" || true
    forget_pid "$lpid"
    c1=$(cpu_secs "$pid")
    LG_US=$(awk -v a="$c0" -v b="$c1" -v n="$(jnum ok "$json")" 'BEGIN {
        if (n > 0) printf "%.1f", (b - a) / n * 1e6; else print "-" }')
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
now() { date +%s.%N; }

# jnum KEY FILE: a top-level number from loadgen's one-line JSON (keys used here are unique)
jnum() { grep -o "\"$1\":[0-9.]*" "$2" 2>/dev/null | head -n 1 | cut -d: -f2 || true; }
# jphase PHASE FILE: the mean ms of one phase ("tls" also names a top-level string, which
# this pattern does not match)
jphase() { grep -o "\"$1\":{\"mean\":[0-9.]*" "$2" 2>/dev/null | head -n 1 | cut -d: -f3 || true; }

# Scenario table: id|label|server|loadgen args. server: sluice-smtps, sluice-submission,
# sink-plain, sink-tls. Every run gets -d DURATION --warmup WARMUP --json.
AUTH="--auth plain --password $PASSWORD --from $FROM"
AUTH_ARGS=(--auth plain --password "$PASSWORD" --from "$FROM")
SCENARIOS=(
    "a|(a) sluice, implicit TLS + AUTH PLAIN, reuse, c=12|sluice-smtps|--tls implicit $AUTH --user $FROM -c 12 --per-conn 0"
    "b|(b) sluice, implicit TLS + AUTH, new connection per message, c=12|sluice-smtps|--tls implicit $AUTH --user $FROM -c 12 --per-conn 1"
    "bR|(b) same, with TLS resumption (--resume)|sluice-smtps|--tls implicit $AUTH --user $FROM -c 12 --per-conn 1 --resume"
    "c|(c) sluice, STARTTLS + AUTH PLAIN, reuse, c=12|sluice-submission|--tls starttls $AUTH --user $FROM -c 12 --per-conn 0"
    "d|(d) sink direct, plain, no AUTH, reuse, c=12 (ceiling)|sink-plain|-c 12 --per-conn 0"
    "dT|(d) sink direct, implicit TLS + AUTH (no hash), reuse, c=12|sink-tls|--tls implicit $AUTH --user $FROM -c 12 --per-conn 0"
    "dTb|(d) sink direct, implicit TLS + AUTH (no hash), new connection per message, c=12|sink-tls|--tls implicit $AUTH --user $FROM -c 12 --per-conn 1"
    "e|(e) sluice, implicit TLS + AUTH, reuse, c=1|sluice-smtps|--tls implicit $AUTH --user $FROM -c 1 --per-conn 0"
    "eb|(e) sluice, implicit TLS + AUTH, new connection per message, c=1|sluice-smtps|--tls implicit $AUTH --user $FROM -c 1 --per-conn 1"
    "ed|(e) sink direct, plain, reuse, c=1|sink-plain|-c 1 --per-conn 0"
    "edT|(e) sink direct, implicit TLS + AUTH, reuse, c=1|sink-tls|--tls implicit $AUTH --user $FROM -c 1 --per-conn 0"
    "edTb|(e) sink direct, implicit TLS + AUTH, new connection per message, c=1|sink-tls|--tls implicit $AUTH --user $FROM -c 1 --per-conn 1"
)
# The cost of the password hash: scenario b (and eb) with other users, once each.
HASH_SCENARIOS=(
    "b1k|(b) as b, user with sha512-crypt rounds=1000|sluice-smtps|--tls implicit $AUTH --user bench1k@$USER_DOMAIN -c 12 --per-conn 1"
    "by|(b) as b, user with yescrypt (sluice passwd default)|sluice-smtps|--tls implicit $AUTH --user benchy@$USER_DOMAIN -c 12 --per-conn 1"
    "eb1k|(e) as eb, sha512-crypt rounds=1000, c=1|sluice-smtps|--tls implicit $AUTH --user bench1k@$USER_DOMAIN -c 1 --per-conn 1"
    "eby|(e) as eb, yescrypt, c=1|sluice-smtps|--tls implicit $AUTH --user benchy@$USER_DOMAIN -c 1 --per-conn 1"
)

server_port() {
    case $1 in
        sluice-smtps) echo "$SMTPS" ;;
        sluice-submission) echo "$SUBMISSION" ;;
        sink-plain) echo "$SINK_PLAIN_PORT" ;;
        sink-tls) echo "$SINK_TLS_PORT" ;;
    esac
}
server_pid() {
    case $1 in
        sluice-*) echo "$SLUICE_PID" ;;
        sink-plain) echo "$SINK_PLAIN_PID" ;;
        sink-tls) echo "$SINK_TLS_PID" ;;
    esac
}

# run_scenario SPEC RUN: one loadgen run; appends "id|run|label|json|sluice%|sink%|lg%".
RESULTS=()
run_scenario() {
    local id label server args run=$2 port json t0 t1 s0 s1 k0 k1 m0 m1
    IFS='|' read -r id label server args <<<"$1"
    port=$(server_port "$server")
    json=$OUT/$id.$run.json
    wait_quiet
    s0=$(cpu_secs "$SLUICE_PID") k0=$(cpu_secs "$(server_pid "${server/sluice-*/sink-plain}")")
    m0=$(machine_busy) t0=$(now)
    # In the background, so that TERM/INT stop everything at once rather than after this run.
    # shellcheck disable=SC2086 # args is a word list on purpose
    timeout $((WARMUP + DURATION + 45)) "$LOADGEN" --host 127.0.0.1 --port "$port" --insecure \
        --duration "$DURATION" --warmup "$WARMUP" --timeout 10 --json $args \
        >"$json" 2>"$OUT/$id.$run.log" &
    local lpid=$!
    PIDS+=("$lpid")
    wait "$lpid" || true
    forget_pid "$lpid"
    t1=$(now) m1=$(machine_busy)
    s1=$(cpu_secs "$SLUICE_PID") k1=$(cpu_secs "$(server_pid "${server/sluice-*/sink-plain}")")
    # CPU % of sluice, the sink, loadgen, and of everything else on the machine (other
    # users' processes, kernel threads) over the run's wall time
    local sl sk lg other
    read -r sl sk lg other < <(awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" \
        -v k0="$k0" -v k1="$k1" -v m0="$m0" -v m1="$m1" \
        -v lu="$(jnum cpu_user_s "$json")" -v ls="$(jnum cpu_sys_s "$json")" 'BEGIN {
            w = t1 - t0; sl = s1 - s0; sk = k1 - k0; lg = lu + ls
            o = (m1 - m0) - sl - sk - lg
            printf "%.0f %.0f %.0f %.0f\n", sl / w * 100, sk / w * 100, lg / w * 100,
                   (o < 0 ? 0 : o) / w * 100 }')
    [[ $server == sluice-* ]] || sl=-
    RESULTS+=("$id|$run|$label|$json|$sl|$sk|$lg|$other")
    log "[$(elapsed)s] $id run $run: $(jnum msg_per_s "$json") msg/s, p50 $(jnum p50 "$json") ms," \
        "p99 $(jnum p99 "$json") ms, failed $(jnum failed "$json");" \
        "CPU% sluice $sl sink $sk loadgen $lg other $other"
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                                       else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# values FIELD ID: one line per run of scenario ID
values() {
    local r id run label json sl sk lg other
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r id run label json sl sk lg other <<<"$r"
        [[ $id == "$2" ]] || continue
        case $1 in
            sluice%) echo "$sl" ;;
            sink%) echo "$sk" ;;
            loadgen%) echo "$lg" ;;
            other%) echo "$other" ;;
            phase:*) jphase "${1#phase:}" "$json" ;;
            *) jnum "$1" "$json" ;;
        esac
    done
}
joined() { values "$1" "$2" | paste -sd/ - | sed 's|/| / |g'; }
med() { values "$1" "$2" | grep -v '^-$' | median; }
mean() { values "$1" "$2" | awk '$1 != "" { s += $1; n++ } END { if (n) printf "%.3f", s / n; else print "-" }'; }

label_of() {
    local s id label rest
    for s in "${SCENARIOS[@]}" "${HASH_SCENARIOS[@]}"; do
        IFS='|' read -r id label rest <<<"$s"
        [[ $id == "$1" ]] && { echo "$label"; return; }
    done
}

# ---- the main benchmark ----

main_bench() {
    local round s id
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    start_sink sink-plain
    SINK_PLAIN_PID=$SINK_PID SINK_PLAIN_PORT=$SINK_PORT
    start_sink sink-tls --tls-cert certs/dev-ecdsa.crt --tls-key certs/dev-ecdsa.key \
        --implicit-tls --auth "$FROM:$PASSWORD"
    SINK_TLS_PID=$SINK_PID SINK_TLS_PORT=$SINK_PORT
    start_sluice sluice
    log "sink plain 127.0.0.1:$SINK_PLAIN_PORT (pid $SINK_PLAIN_PID), sink TLS" \
        "127.0.0.1:$SINK_TLS_PORT (pid $SINK_TLS_PID), sluice smtps $SMTPS submission" \
        "$SUBMISSION (pid $SLUICE_PID, workers $WORKERS); output in $OUT"
    SLUICE_RSS_START=$(rss_kib "$SLUICE_PID")

    for round in $(seq "$RUNS"); do
        for s in "${SCENARIOS[@]}"; do
            if over_budget; then log "MAX_SECS ($MAX_SECS) reached: skipping the rest"; break 2; fi
            run_scenario "$s" "$round"
        done
    done
    for s in "${HASH_SCENARIOS[@]}"; do
        if over_budget; then log "MAX_SECS ($MAX_SECS) reached: skipping the rest"; break; fi
        run_scenario "$s" 1
    done
    SLUICE_RSS_END=$(rss_kib "$SLUICE_PID")
    stop_pid "$SLUICE_PID"
    forget_pid "$SLUICE_PID"

    IDLE_ROWS=()
    local n
    for n in $IDLE; do
        if over_budget; then log "MAX_SECS ($MAX_SECS) reached: skipping idle $n"; break; fi
        idle_mem "$n"
    done
    stop_all
    report
}

# hold_idle N JSON LOG: against the sluice started last (SLUICE_PID, SMTPS), hold N idle
# authenticated TLS connections for IDLE_HOLD s; sets IDLE_BEFORE (VmRSS KiB before) and
# IDLE_HELD (1 s after all were open; empty when they never were), returns once they QUIT.
hold_idle() {
    local n=$1 json=$2 log=$3 lpid
    sleep 0.5
    IDLE_BEFORE=$(rss_kib "$SLUICE_PID") IDLE_HELD=
    timeout $((IDLE_HOLD + 90)) "$LOADGEN" --host 127.0.0.1 --port "$SMTPS" --insecure \
        --tls implicit "${AUTH_ARGS[@]}" --user "$FROM" --idle "$n" -c 16 --bind "$IDLE_BIND" \
        --duration "$IDLE_HOLD" --timeout 60 --json >"$json" 2>"$log" &
    lpid=$!
    PIDS+=("$lpid")
    for _ in $(seq 900); do # up to 90 s for the setup
        if grep -q 'connections open after' "$log"; then
            sleep 1
            IDLE_HELD=$(rss_kib "$SLUICE_PID")
            break
        fi
        kill -0 "$lpid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$lpid" 2>/dev/null || true
    forget_pid "$lpid"
}

# idle_mem N: a fresh sluice; VmRSS before, while N idle authenticated TLS connections are
# held, and after they QUIT.
idle_mem() {
    local n=$1 log=$OUT/idle-$1.log json=$OUT/idle-$1.json before held after open
    if (($(ulimit -n) < n + 200)); then
        IDLE_ROWS+=("| $n | - | - | - | - | - | skipped: ulimit -n is $(ulimit -n) |")
        return
    fi
    wait_quiet
    start_sluice "sluice-idle-$n"
    hold_idle "$n" "$json" "$log"
    before=$IDLE_BEFORE held=$IDLE_HELD
    sleep 0.5
    after=$(rss_kib "$SLUICE_PID")
    open=$(jnum open "$json")
    stop_pid "$SLUICE_PID"
    forget_pid "$SLUICE_PID"
    local per=- setup=-
    if [[ -n $held && -n $open && $open -gt 0 ]]; then
        per=$(awk -v a="$before" -v b="$held" -v n="$open" 'BEGIN { printf "%.1f", (b - a) / n }')
    fi
    setup=$(jnum setup_s "$json")
    IDLE_ROWS+=("| $n | ${open:--} | ${setup:--} | $before | ${held:--} | $after | $per |")
    log "[$(elapsed)s] idle $n: opened ${open:--} in ${setup:--} s, VmRSS $before -> ${held:--}" \
        "-> $after KiB: $per KiB per connection"
}

report() {
    local id r
    echo "## sluice benchmark: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Source: $SOURCE_STATE; binaries copied to $OUT/bin before the first run."
    echo
    echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')," \
         "kernel $(uname -r). sluice workers = $WORKERS; each run ${WARMUP} s warmup +" \
         "${DURATION} s measured; 2 KB messages; $RUNS runs per main scenario (median shown," \
         "each run in the detail table). Output: $OUT"
    echo
    echo "### Throughput and latency (median of runs)"
    echo
    echo "| id | scenario | msg/s (each run) | msg/s median | p50 ms | p99 ms | p99.9 ms | max ms | failed | CPU % sluice / sink / loadgen / other |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    local ids=() s rest
    for s in "${SCENARIOS[@]}" "${HASH_SCENARIOS[@]}"; do
        IFS='|' read -r id rest <<<"$s"
        [[ -n $(values msg_per_s "$id") ]] && ids+=("$id")
    done
    for id in "${ids[@]}"; do
        local maxv failed
        maxv=$(values max "$id" | sort -g | tail -n 1)
        failed=$(values failed "$id" | awk '{ s += $1 } END { print s + 0 }')
        echo "| $id | $(label_of "$id") | $(joined msg_per_s "$id") | $(med msg_per_s "$id") |" \
             "$(med p50 "$id") | $(med p99 "$id") | $(med p999 "$id") | $maxv | $failed |" \
             "$(med sluice% "$id") / $(med sink% "$id") / $(med loadgen% "$id") / $(med other% "$id") |"
    done
    echo
    echo "CPU % is the process's CPU time over the run's wall time (warmup included; 100 % = one"
    echo "core, $(nproc) cores in all). For sink-direct rows the sink column is the sink under test."
    echo "\"other\" is the rest of the machine's busy time in that interval (/proc/stat): other"
    echo "users' processes, kernel threads; well above a few % means the run was disturbed."
    echo
    echo "### Where the time of one message goes (mean ms per phase, mean over runs)"
    echo
    echo "New connection per message (--per-conn 1): the latency of a message is connect + tls +"
    echo "greeting + ehlo + auth + transaction."
    echo
    echo "| phase | eb: sluice c=1 | edTb: sink TLS c=1 | b: sluice c=12 | dTb: sink TLS c=12 | bR: sluice c=12 resumed |"
    echo "|---|---:|---:|---:|---:|---:|"
    local p
    for p in connect tls greeting ehlo auth transaction; do
        echo "| $p | $(mean "phase:$p" eb) | $(mean "phase:$p" edTb) | $(mean "phase:$p" b) |" \
             "$(mean "phase:$p" dTb) | $(mean "phase:$p" bR) |"
    done
    echo "| latency p50 (whole message) | $(med p50 eb) | $(med p50 edTb) | $(med p50 b) |" \
         "$(med p50 dTb) | $(med p50 bR) |"
    echo
    echo "The password hash (AUTH phase, new connection per message):"
    echo
    echo "| user's hash | auth ms, c=1 | auth ms, c=12 | msg/s, c=12 |"
    echo "|---|---:|---:|---:|"
    echo "| sha512-crypt rounds=1000 | $(mean phase:auth eb1k) | $(mean phase:auth b1k) | $(med msg_per_s b1k) |"
    echo "| sha512-crypt rounds=5000 (default) | $(mean phase:auth eb) | $(mean phase:auth b) | $(med msg_per_s b) |"
    echo "| yescrypt (default) | $(mean phase:auth eby) | $(mean phase:auth by) | $(med msg_per_s by) |"
    echo "| none (sink's AUTH, no hash) | $(mean phase:auth edTb) | $(mean phase:auth dTb) | $(med msg_per_s dTb) |"
    echo
    echo "The upstream's share of a transaction (connection reused, c=1, mean transaction ms):"
    echo
    echo "| path | transaction ms | p50 ms |"
    echo "|---|---:|---:|"
    echo "| e: loadgen -TLS-> sluice -> sink | $(mean phase:transaction e) | $(med p50 e) |"
    echo "| edT: loadgen -TLS-> sink | $(mean phase:transaction edT) | $(med p50 edT) |"
    echo "| ed: loadgen -> sink (plain) | $(mean phase:transaction ed) | $(med p50 ed) |"
    echo
    if ((${#IDLE_ROWS[@]} > 0)); then
        echo "### Memory per idle connection (implicit TLS, authenticated, fresh sluice each)"
        echo
        echo "| connections | opened | setup s | VmRSS before KiB | VmRSS held KiB | VmRSS after QUIT KiB | KiB per connection |"
        echo "|---:|---:|---:|---:|---:|---:|---:|"
        printf '%s\n' "${IDLE_ROWS[@]}"
        echo
    fi
    echo "sluice VmRSS during the load runs: ${SLUICE_RSS_START:-?} KiB at start, ${SLUICE_RSS_END:-?} KiB at the end."
    echo
    echo "### Every run"
    echo
    echo "| id | run | msg/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | ok | failed | TLS handshakes (resumed) | CPU % sluice / sink / loadgen / other |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    local run label json sl sk lg other
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r id run label json sl sk lg other <<<"$r"
        echo "| $id | $run | $(jnum msg_per_s "$json") | $(jnum p50 "$json") | $(jnum p90 "$json") |" \
             "$(jnum p99 "$json") | $(jnum p999 "$json") | $(jnum max "$json") | $(jnum ok "$json") |" \
             "$(jnum failed "$json") | $(jnum tls_handshakes "$json") ($(jnum tls_resumed "$json")) |" \
             "$sl / $sk / $lg / $other |"
    done
    echo
    echo "Total time: $(elapsed) s, of which ${QUIET_SPENT} s waiting for a quiet machine."
}

# ---- the sweep: bench/sweep.sh with one config per worker count ----

sweep_bench() {
    local w port
    start_sink sink-sweep
    SINK_PLAIN_PID=$SINK_PID SINK_PLAIN_PORT=$SINK_PORT
    port=$(free_port)
    for w in $SWEEP_WORKERS; do
        write_conf "$OUT/sweep-$w.lua" "$w" "$port" "$(free_port)" "$SINK_PLAIN_PORT"
    done
    log "sweep: sink pid $SINK_PLAIN_PID port $SINK_PLAIN_PORT; sluice on $port"
    local args=${SWEEP_ARGS:-"--tls implicit --insecure $AUTH --user $FROM --per-conn 0"}
    echo "### Sweep: workers x concurrency"
    echo
    local start="$SLUICE run -c $OUT/sweep-{WORKERS}.lua" sweep_out=$OUT/sweep
    # shellcheck disable=SC2086 # args is a word list on purpose
    SLUICE_START=$start PORT=$port WORKERS=$SWEEP_WORKERS CONCURRENCY=$SWEEP_CONCURRENCY \
        DURATION=$SWEEP_DURATION WARMUP=$SWEEP_WARMUP LOADGEN=$LOADGEN OUT=$sweep_out \
        bench/sweep.sh $args
    echo
    stop_pid "$SINK_PLAIN_PID"
    forget_pid "$SINK_PLAIN_PID"
}

[[ -z ${BENCH_LIB:-} ]] || return 0
case $MODE in
    main) main_bench ;;
    sweep) sweep_bench ;;
    all) main_bench; echo; sweep_bench ;;
esac
