#!/usr/bin/env bash
# bench/upstream_tls.sh: what a TLS upstream costs sluice per message, with and without
# session resumption (issue 12 item 6; docs/benchmarks.md "TLS upstream"). Builds side by
# side: one sluice per variant, all started at once, relaying to one `sluice sink --discard
# --implicit-tls` with the dev ECDSA certificate, verified against the dev CA (tls_name
# localhost). Clients: implicit TLS, AUTH PLAIN (cached), reused connections, c=12, 2 KB.
# Upstream connections:
#   new   pool max_reuse = 1: a new upstream connection, so a TLS handshake, per message
#         (the worst case: what a pool that cannot keep connections pays); a build with
#         resumption resumes all but the first of each worker;
#   pool  the default max_reuse (1000): one handshake per 1000 messages per connection.
#   VARIANTS="LABEL:BUILD ..." (default "base:$BASE_BUILD new:$BUILD"; BASE_BUILD must be
#   set, e.g. a RelWithDebInfo build of the previous main)
# RUNS interleaved rounds (order rotated); prints per mode and variant the medians of msg/s,
# p99 and sluice's CPU per message, and the upstream handshakes resumed (from upstream.ready
# lines: the log level is 'info' here, the same for every variant).
# Bounded like bench/run.sh (DURATION, WARMUP, RUNS, MAX_SECS); stops only its processes.
set -euo pipefail
BENCH_LIB=1
# shellcheck source=bench/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"
RUNS=${RUNS:-3}
MODES=${MODES:-"new pool"}
[[ -n ${VARIANTS:-} || -n ${BASE_BUILD:-} ]] || { log "set BASE_BUILD or VARIANTS"; exit 2; }
VARIANTS=${VARIANTS:-"base:$BASE_BUILD new:$BUILD"}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
start_sink sink-tls --implicit-tls --tls-cert certs/dev-ecdsa.crt --tls-key certs/dev-ecdsa.key
SINK_PLAIN_PORT=$SINK_PORT # what start_sluice relays to
UP="'implicit', verify = true, ca_file = '$ROOT/certs/dev-ca.crt', tls_name = 'localhost'"
declare -A V_PID V_SMTPS V_DESC V_ERR
LABELS=()
for v in $VARIANTS; do
    IFS=: read -r label vbuild <<<"$v"
    [[ $vbuild == /* ]] || vbuild=$ROOT/$vbuild
    cp "$vbuild/sluice" "$OUT/bin/sluice-$label"
    SLUICE=$OUT/bin/sluice-$label
    for mode in $MODES; do
        reuse=1000
        [[ $mode == new ]] && reuse=1
        # info: one upstream.ready line per upstream connection (and two per message)
        MAX_REUSE=$reuse UPSTREAM_TLS=$UP EXTRA_CONF="log_level = 'info'," \
            POLICIES=policies/auth.lua LUA_DIR=lua start_sluice "sluice-$label-$mode"
        V_PID[$label-$mode]=$SLUICE_PID V_SMTPS[$label-$mode]=$SMTPS
        V_ERR[$label-$mode]=$OUT/sluice-$label-$mode.err
    done
    V_DESC[$label]="sluice from $vbuild (sha256 $(sha256sum "$SLUICE" | cut -c1-12))"
    LABELS+=("$label")
    log "variant $label: ${V_DESC[$label]}"
done

ROWS=()
run_one() { # run_one LABEL MODE ROUND
    local key=$1-$2 json=$OUT/$1-$2.$3.json r0 r1 f0 f1
    wait_quiet
    r0=$(grep -c '"event":"upstream.ready".*"resumed":true' "${V_ERR[$key]}" || true)
    f0=$(grep -c '"event":"upstream.ready"' "${V_ERR[$key]}" || true)
    loadgen_cpu "${V_PID[$key]}" "$json" "$OUT/$key.$3.log" --port "${V_SMTPS[$key]}" \
        --tls implicit --auth plain --user "$FROM" --password "$PASSWORD" --from "$FROM" \
        -c 12 --per-conn 0
    r1=$(grep -c '"event":"upstream.ready".*"resumed":true' "${V_ERR[$key]}" || true)
    f1=$(grep -c '"event":"upstream.ready"' "${V_ERR[$key]}" || true)
    local us=$LG_US
    ROWS+=("$key|$(jnum msg_per_s "$json")|$(jnum p99 "$json")|$us|$((r1 - r0))/$((f1 - f0))|$(jnum failed "$json")")
    log "[$(elapsed)s] $key round $3: ${ROWS[-1]}"
}
n=${#LABELS[@]}
for round in $(seq "$RUNS"); do
    over_budget && break
    for mode in $MODES; do
        for i in $(seq 0 $((n - 1))); do run_one "${LABELS[$(((i + round - 1) % n))]}" "$mode" "$round"; done
    done
done

field() { local r; for r in "${ROWS[@]}"; do IFS='|' read -r -a f <<<"$r"; [[ ${f[0]} == "$1" ]] && echo "${f[$2]}"; done; }
echo "## TLS upstream: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Source: $SOURCE_STATE. $RUNS rounds, order rotated; each run ${WARMUP} s warmup +"
echo "${DURATION} s; clients implicit TLS + AUTH PLAIN, reused connections, c=12, 2 KB;"
echo "upstream \`sluice sink --implicit-tls\` (ECDSA P-256, verified), WORKERS=$WORKERS. Output: $OUT"
echo
for label in "${LABELS[@]}"; do echo "- $label: ${V_DESC[$label]}"; done
echo
echo "| upstream connections | variant | msg/s | p99 ms | sluice CPU µs/msg (runs) | upstream handshakes resumed/all | failed |"
echo "|---|---|---:|---:|---|---|---|"
for mode in $MODES; do
    for label in "${LABELS[@]}"; do
        k=$label-$mode
        echo "| $mode | $label | $(field "$k" 1 | median) | $(field "$k" 2 | median) | $(field "$k" 3 | grep -v '^-$' | median) ($(field "$k" 3 | paste -sd/ - | sed 's|/| / |g')) | $(field "$k" 4 | paste -sd' ' -) | $(field "$k" 5 | paste -sd/ -) |"
    done
done
