#!/usr/bin/env bash
# bench/idle_mem.sh: memory per idle authenticated TLS connection, and whether it goes back
# to the system when the connections close, builds side by side (docs/benchmarks.md
# "Memory per idle connection").
#
# For each round, and each variant in turn (the order rotated each round), a fresh sluice
# from the variant's build with the bench configuration (bench/run.sh's, WORKERS workers,
# relaying to one plain `sluice sink --discard`); then `sluice-loadgen --idle N` opens N
# connections (implicit TLS, EHLO, AUTH PLAIN) from 127.0.0.2-5, holds them IDLE_HOLD s and
# QUITs. sluice's VmRSS (/proc/PID/status) is read before, while they are held (1 s after
# the load generator reports all open), and after they closed: 0.5 s and AFTER_SECS s
# after the load generator exited. A variant is
#   LABEL[:BUILD]
# BUILD (default: $BUILD) is the build directory of its sluice; every variant uses this
# tree's policies, lua/ and bench configuration. The first variant is the reference.
#
# Prints a markdown table (one row per variant and round, then the medians); progress on
# stderr. Bounded: the load generator has --duration and --timeout and a `timeout` guard;
# each wait below is a bounded loop; only the processes started here are stopped, by PID.
#
# Environment (defaults): VARIANTS ("this:$BUILD"), IDLE (10000), ROUNDS (2), IDLE_HOLD (3),
# AFTER_SECS (3), and bench/run.sh's BUILD, WORKERS, OUT, QUIET_*, START_TIMEOUT.
# Needs `ulimit -n` of IDLE + 200 (the hard limit is taken).
set -euo pipefail
N=${IDLE:-10000} # before run.sh sets its own default
BENCH_LIB=1
# shellcheck source=bench/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"
VARIANTS=${VARIANTS:-"this:$BUILD"}
[[ $N =~ ^[0-9]+$ ]] || { log "IDLE must be one number here"; exit 2; }
ROUNDS=${ROUNDS:-2}
AFTER_SECS=${AFTER_SECS:-3}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < N + 200)); then
    log "ulimit -n is $(ulimit -n): too low for $N connections"
    exit 1
fi
start_sink sink-plain
SINK_PLAIN_PID=$SINK_PID SINK_PLAIN_PORT=$SINK_PORT

declare -A V_BIN V_DESC
LABELS=()
for v in $VARIANTS; do
    IFS=: read -r label vbuild <<<"$v"
    vbuild=${vbuild:-$BUILD}
    [[ $vbuild == /* ]] || vbuild=$ROOT/$vbuild
    cp "$vbuild/sluice" "$OUT/bin/sluice-$label"
    V_BIN[$label]=$OUT/bin/sluice-$label
    V_DESC[$label]="sluice from $vbuild (sha256 $(sha256sum "$vbuild/sluice" | cut -c1-12))"
    LABELS+=("$label")
done

# idle_one LABEL ROUND: appends "label|round|opened|setup s|before|held|after 0.5 s|after"
ROWS=()
idle_one() {
    local label=$1 round=$2 json=$OUT/idle-$1-$2.json log=$OUT/idle-$1-$2.log
    local before held= after1 after2 open setup
    wait_quiet
    SLUICE=${V_BIN[$label]} start_sluice "sluice-$label-$round"
    hold_idle "$N" "$json" "$log"
    before=$IDLE_BEFORE held=$IDLE_HELD
    sleep 0.5
    after1=$(rss_kib "$SLUICE_PID")
    sleep "$(awk -v s="$AFTER_SECS" 'BEGIN { print (s > 0.5 ? s - 0.5 : 0) }')"
    after2=$(rss_kib "$SLUICE_PID")
    open=$(jnum open "$json") setup=$(jnum setup_s "$json")
    stop_pid "$SLUICE_PID"
    forget_pid "$SLUICE_PID"
    ROWS+=("$label|$round|${open:--}|${setup:--}|$before|${held:--}|$after1|$after2")
    log "[$(elapsed)s] $label round $round: opened ${open:--} in ${setup:--} s, VmRSS" \
        "$before -> ${held:--} -> $after1 -> $after2 KiB"
}

for round in $(seq "$ROUNDS"); do
    n=${#LABELS[@]}
    for i in $(seq 0 $((n - 1))); do
        idle_one "${LABELS[$(((i + round - 1) % n))]}" "$round"
    done
done
stop_all

per_conn() { # per_conn BEFORE HELD OPEN
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
        if (b == "-" || n == "-" || n == 0) print "-"; else printf "%.1f", (b - a) / n }'
}
echo "## Memory per idle connection: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Source: $SOURCE_STATE. $N idle connections (implicit TLS, EHLO, AUTH PLAIN), held"
echo "${IDLE_HOLD} s; WORKERS=$WORKERS; $ROUNDS rounds, variants rotated. Output: $OUT"
echo
for label in "${LABELS[@]}"; do echo "- $label: ${V_DESC[$label]}"; done
echo
echo "| variant | round | opened | setup s | VmRSS before KiB | held KiB | after 0.5 s KiB | after ${AFTER_SECS} s KiB | KiB per connection | returned after ${AFTER_SECS} s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do
    IFS='|' read -r label round open setup before held after1 after2 <<<"$r"
    ret=$(awk -v a="$before" -v b="$held" -v c="$after2" 'BEGIN {
        if (b == "-" || b <= a) print "-"; else printf "%.0f %%", (b - c) / (b - a) * 100 }')
    echo "| $label | $round | $open | $setup | $before | $held | $after1 | $after2 |" \
         "$(per_conn "$before" "$held" "$open") | $ret |"
done
echo
echo "\"returned\": the share of what the connections added (held - before) that was gone"
echo "from VmRSS ${AFTER_SECS} s after they closed."
