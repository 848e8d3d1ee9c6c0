#!/usr/bin/env bash
# bench/compare.sh: sluice beside the relays people would otherwise pick, Postfix and the
# nginx mail proxy, as a comparison anyone can rerun (docs/benchmarks.md, "sluice beside
# Postfix and the nginx mail proxy").
#
# Starts, on 127.0.0.1 and free high ports, side by side and each relaying to its own
# `sluice sink --discard --log` (which counts what arrives):
#   sluice   this tree's build (BUILD), 2 workers, policies auth.lua + sender_domain.lua,
#            users from bench/conf/users (sha512-crypt, auth cache on as by default);
#   nginx    the nginx mail proxy (Debian's nginx + libnginx-mod-mail), WORKERS worker
#            processes, AUTH answered by bench/compare_auth.py (its auth_http endpoint),
#            which sends every login to the sink;
#   postfix  Postfix as a submission relay (smtps + submission, AUTH through Cyrus SASL
#            with a private sasldb, relayhost = the sink), its queue on disk.
# Postfix and nginx come from Debian packages fetched with `apt-get download` and unpacked
# with `dpkg -x` into OUT/root: nothing is installed, no system service, configuration or
# port (25, 465, 587) is touched. Every server has its configuration, queue, PID file and
# logs under OUT. The same certificate (CERT: rsa = certs/dev-rsa.*, ecdsa =
# certs/dev-ecdsa.*), the same load generator (sluice-loadgen, CLIENTS clients, AUTH PLAIN,
# implicit TLS) and the same sink for all.
#
# Scenarios (SCENARIOS): reuse (reused connections, 2 KB messages), new (a new TCP + TLS
# connection, AUTH and one 2 KB message per connection, full handshakes), big (reused
# connections, 100 KB messages); starttls (as reuse, on the submission port) on request.
# For RUNS rounds, every scenario runs against every server, the servers' order rotated
# each round, so that the machine's drift hits all alike. One run is a WARMUP s loadgen run,
# a wait until the sink has every message, then the measured DURATION s run and the same
# wait (at most DRAIN_TIMEOUT s each). Measured:
#   msg/s, p50, p99      the load generator's, over the measured run;
#   server CPU / msg     user + system CPU of the server's processes (for Postfix master,
#                        smtpd, cleanup, qmgr, smtp, postlogd..., for nginx master and
#                        workers: the process tree, children it reaped included) from
#                        /proc, from the start of the measured run until the sink has all
#                        its messages (Postfix delivers from its queue after replying),
#                        over the messages of the measured run;
#   helper CPU / msg     the same for nginx's auth_http endpoint (a Python script here,
#                        any real deployment has one); not in the server's figure;
#   lost                 messages the server accepted (250 to the end of data, warmup
#                        included) minus those the sink received, after the wait.
# Prints markdown on stdout (progress on stderr) and draws the figures with
# bench/compare_report.py into CHART (python3-matplotlib; skipped without it).
#
#   bench/compare.sh                     all three servers, about 3 minutes (as root)
#   bench/compare.sh --only sluice       sluice alone: no download, no root needed
#   bench/compare.sh --only nginx,postfix
#
# Prerequisites: a build with sluice and sluice-loadgen (make build), the dev certificates
# (make certs), bash, python3, apt-get with current package lists (apt-get update) and
# dpkg-deb for the downloads, the libraries Postfix 3.7 and nginx 1.22 link against (on
# Debian 12 all present but libicu72 / libsasl2-2 on a minimal system: the script names what
# is missing), and root for Postfix (its master program refuses to run otherwise; its
# daemons drop to `nobody`). python3-matplotlib for the chart.
#
# Environment (defaults): RUNS (3), DURATION (5), WARMUP (1), CLIENTS (12), WORKERS (2),
# CERT (rsa), SCENARIOS ("reuse new big"), PEERS ("sluice nginx postfix"; --only overrides),
# DRAIN_TIMEOUT (60), START_TIMEOUT (15), MAX_SECS (1800: no new run starts after it),
# PYTHON (/usr/bin/python3 if there is one, else python3),
# BUILD (build), OUT (a new /tmp/sluice-compare.* directory), DEBS (OUT/debs: where the
# .deb files are fetched; give a directory to keep them across runs), CHART
# (OUT/compare.png; empty: no chart). Everything is bounded (loadgen's own bounds plus
# `timeout`), and only the processes this script started are stopped, by PID (TERM, then
# KILL after 5 s; Postfix's master runs in its own session and takes its children along).
set -euo pipefail

