#!/usr/bin/env bash
# bench/policy_cost.sh: what the Lua policies cost, as an A/B of sluice configurations run
# side by side (docs/benchmarks.md "Policy engine cost").
#
# Starts one plain `sluice sink --discard` and one sluice per variant (all at once, each
# with the bench configuration, WORKERS workers, its own free ports), then for RUNS rounds
# runs every scenario against every variant, the order of the variants rotated each round
# so that drift and the machine's other load hit all alike. A variant is
#   LABEL:SET[:ROOT[:BUILD]]
# SET is which policies the configuration lists (bench/policy_sets.sh: none, shipped,
# noop4, limits, all4); limits-redis is limits with the zones limits, blocks and denylist
# in Redis: a redis-server this script starts (loopback, no persistence), shared by every
# such variant; its commands per message are printed after the tables. all4 writes its
# audit log into the output directory.
# ROOT (default: this repository) is the tree whose policies/ and lua/ the variant uses and
# BUILD (default: $BUILD) the build directory of its sluice, so that one run compares two
# source states. The first variant is the reference of the ratios.
#
# Prints markdown: per scenario and variant, msg/s of every run, the median, the median
# over rounds of msg/s relative to the reference in the same round, and sluice's CPU per
# message (CPU time of the sluice process during the measured part of the run over the
# messages it relayed; all of it, and user time alone, where the policy engine's work is)
# with the median difference to the reference in the same round. Progress goes to stderr.
#
# Environment (defaults): VARIANTS ("none:none shipped:shipped noop4:noop4"), IDS ("a c":
# ids of bench/run.sh's scenarios with a reused connection), RUNS (3), DURATION (5),
# WARMUP (1), and bench/run.sh's BUILD, WORKERS, OUT, QUIET_*, START_TIMEOUT.
# Bounded like run.sh: each loadgen run has a duration and a `timeout`, and only the
# processes started here are stopped, by PID.
set -euo pipefail
BENCH_LIB=1
RUNS=${RUNS:-3} # before run.sh, whose own default (2) would win otherwise
# shellcheck source=bench/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"
VARIANTS=${VARIANTS:-"none:none shipped:shipped noop4:noop4"}
SCENARIO_IDS=${IDS:-"a c"}

# shellcheck source=bench/policy_sets.sh
source "$(dirname "${BASH_SOURCE[0]}")/policy_sets.sh"

scenario_of() { # the SCENARIOS line of run.sh for an id
    local s id rest
    for s in "${SCENARIOS[@]}"; do
        IFS='|' read -r id rest <<<"$s"
        [[ $id == "$1" ]] && { echo "$s"; return; }
    done
    log "unknown scenario $1"
    exit 2
}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
start_sink sink-plain
SINK_PLAIN_PID=$SINK_PID SINK_PLAIN_PORT=$SINK_PORT

REDIS_PORT=
start_redis() { # a redis-server for the limits-redis variants, once
    [[ -z $REDIS_PORT ]] || return 0
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$OUT" --logfile "$OUT/redis.log" >/dev/null 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 50); do
        [[ $(redis-cli -p "$REDIS_PORT" PING 2>/dev/null) == PONG ]] && return 0
        sleep 0.1
    done
    log "redis-server did not start; see $OUT/redis.log"
    exit 1
}
redis_commands() { # commands the bench's redis-server has processed so far
    redis-cli -p "$REDIS_PORT" INFO stats | awk -F: '/^total_commands_processed/ { print $2 + 0 }'
}
declare -A REDIS_PER_MSG

