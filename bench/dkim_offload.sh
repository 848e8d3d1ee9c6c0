#!/usr/bin/env bash
# bench/dkim_offload.sh: DKIM signing on the worker's loop vs on the offload pool, as an A/B
# of sluice builds run side by side (docs/benchmarks.md "DKIM signing (issue 13)").
#
# Starts one plain `sluice sink --discard` and one sluice per variant (all at once, each
# with the bench configuration, WORKERS workers, policies/auth.lua only, its own free
# ports), then for RUNS rounds runs both scenarios against every variant, the order of the
# variants rotated each round so that drift and the machine's other load hit all alike.
# A variant is LABEL:KEY[:BUILD]: KEY is the key example.org signs with (rsa: an RSA-2048
# key, ed: an Ed25519 key, none: no dkim), BUILD (default: $BUILD) the build directory of
# its sluice, so that one run compares the previous main (signing on the loop) with this
# tree (RSA on the pool). The first variant is the reference of the differences.
#
# Scenarios (2 KB messages, implicit TLS + AUTH PLAIN, connections reused):
#   flood  c=12 clients sending From: bench@example.org (signed): msg/s, sluice's CPU per
#          message (user + system over the measured part), the messages' p50/p99 latency;
#   probe  the same flood, and beside it one client (c=1) whose From: is in a domain
#          without keys (unsigned): its p50/p99 latency, i.e. how long a worker busy with
#          signatures keeps a session that needs none waiting.
#
# Environment (defaults): VARIANTS ("none:none offload:rsa": this build unsigned and
# signing with RSA; add e.g. "inline:rsa:/path/of/an/older/build" to compare with a build
# that signs on the loop, as docs/benchmarks.md did with 793ac11), RUNS (3), DURATION (5), WARMUP (1), and bench/run.sh's BUILD, WORKERS,
# OUT, QUIET_*, START_TIMEOUT. Bounded like run.sh: each loadgen run has a duration and a
# `timeout`, and only the processes started here are stopped, by PID.
set -euo pipefail
BENCH_LIB=1
RUNS=${RUNS:-3}
POLICIES=${POLICIES:-"policies/auth.lua"} # no sender_domain: the probe's From: is elsewhere
# shellcheck source=bench/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"
VARIANTS=${VARIANTS:-"none:none offload:rsa"}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
start_sink sink-plain
SINK_PLAIN_PID=$SINK_PID SINK_PLAIN_PORT=$SINK_PORT

"$SLUICE" dkim keygen --domain example.org --selector r2048 --out "$OUT/r2048.key" >/dev/null
"$SLUICE" dkim keygen --domain example.org --selector ed --algorithm ed25519 \
    --out "$OUT/ed.key" >/dev/null

declare -A V_PID V_SMTPS V_DESC
LABELS=()
for v in $VARIANTS; do
    IFS=: read -r label key vbuild <<<"$v"
    vbuild=${vbuild:-$BUILD}
    cp "$vbuild/sluice" "$OUT/bin/sluice-$label"
    case $key in
        rsa) dom="dkim = { selector = 'r2048', key_file = '$OUT/r2048.key' }," ;;
        ed) dom="dkim = { selector = 'ed', key_file = '$OUT/ed.key' }," ;;
        none) dom= ;;
        *) log "unknown key $key (rsa, ed, none)"; exit 2 ;;
    esac
    SLUICE=$OUT/bin/sluice-$label DOMAIN_CONF=$dom start_sluice "sluice-$label"
    V_PID[$label]=$SLUICE_PID V_SMTPS[$label]=$SMTPS
    V_DESC[$label]="key $key, sluice from $vbuild (sha256 $(sha256sum "$OUT/bin/sluice-$label" | cut -c1-12))"
    LABELS+=("$label")
    log "variant $label: pid $SLUICE_PID smtps $SMTPS; ${V_DESC[$label]}"
done

jlat() { grep -o "\"latency_ms\":{[^}]*" "$2" | grep -o "\"$1\":[0-9.]*" | cut -d: -f2; }