ONLY=
while (($#)); do
    case $1 in
        --only) ONLY=${2:?--only needs a list: sluice,nginx,postfix}; shift 2 ;;
        --only=*) ONLY=${1#--only=}; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (--only LIST, --help)" >&2; exit 2 ;;
    esac
done

# Before run.sh is sourced: it has its own defaults for some of these names, and its own
# SCENARIOS (an array).
OUT=${OUT:-$(mktemp -d /tmp/sluice-compare.XXXXXX)}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
WORKERS=${WORKERS:-2}
CLIENTS=${CLIENTS:-12}
CERT=${CERT:-rsa}
COMPARE_SCENARIOS=${SCENARIOS:-"reuse new big"}
PEERS=${PEERS:-"sluice nginx postfix"}
[[ -z $ONLY ]] || PEERS=${ONLY//,/ }
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-60}
START_TIMEOUT=${START_TIMEOUT:-15}
MAX_SECS=${MAX_SECS:-1800}
# Debian's python3-matplotlib is for Debian's python3, not for one earlier in PATH (pyenv)
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3
fi
BENCH_LIB=1
# shellcheck source=bench/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/run.sh"
log() { echo "compare.sh: $*" >&2; }
DEBS=${DEBS:-$OUT/debs}
CHART=${CHART-$OUT/compare.png}
PKGROOT=$OUT/root
USER_NAME=bench@example.org # bench/conf/users: password bench-secret for all
PASSWORD=bench-secret

case $CERT in
    rsa|ecdsa) CERT_FILE=$ROOT/certs/dev-$CERT.crt KEY_FILE=$ROOT/certs/dev-$CERT.key ;;
    *) log "CERT is rsa or ecdsa, not $CERT"; exit 2 ;;
esac
for p in $PEERS; do
    case $p in
        sluice|nginx|postfix) ;;
        *) log "unknown server $p (sluice, nginx, postfix)"; exit 2 ;;
    esac
done
for s in $COMPARE_SCENARIOS; do
    case $s in
        reuse|new|big|starttls) ;;
        *) log "unknown scenario $s (reuse, new, big, starttls)"; exit 2 ;;
    esac
done
if [[ " $PEERS " == *" postfix "* && $(id -u) -ne 0 ]]; then
    log "Postfix's master runs only as root: run as root, or leave postfix out (--only sluice,nginx)"
    exit 2
fi
# Postfix's daemons run as nobody and read the sasldb under OUT: the path must be traversable.
chmod 711 "$OUT"
RESULTS_TSV=$OUT/results.tsv
: >"$RESULTS_TSV"

# ---- process trees and their CPU ----

# tree_ticks PID: CPU ticks (user + system) of PID and every descendant, plus what they
# reaped (cutime + cstime): a Postfix smtpd that exits between two readings is counted in
# its master's cutime afterwards, so the difference of two readings stays whole.
tree_ticks() {
    # cat fails for a process that exited after the glob: that one is in its parent's cutime
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '{
        pid = $1; sub(/^.*\) /, "")        # the name may hold spaces and parentheses
        parent[pid] = $2; t[pid] = $12 + $13 + $14 + $15
    } END {
        in_tree[root] = 1
        for (changed = 1; changed; ) {     # at most depth-many passes
            changed = 0
            for (p in parent)
                if (!(p in in_tree) && (parent[p] in in_tree)) { in_tree[p] = 1; changed = 1 }
        }
        for (p in in_tree) s += t[p]
        print s + 0
    }'
}

sink_count() { grep -c '"event":"sink.message"' "$1" 2>/dev/null || true; }

# wait_sink LOG N: until the sink's log counts N messages, at most DRAIN_TIMEOUT s. Prints
# the count it saw last.
wait_sink() {
    local n i
    for ((i = 0; i < DRAIN_TIMEOUT * 10; i++)); do
        n=$(sink_count "$1")
        ((n >= $2)) && break
        sleep 0.1
    done
    echo "$n"
}

wait_listening() { # wait_listening PID PORT...: 0 once every port listens, 1 if PID died
    local i p ok
    for ((i = 0; i < START_TIMEOUT * 10; i++)); do
        kill -0 "$1" 2>/dev/null || return 1
        ok=1
        for p in "${@:2}"; do is_listening "$p" || { ok=0; break; }; done
        ((ok)) && return 0
        sleep 0.1
    done
    return 1
}

