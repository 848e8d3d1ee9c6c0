#!/bin/sh
# .ci/readme_smoke.sh: the README's first command, used as the README says. Starts
# `./dev.sh run` in the background, waits for sluice's daemon.ready line, sends the
# README's two swaks examples (taken from README.md itself, so the text is what is
# tested), checks that both messages reached run/maildir/new/, then stops sluice with TERM
# by PID and checks that `./dev.sh run` exited 0 and took the sink down with it.
# .ci/run runs it in the fresh root after the tests; it works wherever `./dev.sh run` does.
# Every wait is bounded: READY_SECS (default 900, enough to build from scratch) for the
# start, 60 s for the rest.
set -u
cd "$(dirname "$0")/.."
ready_secs=${READY_SECS:-900}
log=$(mktemp /tmp/readme-run.XXXXXX)
job=
fail() {
    echo "readme_smoke: FAIL: $*"
    echo "--- last lines of ./dev.sh run:"
    tail -40 "$log"
    [ -n "$job" ] && kill -TERM "$job" 2>/dev/null
    exit 1
}
count_new() { ls run/maildir/new 2>/dev/null | wc -l; }

# until SECS CMD...: poll CMD every 0.1 s for at most SECS seconds.
until_ok() {
    n=$(($1 * 10)); shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        n=$((n - 1))
        sleep 0.1
    done
    return 1
}
is_ready() {
    grep -q '"event":"daemon.ready"' "$log" && return 0
    kill -0 "$job" 2>/dev/null || fail "./dev.sh run exited before daemon.ready"
    return 1
}
is_gone() { ! kill -0 "$1" 2>/dev/null; }
has_new() { [ "$(count_new)" -ge "$1" ]; }

before=$(count_new)
./dev.sh run >"$log" 2>&1 &
job=$!
until_ok "$ready_secs" is_ready || fail "no daemon.ready within ${ready_secs}s"
pid=$(sed -n 's/.*"event":"daemon.ready".*"msg":"pid \([0-9]*\),.*/\1/p' "$log" | head -1)
[ -n "$pid" ] || fail "no pid in the daemon.ready line"
echo "readme_smoke: daemon.ready, sluice pid $pid"

# The README's swaks examples: each `swaks` line with its backslash continuations.
awk '/^swaks / { cmd = 1 } cmd { print } cmd && !/\\$/ { cmd = 0; print "" }' README.md \
    > "$log.swaks"
[ "$(grep -c '^swaks ' "$log.swaks")" -eq 2 ] || fail "README.md has not two swaks examples"
sh -e "$log.swaks" >"$log.client" 2>&1 || { cat "$log.client"; fail "a swaks example failed"; }
until_ok 10 has_new $((before + 2)) || fail "$(count_new) messages in run/maildir/new, want $((before + 2))"
echo "readme_smoke: both swaks examples delivered to run/maildir/new/"

sink=$(cat run/sink.pid)
kill -TERM "$pid"
until_ok 60 is_gone "$job" || fail "./dev.sh run still running 60s after TERM to sluice"
wait "$job"
status=$?
job=
[ "$status" -eq 0 ] || fail "./dev.sh run exited $status after TERM"
until_ok 10 is_gone "$sink" || fail "the sink (pid $sink) outlived ./dev.sh run"
rm -f "$log" "$log.swaks" "$log.client"
echo "readme_smoke: ok: ./dev.sh run started, relayed both README examples, stopped on TERM"