# One sluice per variant, each from its own copy of its binary.
declare -A V_PID V_SMTPS V_SUB V_DESC V_SET
LABELS=()
for v in $VARIANTS; do
    IFS=: read -r label set vroot vbuild <<<"$v"
    vroot=${vroot:-$ROOT} vbuild=${vbuild:-$BUILD}
    cp "$vbuild/sluice" "$OUT/bin/sluice-$label"
    SLUICE=$OUT/bin/sluice-$label
    EXTRA_CONF=
    if [[ $set == all4 ]]; then
        EXTRA_CONF="audit_log = '$OUT/audit-$label.log',"
    elif [[ $set == limits-redis ]]; then
        start_redis
        EXTRA_CONF="redis = { address = '127.0.0.1', port = $REDIS_PORT }, zones = { limits = { backend = 'redis' }, blocks = { backend = 'redis' }, denylist = { backend = 'redis' } },"
    fi
    V_SET[$label]=$set
    POLICIES=$(policy_set "$set" "$vroot") LUA_DIR=$vroot/lua EXTRA_CONF=$EXTRA_CONF \
        start_sluice "sluice-$label"
    V_PID[$label]=$SLUICE_PID V_SMTPS[$label]=$SMTPS V_SUB[$label]=$SUBMISSION
    V_DESC[$label]="$set policies from $vroot, sluice from $vbuild (sha256 $(sha256sum "$SLUICE" | cut -c1-12))"
    LABELS+=("$label")
    log "variant $label: pid $SLUICE_PID smtps $SMTPS submission $SUBMISSION; ${V_DESC[$label]}"
done

user_secs() { # user CPU seconds of a process so far (the policy engine's work is all there)
    local st
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    awk -v t="$CLK_TCK" '{ printf "%.2f", $12 / t }' <<<"$st"
}

# run_one SCENARIO-ID LABEL ROUND: appends
# "scenario|label|round|msg/s|CPU us/msg|user CPU us/msg|failed|other %"
ROWS=()
run_one() {
    local id label server args json c0 c1 u0 u1 m0 m1 t0 t1 ok port pid=${V_PID[$2]}
    IFS='|' read -r id label server args <<<"$(scenario_of "$1")"
    case $server in
        sluice-smtps) port=${V_SMTPS[$2]} ;;
        sluice-submission) port=${V_SUB[$2]} ;;
        *) log "scenario $1 is not a sluice scenario"; exit 2 ;;
    esac
    json=$OUT/$1.$2.$3.json
    wait_quiet
    # shellcheck disable=SC2086 # args is a word list on purpose
    timeout $((WARMUP + DURATION + 45)) "$LOADGEN" --host 127.0.0.1 --port "$port" --insecure \
        --duration "$DURATION" --warmup "$WARMUP" --timeout 10 --json $args \
        >"$json" 2>"$OUT/$1.$2.$3.log" &
    local lpid=$!
    PIDS+=("$lpid")
    local r0=0 r1=0
    sleep "$WARMUP" # sluice's CPU is counted from the end of the warmup
    c0=$(cpu_secs "$pid") u0=$(user_secs "$pid") m0=$(machine_busy) t0=$(now)
    [[ ${V_SET[$2]} != limits-redis ]] || r0=$(redis_commands)
    wait "$lpid" || true
    forget_pid "$lpid"
    c1=$(cpu_secs "$pid") u1=$(user_secs "$pid") m1=$(machine_busy) t1=$(now)
    [[ ${V_SET[$2]} != limits-redis ]] || r1=$(redis_commands)
    ok=$(jnum ok "$json")
    if [[ ${V_SET[$2]} == limits-redis ]]; then # Redis commands per message measured
        REDIS_PER_MSG[$1|$2|$3]=$(awk -v a="$r0" -v b="$r1" -v n="${ok:-0}" \
            'BEGIN { printf "%.2f", (n > 0 ? (b - a) / n : 0) }')
    fi
    local us uus other
    read -r us uus other < <(awk -v c0="$c0" -v c1="$c1" -v u0="$u0" -v u1="$u1" \
        -v m0="$m0" -v m1="$m1" -v t0="$t0" -v t1="$t1" -v n="${ok:-0}" \
        -v lu="$(jnum cpu_user_s "$json")" -v ls="$(jnum cpu_sys_s "$json")" -v w="$WARMUP" \
        -v d="$DURATION" -v sk="$(cpu_secs "$SINK_PLAIN_PID")" 'BEGIN {
            if (n == 0) { print "- - -"; exit }
            # other: the machine minus sluice and the load generator (its CPU scaled to the
            # measured part) and the sink (not sampled per run: counted with "other")
            o = (m1 - m0) - (c1 - c0) - (lu + ls) * d / (w + d)
            printf "%.1f %.1f %.0f\n", (c1 - c0) / n * 1e6, (u1 - u0) / n * 1e6,
                   (o < 0 ? 0 : o) / (t1 - t0) * 100 }')
    ROWS+=("$1|$2|$3|$(jnum msg_per_s "$json")|$us|$uus|$(jnum failed "$json")|$other")
    log "[$(elapsed)s] $1 $2 round $3: $(jnum msg_per_s "$json") msg/s, sluice $us us CPU/msg" \
        "($uus user), failed $(jnum failed "$json"), other+sink ${other}%"
}