# ---- the Debian packages, unpacked into OUT/root ----

# Per server (sluice, nginx, postfix): its main PID, ports, sink, version.
declare -A PID SMTPS SUBMISSION SINK_PORT_OF SINK_PID_OF VERSION=([sluice]=- [nginx]=- [postfix]=-)
PID_nginx_auth=

fetch_packages() {
    local pkgs=() p deb missing=
    [[ " $PEERS " == *" nginx "* ]] && pkgs+=(nginx libnginx-mod-mail)
    [[ " $PEERS " == *" postfix "* ]] && pkgs+=(postfix sasl2-bin)
    ((${#pkgs[@]})) || return 0
    mkdir -p "$DEBS" "$PKGROOT"
    for p in "${pkgs[@]}"; do
        compgen -G "$DEBS/${p}_*.deb" >/dev/null && continue
        log "apt-get download $p (into $DEBS)"
        # The sandbox user _apt cannot write into a private directory; root downloads itself.
        if ! (cd "$DEBS" && timeout 300 apt-get -q -o APT::Sandbox::User=root download "$p") \
                >>"$OUT/apt.log" 2>&1; then
            log "apt-get download $p failed (see $OUT/apt.log; apt-get update first?)"
            exit 1
        fi
    done
    for p in "${pkgs[@]}"; do
        deb=$(compgen -G "$DEBS/${p}_*.deb" | sort -V | tail -n 1)
        dpkg-deb -x "$deb" "$PKGROOT"
        case $p in
            nginx|postfix) VERSION[$p]=$(dpkg-deb -f "$deb" Version) ;;
        esac
    done
    # The unpacked binaries use the system's libraries (Postfix its own from OUT/root).
    local bins=() b
    [[ " $PEERS " == *" nginx "* ]] && bins+=("$PKGROOT/usr/sbin/nginx")
    [[ " $PEERS " == *" postfix "* ]] && bins+=("$PKGROOT/usr/lib/postfix/sbin/smtpd"
        "$PKGROOT/usr/lib/postfix/sbin/master" "$PKGROOT/usr/sbin/saslpasswd2")
    for b in "${bins[@]}"; do
        missing+=$(LD_LIBRARY_PATH=$PKGROOT/usr/lib/postfix ldd "$b" | awk '/not found/ { printf " %s", $1 }')
    done
    if [[ -n $missing ]]; then
        log "libraries missing for the unpacked servers:$missing (apt-get install the" \
            "packages that hold them, or leave the server out with --only)"
        exit 1
    fi
    if [[ " $PEERS " == *" postfix "* ]] && ! compgen -G "/usr/lib/*/sasl2/libsasldb.so*" >/dev/null; then
        log "Cyrus SASL's sasldb plugin is missing (apt-get install libsasl2-modules-db)"
        exit 1
    fi
}

# ---- the servers ----

# A sink per server, so that each one's count is its own.
start_peer_sink() {
    : >"$OUT/sink-$1.err" # start_sink reads it at once
    start_sink "sink-$1" --log "$OUT/sink-$1.log"
    SINK_PORT_OF[$1]=$SINK_PORT SINK_PID_OF[$1]=$SINK_PID
}

start_sluice_peer() {
    local conf=$OUT/sluice.lua smtps submission
    smtps=$(free_port) submission=$(free_port)
    cat >"$conf" <<EOF
-- written by bench/compare.sh: the benchmark configuration of bench/conf, with one certificate
return {
  hostname = 'sluice.bench.test',
  workers = $WORKERS,
  users_dir = '$ROOT/bench/conf/users',
  log_level = 'warning',
  policies = { '$ROOT/policies/auth.lua', '$ROOT/policies/sender_domain.lua' },
  lua_dir = '$ROOT/lua',
  domains = { ['example.org'] = {} },
  listeners = {
    { name = 'smtps', address = '127.0.0.1', port = $smtps, tls = 'implicit', sasl = { 'PLAIN', 'LOGIN' } },
    { name = 'submission', address = '127.0.0.1', port = $submission, tls = 'starttls', sasl = { 'PLAIN', 'LOGIN' } },
  },
  tls = { certificates = { { cert = '$CERT_FILE', key = '$KEY_FILE' } }, min_version = '1.2' },
  limits = { max_message_size = 25 * 1024 * 1024, max_commands = 100000000,
             max_messages = 100000000, max_connections = 20000, max_connections_per_ip = 20000 },
  upstreams = { default = { { host = '127.0.0.1', port = ${SINK_PORT_OF[sluice]}, tls = 'none' } } },
  pool = { max_per_worker = 8, idle_timeout = 30, max_reuse = 1000 },
}
EOF
    "$SLUICE" run -c "$conf" >"$OUT/sluice.out" 2>"$OUT/sluice.err" &
    PID[sluice]=$!
    PIDS+=("${PID[sluice]}")
    wait_listening "${PID[sluice]}" "$smtps" "$submission" || { log "sluice did not start; see $OUT/sluice.err"; exit 1; }
    SMTPS[sluice]=$smtps SUBMISSION[sluice]=$submission
    VERSION[sluice]=$("$SLUICE" --version 2>&1 | head -n 1 || true)
}

start_nginx_peer() {
    local dir=$OUT/nginx smtps submission authp
    mkdir -p "$dir"
    smtps=$(free_port) submission=$(free_port) authp=$(free_port)
    "$PYTHON" "$ROOT/bench/compare_auth.py" --listen "$authp" --upstream-port "${SINK_PORT_OF[nginx]}" \
        --user "$USER_NAME" --password "$PASSWORD" 2>"$dir/auth.err" &
    PID_nginx_auth=$!
    PIDS+=("$PID_nginx_auth")
    wait_listening "$PID_nginx_auth" "$authp" || { log "the auth endpoint did not start; see $dir/auth.err"; exit 1; }
    # xclient off: the sink knows no XCLIENT. The proxy advertises what smtp_capabilities
    # lists, and PIPELINING is left out because nginx proxies the session only after AUTH.
    cat >"$dir/nginx.conf" <<EOF
# written by bench/compare.sh
daemon off;
master_process on;
worker_processes $WORKERS;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
load_module $PKGROOT/usr/lib/nginx/modules/ngx_mail_module.so;
events { worker_connections 20000; }
mail {
    server_name nginx.bench.test;
    auth_http 127.0.0.1:$authp/auth;
    proxy_pass_error_message on;
    xclient off;
    ssl_certificate $CERT_FILE;
    ssl_certificate_key $KEY_FILE;
    smtp_auth plain login;
    server { listen 127.0.0.1:$smtps ssl; protocol smtp; }
    server { listen 127.0.0.1:$submission; protocol smtp; starttls only; }
}
EOF
    # -e: nginx opens its compiled-in error log before it reads the configuration
    "$PKGROOT/usr/sbin/nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
        >"$dir/stdout" 2>"$dir/stderr" &
    PID[nginx]=$!
    PIDS+=("${PID[nginx]}")
    wait_listening "${PID[nginx]}" "$smtps" "$submission" || { log "nginx did not start; see $dir/error.log"; exit 1; }
    SMTPS[nginx]=$smtps SUBMISSION[nginx]=$submission
}

start_postfix_peer() {
    local dir=$OUT/postfix smtps submission
    local conf=$dir/conf queue=$dir/queue data=$dir/data
    mkdir -p "$conf/sasl" "$queue" "$data"
    chmod 755 "$dir" "$conf" "$conf/sasl"
    chown nobody "$data"
    smtps=$(free_port) submission=$(free_port)
    # The paths Postfix would take from its compiled-in /etc/postfix and /usr/lib/postfix point
    # into OUT; LD_LIBRARY_PATH finds its shared libraries (their RUNPATH is /usr/lib/postfix)
    # and the master passes it on. mail_owner nobody, setgid_group mail: both exist on every
    # Debian system, and no account is created. Logs go to a file through postlogd (there is
    # no syslog to write to, and the system's mail log is not ours to fill); Postfix has no
    # setting that logs less than about five lines per message, and postlogd's CPU is counted.
    cat >"$conf/main.cf" <<EOF
# written by bench/compare.sh
compatibility_level = 3.6
config_directory = $conf
queue_directory = $queue
data_directory = $data
meta_directory = $conf
daemon_directory = $PKGROOT/usr/lib/postfix/sbin
command_directory = $PKGROOT/usr/sbin
shlib_directory = $PKGROOT/usr/lib/postfix
manpage_directory = $PKGROOT/usr/share/man
sendmail_path = $PKGROOT/usr/sbin/sendmail
newaliases_path = $PKGROOT/usr/bin/newaliases
mailq_path = $PKGROOT/usr/bin/mailq
html_directory = no
readme_directory = no
sample_directory = no
mail_owner = nobody
default_privs = daemon
setgid_group = mail
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH
export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = postfix.bench.test
mydomain = bench.test
mydestination =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
local_transport = error:local delivery is disabled
relayhost = [127.0.0.1]:${SINK_PORT_OF[postfix]}
smtp_tls_security_level = none
smtpd_tls_cert_file = $CERT_FILE
smtpd_tls_key_file = $KEY_FILE
smtpd_tls_security_level = may
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $conf/sasl
smtpd_relay_restrictions = permit_sasl_authenticated, reject
EOF
    # No chroot (the n in the fifth column): a chroot would need copies of the libraries.
    cat >"$conf/master.cf" <<EOF
# written by bench/compare.sh: Debian's master.cf without chroot, smtpd on two private ports
127.0.0.1:$smtps inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
127.0.0.1:$submission inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt -o smtpd_tls_auth_only=yes
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
    cat >"$conf/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $conf/sasl/sasldb2
mech_list: PLAIN LOGIN
EOF
    : >"$conf/dynamicmaps.cf"
    mkdir -p "$conf/dynamicmaps.cf.d" "$conf/postfix-files.d"
    cp "$PKGROOT/etc/postfix/postfix-files" "$conf/"
    # the password in clear in the sasldb, as Cyrus's auxprop keeps it
    printf '%s' "$PASSWORD" | "$PKGROOT/usr/sbin/saslpasswd2" -p -c -f "$conf/sasl/sasldb2" \
        -u "${USER_NAME#*@}" "${USER_NAME%@*}"
    chmod 644 "$conf/sasl/sasldb2"
    export LD_LIBRARY_PATH=$PKGROOT/usr/lib/postfix
    # `postfix check` creates the queue directories (post-install create-missing); it warns
    # that OUT/root's postdrop is not set-gid, which nothing here uses.
    "$PKGROOT/usr/sbin/postfix" -c "$conf" check >"$dir/check.log" 2>&1 || {
        log "postfix check failed; see $dir/maillog"; exit 1; }
    # -d: stay in the foreground, so that this PID is the master's; setsid: its own session
    # and process group, which the master signals on TERM to take its children along.
    setsid "$PKGROOT/usr/lib/postfix/sbin/master" -c "$conf" -d >"$dir/master.out" 2>&1 &
    PID[postfix]=$!
    PIDS+=("${PID[postfix]}")
    unset LD_LIBRARY_PATH
    wait_listening "${PID[postfix]}" "$smtps" "$submission" || { log "Postfix did not start; see $dir/maillog"; exit 1; }
    SMTPS[postfix]=$smtps SUBMISSION[postfix]=$submission
}

# ---- one run ----

declare -A LABEL=([reuse]="reused connections, 2 KB" [new]="new TLS connection per message, 2 KB"
    [big]="reused connections, 100 KB" [starttls]="STARTTLS, reused connections, 2 KB")

scenario_args() { # scenario_args SCENARIO PEER: loadgen's options
    local common="--auth plain --user $USER_NAME --password $PASSWORD --from $USER_NAME -c $CLIENTS"
    local smtps=${SMTPS[$2]} submission=${SUBMISSION[$2]}
    case $1 in
        reuse) echo "--port $smtps --tls implicit $common --per-conn 0 --size 2048" ;;
        new) echo "--port $smtps --tls implicit $common --per-conn 1 --size 2048" ;;
        big) echo "--port $smtps --tls implicit $common --per-conn 0 --size 102400" ;;
        starttls) echo "--port $submission --tls starttls $common --per-conn 0 --size 2048" ;;
    esac
}

