#!/usr/bin/env bash
# bench/auth_expiry.sh: the latency spike when a remembered AUTH expires (issue 12 item 5;
# docs/benchmarks.md "When the auth cache expires"). Builds side by side: one sluice per
# variant, all started at once, each relaying to one plain `sluice sink --discard`, the
# user's hash yescrypt (made here with `sluice passwd -s yescrypt`), auth_cache_ttl = TTL
# (5 s) so that every run of DURATION (20 s) sees several expiries, measured in RUNS
# interleaved rounds (order rotated) with scenario (b) of bench/run.sh: implicit TLS, a new
# connection and AUTH PLAIN for every message, c=12, 2 KB, policies/auth.lua only. At each
# expiry all 12 clients miss at once: before single flight each hashed, after it one does.
#   VARIANTS="LABEL:BUILD ..." (default "base:$BASE_BUILD new:$BUILD"; BASE_BUILD must
#   be set, e.g. a RelWithDebInfo build of the previous main)
# Prints a markdown table: per variant the medians over rounds of msg/s, latency p50, p99,
# p99.9 and max (ms, per message: connect, TLS, AUTH and the transaction), the mean of the
# AUTH phase, and sluice's CPU per message.
# Bounded like bench/run.sh (DURATION, WARMUP, RUNS, MAX_SECS); stops only its processes.
set -euo pipefail
BENCH_LIB=1
# shellcheck source=bench/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"
RUNS=${RUNS:-3}
DURATION=${DURATION_EXPIRY:-20}
TTL=${TTL:-5}
[[ -n ${VARIANTS:-} || -n ${BASE_BUILD:-} ]] || { log "set BASE_BUILD or VARIANTS"; exit 2; }
VARIANTS=${VARIANTS:-"base:$BASE_BUILD new:$BUILD"}

mkdir -p "$OUT/users"
printf 'bench:%s\n' "$(printf '%s\n' "$PASSWORD" | "$SLUICE" passwd -s yescrypt)" \
    >"$OUT/users/$USER_DOMAIN.txt"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
start_sink sink-plain
SINK_PLAIN_PID=$SINK_PID SINK_PLAIN_PORT=$SINK_PORT
declare -A V_PID V_SMTPS V_DESC
LABELS=()
for v in $VARIANTS; do
    IFS=: read -r label vbuild <<<"$v"
    [[ $vbuild == /* ]] || vbuild=$ROOT/$vbuild
    cp "$vbuild/sluice" "$OUT/bin/sluice-$label"
    SLUICE=$OUT/bin/sluice-$label
    USERS_DIR=$OUT/users EXTRA_CONF="auth_cache_ttl = $TTL," POLICIES=policies/auth.lua \
        LUA_DIR=lua start_sluice "sluice-$label"
    V_PID[$label]=$SLUICE_PID V_SMTPS[$label]=$SMTPS
    V_DESC[$label]="sluice from $vbuild (sha256 $(sha256sum "$SLUICE" | cut -c1-12))"
    LABELS+=("$label")
    log "variant $label: pid $SLUICE_PID smtps $SMTPS; ${V_DESC[$label]}"
done

ROWS=()
run_one() { # run_one LABEL ROUND
    local label=$1 json=$OUT/$1.$2.json
    wait_quiet
    loadgen_cpu "${V_PID[$1]}" "$json" "$OUT/$1.$2.log" --port "${V_SMTPS[$label]}" \
        --tls implicit --auth plain --user "$FROM" --password "$PASSWORD" --from "$FROM" \
        -c 12 --per-conn 1
    local us=$LG_US
    ROWS+=("$label|$(jnum msg_per_s "$json")|$(jnum p50 "$json")|$(jnum p99 "$json")|$(jnum p999 "$json")|$(jnum max "$json")|$(jphase auth "$json")|$us|$(jnum failed "$json")")
    log "[$(elapsed)s] $label round $2: ${ROWS[-1]}"
}
n=${#LABELS[@]}
for round in $(seq "$RUNS"); do
    over_budget && break
    for i in $(seq 0 $((n - 1))); do run_one "${LABELS[$(((i + round - 1) % n))]}" "$round"; done
done

field() { local r; for r in "${ROWS[@]}"; do IFS='|' read -r -a f <<<"$r"; [[ ${f[0]} == "$1" ]] && echo "${f[$2]}"; done; }
echo "## When the auth cache expires: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Source: $SOURCE_STATE. $RUNS rounds, order rotated; each run ${WARMUP} s warmup +"
echo "${DURATION} s, implicit TLS, a new connection and AUTH PLAIN per message, c=12, 2 KB,"
echo "yescrypt user, auth_cache_ttl = $TTL, WORKERS=$WORKERS. Output: $OUT"
echo
for label in "${LABELS[@]}"; do echo "- $label: ${V_DESC[$label]}"; done
echo
echo "| variant | msg/s | p50 ms | p99 ms | p99.9 ms | max ms (runs) | AUTH phase mean ms | sluice CPU µs/msg | failed |"
echo "|---|---:|---:|---:|---:|---|---:|---:|---|"
for label in "${LABELS[@]}"; do
    echo "| $label | $(field "$label" 1 | median) | $(field "$label" 2 | median) | $(field "$label" 3 | median) | $(field "$label" 4 | median) | $(field "$label" 5 | median) ($(field "$label" 5 | paste -sd/ - | sed 's|/| / |g')) | $(field "$label" 6 | median) | $(field "$label" 7 | grep -v '^-$' | median) | $(field "$label" 8 | paste -sd/ -) |"
done
