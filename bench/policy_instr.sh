#!/usr/bin/env bash
# bench/policy_instr.sh: the policy engine's cost in instructions, which unlike time does
# not depend on what else the machine runs (docs/benchmarks.md "Policy engine cost").
#
# For each variant (as bench/policy_cost.sh: LABEL:SET[:ROOT[:BUILD[:FLAG]]], SET one of
# bench/policy_sets.sh's) it starts sluice under valgrind's callgrind, with the bench configuration and a
# plain sink, sends N messages over reused connections (implicit TLS + AUTH PLAIN, c=4),
# stops sluice and reads the profile: instructions per message in the worker threads, in
# all hook calls (inclusive cost of core/smtp/smtp_hook.c's seam: smtp_hook_mail_from,
# smtp_hook_rcpt, smtp_hook_data, smtp_hook_relayed, ...; hook_* in trees before the
# rename), and in buf_reserve (whose realloc copies vary a lot with the heap's layout and
# so swamp small differences in the worker total).
# FLAG, when given, is one more sluice-loadgen flag for that variant (--dsn: RFC 3461
# parameters on every MAIL and RCPT; docs/benchmarks.md "DSN parameters").
# Prints a markdown table. Needs valgrind (callgrind_annotate). About 30 s per variant.
#
# Environment (defaults): VARIANTS ("none:none shipped:shipped noop4:noop4"), N (2000),
# PER_CONN (0: connections reused; 1: a new connection, TLS handshake and AUTH per
# message), RESUME ("": full handshakes; 1: sluice-loadgen --resume), TOP (0: with a
# number, the heaviest functions of each profile, inclusive, after the table),
# and bench/run.sh's BUILD, OUT, START_TIMEOUT (raised to 60: valgrind starts slowly).
set -euo pipefail
BENCH_LIB=1
START_TIMEOUT=${START_TIMEOUT:-60}
# shellcheck source=bench/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"
VARIANTS=${VARIANTS:-"none:none shipped:shipped noop4:noop4"}
N=${N:-2000}
PER_CONN=${PER_CONN:-0}
RESUME=${RESUME:-}
TOP=${TOP:-0}
WORKERS=1 # one worker thread: the profile's worker total is that thread's

for tool in valgrind callgrind_annotate; do
    command -v "$tool" >/dev/null || { log "$tool is needed (apt-get install valgrind)"; exit 1; }
done

# shellcheck source=bench/policy_sets.sh
source "$(dirname "${BASH_SOURCE[0]}")/policy_sets.sh"

# inclusive Ir of the functions matching a regex, summed, from a callgrind profile
ir_of() {
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
        awk -v re="$2" 'match($0, /:[A-Za-z0-9_.]+ \[/) {
            fn = substr($0, RSTART + 1, RLENGTH - 3)
            if (fn ~ re) { gsub(",", "", $1); s += $1 } } END { print s + 0 }'
}

start_sink sink-plain
SINK_PLAIN_PID=$SINK_PID SINK_PLAIN_PORT=$SINK_PORT
# sluice drops privileges to cfg->user after binding: callgrind's output files must be
# writable by that user when they are written at exit.
mkdir -p "$OUT/cg"
chmod 1777 "$OUT" "$OUT/cg"
ROWS=()
PROFS=()
for v in $VARIANTS; do
    IFS=: read -r label set vroot vbuild vflag <<<"$v"
    vroot=${vroot:-$ROOT} vbuild=${vbuild:-$BUILD}
    cp "$vbuild/sluice" "$OUT/bin/sluice-$label"
    # One profile per process (%p): sluice forks its privileged file reader before it
    # drops privileges. The daemon's is the biggest.
    printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s %s "$@"\n' \
        "$OUT/cg/$label.%p.out" "$OUT/bin/sluice-$label" >"$OUT/bin/cg-$label"
    chmod +x "$OUT/bin/cg-$label"
    SLUICE=$OUT/bin/cg-$label
    EXTRA_CONF=
    [[ $set != all4 ]] || EXTRA_CONF="audit_log = '$OUT/audit-$label.log',"
    POLICIES=$(policy_set "$set" "$vroot") LUA_DIR=$vroot/lua EXTRA_CONF=$EXTRA_CONF \
        start_sluice "sluice-$label"
    # valgrind made the profiles at start, as root, mode 0600: the daemon writes its own at
    # exit as the service user (conf `user`, default sluice)
    [ "$(id -u)" -ne 0 ] || chown sluice "$OUT/cg/$label".*.out 2>/dev/null || true
    timeout 900 "$LOADGEN" --host 127.0.0.1 --port "$SMTPS" --insecure --tls implicit \
        "${AUTH_ARGS[@]}" --user "$FROM" -c 4 --per-conn "$PER_CONN" ${RESUME:+--resume} ${vflag:+"$vflag"} \
        -n "$N" --timeout 60 --json \
        >"$OUT/$label.json" 2>"$OUT/$label.log" || true
    stop_pid "$SLUICE_PID"
    forget_pid "$SLUICE_PID"
    prof=$(ls -S "$OUT/cg/$label".*.out | head -n 1)
    ok=$(jnum ok "$OUT/$label.json")
    worker=$(ir_of "$prof" '^worker_main$')
    hooks=$(ir_of "$prof" '^(smtp_)?hook_(connect|helo|auth|mail_from|rcpt|data|auth_result|relayed|session_gone)$')
    bufr=$(ir_of "$prof" '^buf_reserve$')
    ROWS+=("$label|$set|$ok|$worker|$hooks|$bufr")
    PROFS+=("$label|$prof")
    log "$label: $ok messages; Ir worker $worker, hooks $hooks, buf_reserve $bufr"
done
stop_all

echo "## Policy engine cost in instructions: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
if [[ $PER_CONN == 0 ]]; then
    conns="connections reused; the 4 AUTHs are in the totals"
else
    conns="a new connection every $PER_CONN message(s)${RESUME:+, TLS resumed (--resume)}"
fi
echo "Source: $SOURCE_STATE. sluice under callgrind, 1 worker, $N messages (2 KB, implicit TLS +"
echo "AUTH PLAIN, c=4, $conns). Output: $OUT"
echo
echo "| variant | policies | messages | worker Ir/msg | worker minus buf_reserve Ir/msg | in hook calls Ir/msg |"
echo "|---|---|---:|---:|---:|---:|"
for r in "${ROWS[@]}"; do
    IFS='|' read -r label set ok worker hooks bufr <<<"$r"
    awk -v l="$label" -v s="$set" -v n="$ok" -v w="$worker" -v h="$hooks" -v b="$bufr" 'BEGIN {
        if (n == 0) { printf "| %s | %s | 0 | - | - | - |\n", l, s; exit }
        printf "| %s | %s | %d | %.0f | %.0f | %.0f |\n", l, s, n, w / n, (w - b) / n, h / n }'
done
echo
if [[ $TOP != 0 ]]; then
    for p in "${PROFS[@]}"; do
        IFS='|' read -r label prof <<<"$p"
        echo "Heaviest functions of $label, inclusive Ir per message:"
        echo
        echo '```'
        callgrind_annotate --inclusive=yes --threshold=100 "$prof" 2>/dev/null |
            awk -v n="$(jnum ok "$OUT/$label.json")" -v top="$TOP" '
                match($0, /:[A-Za-z0-9_.]+ \[/) && k < top && n > 0 {
                    ir = $1; gsub(",", "", ir)
                    printf "%12.0f  %s\n", ir / n, substr($0, RSTART + 1, RLENGTH - 3); k++ }'
        echo '```'
        echo
    done
fi