loadgen() { # loadgen JSON SECS ARGS...: one bounded run in the background, waited for
    local json=$1 secs=$2 lpid
    shift 2
    timeout $((secs + 60)) "$LOADGEN" --host 127.0.0.1 --insecure --timeout 10 --json \
        --duration "$secs" "$@" >"$json" 2>"${json%.json}.log" &
    lpid=$!
    PIDS+=("$lpid")
    wait "$lpid" || true
    forget_pid "$lpid"
}

run_one() { # run_one SCENARIO PEER ROUND
    local scen=$1 peer=$2 round=$3 base=$OUT/$1.$2.$3 sinklog=$OUT/sink-$2.log
    local pid=${PID[$2]} helper=0 args ok_w=0 ok_m c0 c1 h0 h1 t0 t1 got
    [[ $peer == nginx ]] && helper=$PID_nginx_auth
    read -r -a args <<<"$(scenario_args "$scen" "$peer")"
    : >"$sinklog" # the sink appends (O_APPEND): it goes on at the new end
    if ((WARMUP > 0)); then
        loadgen "$base.warmup.json" "$WARMUP" "${args[@]}"
        ok_w=$(jnum ok "$base.warmup.json")
        wait_sink "$sinklog" "${ok_w:-0}" >/dev/null
    fi
    c0=$(tree_ticks "$pid") h0=0
    ((helper)) && h0=$(tree_ticks "$helper")
    t0=$(now)
    loadgen "$base.json" "$DURATION" "${args[@]}"
    ok_m=$(jnum ok "$base.json")
    got=$(wait_sink "$sinklog" $((${ok_w:-0} + ${ok_m:-0})))
    t1=$(now)
    c1=$(tree_ticks "$pid") h1=0
    ((helper)) && h1=$(tree_ticks "$helper")
    awk -v OFS='\t' -v peer="$peer" -v scen="$scen" -v round="$round" -v c0="$c0" -v c1="$c1" \
        -v h0="$h0" -v h1="$h1" -v hz="$CLK_TCK" -v okw="${ok_w:-0}" -v okm="${ok_m:-0}" \
        -v got="$got" -v secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
        -v msgs="$(jnum msg_per_s "$base.json")" -v p50="$(jnum p50 "$base.json")" \
        -v p99="$(jnum p99 "$base.json")" -v failed="$(jnum failed "$base.json")" \
        -v json="$base.json" -v helper_on="$helper" 'BEGIN {
            cpu = okm ? (c1 - c0) / hz / okm * 1e6 : 0
            h = (helper_on && okm) ? sprintf("%.0f", (h1 - h0) / hz / okm * 1e6) : "-"
            print peer, scen, round, msgs + 0, p50 + 0, p99 + 0, okm, failed + 0,
                  sprintf("%.0f", cpu), h, okw + okm, got, okw + okm - got, secs, json
        }' >>"$RESULTS_TSV"
    log "[$(elapsed)s] round $round $scen $peer: $(jnum msg_per_s "$base.json") msg/s," \
        "p50 $(jnum p50 "$base.json") ms, p99 $(jnum p99 "$base.json") ms, failed" \
        "$(jnum failed "$base.json"); sink $got of $((${ok_w:-0} + ${ok_m:-0})) accepted"
}