for round in $(seq "$RUNS"); do
    n=${#LABELS[@]}
    for id in $SCENARIO_IDS; do
        for i in $(seq 0 $((n - 1))); do
            run_one "$id" "${LABELS[$(((i + round - 1) % n))]}" "$round"
        done
    done
done

col() { # col SCENARIO LABEL FIELD: one value per round. FIELD: 3 msg/s, 4 CPU us/msg,
    # 5 user CPU us/msg, 6 failed, 7 other %
    local r
    for r in "${ROWS[@]}"; do
        IFS='|' read -r -a f <<<"$r"
        if [[ ${f[0]} == "$1" && ${f[1]} == "$2" ]]; then echo "${f[$3]}"; fi
    done
}
each() { col "$@" | paste -sd/ - | sed 's|/| / |g'; }
ratio_rounds() { # ratio_rounds SCENARIO LABEL REF FIELD: value / reference, per round
    paste <(col "$1" "$2" "$4") <(col "$1" "$3" "$4") | awk '$2 > 0 { printf "%.4f\n", $1 / $2 }'
}
diff_rounds() { # diff_rounds SCENARIO LABEL REF FIELD: value - reference, per round
    paste <(col "$1" "$2" "$4") <(col "$1" "$3" "$4") | awk '{ printf "%.2f\n", $1 - $2 }'
}

REF=${LABELS[0]}
echo "## Policy engine cost: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Source: $SOURCE_STATE. $RUNS rounds, variants rotated each round; each run ${WARMUP} s"
echo "warmup + ${DURATION} s measured, 2 KB messages, connection reused, c=12, WORKERS=$WORKERS."
echo "Output: $OUT"
echo
for label in "${LABELS[@]}"; do echo "- $label: ${V_DESC[$label]}"; done
echo
echo "\"vs $REF\" and \"minus $REF\" are medians over the rounds of the difference to $REF in the"
echo "same round. CPU is sluice's (user + system, and user alone) from the end of the warmup"
echo "to the end of the run, over the messages of the run. \"other\" is the machine's busy time"
echo "minus sluice and the load generator (the sink and everyone else), in % of one core."
echo
for id in $SCENARIO_IDS; do
    echo "### $(IFS='|' read -r _ l _ <<<"$(scenario_of "$id")"; echo "$l")"
    echo
    echo "| variant | msg/s (each round) | median | vs $REF | CPU us/msg (each round) | median | minus $REF | user CPU us/msg (each round) | median | minus $REF | failed | other % |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for label in "${LABELS[@]}"; do
        r=$(ratio_rounds "$id" "$label" "$REF" 3 | median)
        echo "| $label | $(each "$id" "$label" 3) | $(col "$id" "$label" 3 | median) |" \
             "$(awk -v r="$r" 'BEGIN { printf "%+.1f %%", (r - 1) * 100 }') |" \
             "$(each "$id" "$label" 4) | $(col "$id" "$label" 4 | median) |" \
             "$(diff_rounds "$id" "$label" "$REF" 4 | median | awk '{ printf "%+.1f", $1 }') |" \
             "$(each "$id" "$label" 5) | $(col "$id" "$label" 5 | median) |" \
             "$(diff_rounds "$id" "$label" "$REF" 5 | median | awk '{ printf "%+.1f", $1 }') |" \
             "$(col "$id" "$label" 6 | awk '{ s += $1 } END { print s + 0 }') |" \
             "$(each "$id" "$label" 7) |"
    done
    echo
done
for key in $(printf '%s\n' "${!REDIS_PER_MSG[@]}" | sort); do
    echo "- Redis commands per message, $key (scenario|variant|round): ${REDIS_PER_MSG[$key]}"
done
stop_all
log "done in $(elapsed) s; files in $OUT"
