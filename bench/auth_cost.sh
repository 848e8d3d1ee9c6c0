#!/usr/bin/env bash
# bench/auth_cost.sh: what one AUTH costs on a new connection (issue 5 points 5 and 8;
# docs/benchmarks.md "Authentication cost"). Four sluice instances, all started at once,
# each relaying to one plain `sluice sink --discard`, measured in RUNS interleaved rounds
# (order rotated each round) with scenario (b) of bench/run.sh: implicit TLS, a new
# connection and AUTH for every message, c=12, 2 KB:
#   plain-nocache  AUTH PLAIN, auth_cache_ttl = 0: every AUTH hashes (sha512-crypt user)
#   plain-cache    AUTH PLAIN, the default auth cache (60 s): the hash once a minute
#   jwt            AUTH XOAUTH2 with a JWT from `sluice token`, checked locally (EdDSA)
#   introspect     AUTH XOAUTH2 with an opaque token; RFC 7662 answers from a small local
#                  endpoint, cached (introspection_cache = 300): after the first, hits
# Prints a markdown table (median msg/s and sluice CPU per message over the rounds).
# Bounded like bench/run.sh (DURATION, WARMUP, RUNS, MAX_SECS); stops only its processes.
set -euo pipefail
BENCH_LIB=1
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"
RUNS=${RUNS:-3}
[[ -f $ROOT/certs/dev-token.key ]] || { log "certs/dev-token.key missing: make certs"; exit 1; }

# The introspection endpoint: every token is active, for bench@example.org.
INTRO_PORT=$(free_port)
python3 - "$INTRO_PORT" >"$OUT/introspect.log" 2>&1 <<'PY' &
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', 0)))
        body = json.dumps({'active': True, 'sub': 'bench@example.org', 'email': 'bench@example.org',
                           'client_id': 'bench', 'scope': 'smtp.send', 'aud': 'sluice-bench',
                           'iss': 'bench-idp', 'exp': int(time.time()) + 3600,
                           'iat': int(time.time())}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
PY
PIDS+=("$!")

OAUTH="oauth2 = { issuer = 'bench-idp', audience = 'sluice-bench', clients = {}"
declare -A V_CONF V_DOMAIN V_POLICIES
V_CONF[plain-nocache]="auth_cache_ttl = 0,"
V_CONF[plain-cache]=""
V_DOMAIN[jwt]="auth = { 'oauth2' }, $OAUTH, jwks_file = '$ROOT/certs/dev-token.jwks' },"
V_DOMAIN[introspect]="auth = { 'oauth2' }, $OAUTH, introspection_url = 'http://127.0.0.1:$INTRO_PORT/introspect', client_id = 'sluice', client_secret = 'bench', introspection_cache = 300 },"
LABELS=(plain-nocache plain-cache jwt introspect)

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
start_sink sink-plain
SINK_PLAIN_PID=$SINK_PID SINK_PLAIN_PORT=$SINK_PORT
declare -A V_PID V_SMTPS
for label in "${LABELS[@]}"; do
    pol="policies/auth.lua"
    [[ $label == plain-* ]] || pol="policies/auth.lua policies/oauth2.lua"
    EXTRA_CONF=${V_CONF[$label]:-} DOMAIN_CONF=${V_DOMAIN[$label]:-} POLICIES=$pol LUA_DIR=lua \
        start_sluice "sluice-$label"
    V_PID[$label]=$SLUICE_PID V_SMTPS[$label]=$SMTPS
done
JWT=$("$SLUICE" token -c "$OUT/sluice-jwt.lua" --key "$ROOT/certs/dev-token.key" \
    --ttl 3600 "$FROM")

ROWS=()
run_one() { # run_one LABEL ROUND
    local label=$1 json=$OUT/$1.$2.json pid=${V_PID[$1]} args
    case $label in
        plain-*) args="--auth plain --password $PASSWORD" ;;
        jwt) args="--auth xoauth2 --token $JWT" ;;
        introspect) args="--auth xoauth2 --token opaque-bench-token-0123456789" ;;
    esac
    wait_quiet
    # shellcheck disable=SC2086 # args is a word list on purpose
    loadgen_cpu "$pid" "$json" "$OUT/$1.$2.log" --port "${V_SMTPS[$label]}" \
        --tls implicit --user "$FROM" --from "$FROM" $args -c 12 --per-conn 1
    local rate=$(jnum msg_per_s "$json") failed=$(jnum failed "$json") us=$LG_US
    ROWS+=("$label|$rate|$us|$failed")
    log "[$(elapsed)s] $label round $2: $rate msg/s, sluice $us us CPU/msg, failed $failed"
}
for round in $(seq "$RUNS"); do
    for i in 0 1 2 3; do run_one "${LABELS[$(((i + round - 1) % 4))]}" "$round"; done
done

field() { local r; for r in "${ROWS[@]}"; do IFS='|' read -r -a f <<<"$r"; [[ ${f[0]} == "$1" ]] && echo "${f[$2]}"; done; }
echo "## Authentication cost, new connection per message: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Source: $SOURCE_STATE. $RUNS rounds, order rotated; each run ${WARMUP} s warmup +"
echo "${DURATION} s, implicit TLS, c=12, 2 KB, WORKERS=$WORKERS. Output: $OUT"
echo
echo "| variant | msg/s (median) | runs | sluice CPU us/msg (median) | failed |"
echo "|---|---:|---|---:|---|"
for label in "${LABELS[@]}"; do
    echo "| $label | $(field "$label" 1 | median) | $(field "$label" 1 | paste -sd/ - | sed 's|/| / |g') | $(field "$label" 2 | grep -v '^-$' | median) | $(field "$label" 3 | paste -sd/ -) |"
done