# ---- main ----

main() {
    local peers=() p round i n s
    read -r -a peers <<<"$PEERS"
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    fetch_packages
    for p in "${peers[@]}"; do
        start_peer_sink "$p"
        "start_${p}_peer"
    done
    log "servers up (output in $OUT):$(for p in "${peers[@]}"; do
        echo -n " $p pid ${PID[$p]} smtps ${SMTPS[$p]} sink pid ${SINK_PID_OF[$p]}"; done)"
    n=${#peers[@]}
    for ((round = 1; round <= RUNS; round++)); do
        for s in $COMPARE_SCENARIOS; do
            for ((i = 0; i < n; i++)); do
                if over_budget; then log "MAX_SECS ($MAX_SECS) reached: no more runs"; break 3; fi
                run_one "$s" "${peers[(i + round - 1) % n]}" "$round"
            done
        done
    done
    stop_all
    {
        echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "source=$SOURCE_STATE"
        echo "machine=$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
        echo "cert=$CERT"
        echo "runs=$RUNS"
        echo "duration=$DURATION"
        echo "warmup=$WARMUP"
        echo "clients=$CLIENTS"
        echo "workers=$WORKERS"
        echo "scenarios=$COMPARE_SCENARIOS"
        echo "peers=$PEERS"
        for s in $COMPARE_SCENARIOS; do echo "label_$s=${LABEL[$s]}"; done
        for p in sluice nginx postfix; do echo "version_$p=${VERSION[$p]}"; done
        echo "out=$OUT"
    } >"$OUT/meta"
    "$PYTHON" "$ROOT/bench/compare_report.py" --meta "$OUT/meta" --results "$RESULTS_TSV" \
        ${CHART:+--chart "$CHART"}
}

main