# run_one SCENARIO LABEL ROUND: appends "scenario|label|round|msg/s|CPU us/msg|p50|p99|failed"
ROWS=()
run_one() {
    local pid=${V_PID[$2]} port=${V_SMTPS[$2]} json=$OUT/$1.$2.$3.json pjson=$OUT/$1.$2.$3.probe.json
    local ppid= us p50 p99 failed
    wait_quiet
    if [[ $1 == probe ]]; then # beside the flood, unmeasured: only its latency counts
        timeout $((WARMUP + DURATION + 45)) "$LOADGEN" --host 127.0.0.1 --port "$port" \
            --insecure --duration "$DURATION" --warmup "$WARMUP" --timeout 10 --json \
            --tls implicit --auth plain --password "$PASSWORD" --user "$FROM" \
            --from probe@example.net -c 1 --per-conn 0 >"$pjson" 2>"$OUT/$1.$2.$3.probe.log" &
        ppid=$!
        PIDS+=("$ppid")
    fi
    loadgen_cpu "$pid" "$json" "$OUT/$1.$2.$3.log" --port "$port" --tls implicit \
        --auth plain --password "$PASSWORD" --user "$FROM" --from "$FROM" -c 12 --per-conn 0
    us=$LG_US
    if [[ -n $ppid ]]; then
        wait "$ppid" || true
        forget_pid "$ppid"
        json=$pjson # the probe's latency is what this scenario reports
    fi
    p50=$(jlat p50 "$json") p99=$(jlat p99 "$json")
    failed=$(( $(jnum failed "$OUT/$1.$2.$3.json") + 0 ))
    [[ -z $ppid ]] || failed=$((failed + $(jnum failed "$pjson")))
    ROWS+=("$1|$2|$3|$(jnum msg_per_s "$OUT/$1.$2.$3.json")|$us|$p50|$p99|$failed")
    log "[$(elapsed)s] $1 $2 round $3: $(jnum msg_per_s "$OUT/$1.$2.$3.json") msg/s," \
        "$us us CPU/msg, latency p50 $p50 p99 $p99 ms, failed $failed"
}

for round in $(seq "$RUNS"); do
    n=${#LABELS[@]}
    for sc in flood probe; do
        for i in $(seq 0 $((n - 1))); do
            run_one "$sc" "${LABELS[$(((i + round - 1) % n))]}" "$round"
        done
    done
done

col() { # col SCENARIO LABEL FIELD: one value per round (3 msg/s, 4 CPU, 5 p50, 6 p99, 7 failed)
    local r
    for r in "${ROWS[@]}"; do
        IFS='|' read -r -a f <<<"$r"
        if [[ ${f[0]} == "$1" && ${f[1]} == "$2" ]]; then echo "${f[$3]}"; fi
    done
}
each() { col "$@" | paste -sd/ - | sed 's|/| / |g'; }

echo "## DKIM signing on the loop vs on the offload pool: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Source: $SOURCE_STATE. $RUNS rounds, variants rotated each round; each run ${WARMUP} s"
echo "warmup + ${DURATION} s measured, 2 KB messages, implicit TLS + AUTH, reused, WORKERS=$WORKERS."
echo "Output: $OUT"
echo
for label in "${LABELS[@]}"; do echo "- $label: ${V_DESC[$label]}"; done
echo
echo "### flood: c=12, every message signed"
echo
echo "| variant | msg/s (each round) | median | CPU us/msg (each round) | median | p50 ms | p99 ms (each round) | median p99 | failed |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for label in "${LABELS[@]}"; do
    echo "| $label | $(each flood "$label" 3) | $(col flood "$label" 3 | median) |" \
         "$(each flood "$label" 4) | $(col flood "$label" 4 | median) |" \
         "$(col flood "$label" 5 | median) | $(each flood "$label" 6) |" \
         "$(col flood "$label" 6 | median) | $(col flood "$label" 7 | awk '{ s += $1 } END { print s + 0 }') |"
done
echo
echo "### probe: one unsigned client (c=1) beside the same flood"
echo
echo "| variant | flood msg/s (each round) | probe p50 ms (each round) | median | probe p99 ms (each round) | median | failed |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for label in "${LABELS[@]}"; do
    echo "| $label | $(each probe "$label" 3) | $(each probe "$label" 5) |" \
         "$(col probe "$label" 5 | median) | $(each probe "$label" 6) |" \
         "$(col probe "$label" 6 | median) | $(col probe "$label" 7 | awk '{ s += $1 } END { print s + 0 }') |"
done
echo
stop_all
log "done in $(elapsed) s; files in $OUT"
