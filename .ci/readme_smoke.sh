#!/bin/sh
# .ci/readme_smoke.sh: the README's first command, used as the README says. Starts
# `./dev.sh run` in the background, waits for sluice's daemon.ready line, sends the
# README's two swaks examples (taken from README.md itself, so the text is what is
# tested), checks that both messages reached run/maildir/new/ and run/audit/audit.log, then
# stops sluice with TERM by PID and checks that `./dev.sh run` exited 0 and took the sink
# down with it. On the way: a second `./dev.sh run` beside the first fails clearly and
# leaves the first alone (it used to kill the first one's sink); the examples verify the
# certificate (--tls-verify); Ctrl-C (INT to the whole process group) stops a run
# without complaints; and, where the fuzzers are built (CI, after ./dev.sh test), a
# second fuzz run passes (the README's test command, run twice in one tree).
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
    # the daemon of the run under way (TERM drains and stops it, and its make the sink)
    daemon=$(sed -n 's/.*"event":"daemon.ready".*"msg":"pid \([0-9]*\),.*/\1/p' "$log" | head -1)
    [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null
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
audit_before=$(cat run/audit/audit.log 2>/dev/null | wc -l)
./dev.sh run >"$log" 2>&1 &
job=$!
until_ok "$ready_secs" is_ready || fail "no daemon.ready within ${ready_secs}s"
pid=$(sed -n 's/.*"event":"daemon.ready".*"msg":"pid \([0-9]*\),.*/\1/p' "$log" | head -1)
[ -n "$pid" ] || fail "no pid in the daemon.ready line"
echo "readme_smoke: daemon.ready, sluice pid $pid"
sink=$(cat run/sink.pid)

# A second `./dev.sh run` while the first runs: it must say so and exit non-zero, and the
# first one's sink and daemon must live on (the examples below go through them).
second=0
timeout 120 ./dev.sh run >"$log.second" 2>&1 || second=$?
[ "$second" -ne 0 ] && [ "$second" -ne 124 ] || { cat "$log.second"; fail "a second ./dev.sh run exited $second"; }
grep -q 'make run: already running' "$log.second" || { cat "$log.second"; fail "a second ./dev.sh run did not say why it failed"; }
kill -0 "$sink" 2>/dev/null || fail "a second ./dev.sh run killed the first one's sink"
kill -0 "$pid" 2>/dev/null || fail "a second ./dev.sh run stopped the first sluice"
echo "readme_smoke: a second ./dev.sh run failed clearly and left the first alone"

# The README's swaks examples: each `swaks` line with its backslash continuations.
awk '/^swaks / { cmd = 1 } cmd { print } cmd && !/\\$/ { cmd = 0; print "" }' README.md \
    > "$log.swaks"
[ "$(grep -c '^swaks ' "$log.swaks")" -eq 2 ] || fail "README.md has not two swaks examples"
[ "$(grep -c -- '--tls-verify' "$log.swaks")" -eq 2 ] || fail "a README swaks example does not verify the certificate (--tls-verify)"
sh -e "$log.swaks" >"$log.client" 2>&1 || { cat "$log.client"; fail "a swaks example failed"; }
until_ok 10 has_new $((before + 2)) || fail "$(count_new) messages in run/maildir/new, want $((before + 2))"
echo "readme_smoke: both swaks examples delivered to run/maildir/new/"
has_audit() { [ "$(cat run/audit/audit.log 2>/dev/null | wc -l)" -ge $((audit_before + 4)) ]; }
until_ok 10 has_audit || fail "run/audit/audit.log has not the two AUTHs and two messages"
tail -n 4 run/audit/audit.log | grep -q '"alice@example.org"' || fail "no alice@example.org in run/audit/audit.log"
tail -n 4 run/audit/audit.log | grep -q '"carol@example.net"' || fail "no carol@example.net in run/audit/audit.log"
echo "readme_smoke: run/audit/audit.log has both AUTHs and both messages"

kill -TERM "$pid"
until_ok 60 is_gone "$job" || fail "./dev.sh run still running 60s after TERM to sluice"
wait "$job"
status=$?
job=
[ "$status" -eq 0 ] || fail "./dev.sh run exited $status after TERM"
until_ok 10 is_gone "$sink" || fail "the sink (pid $sink) outlived ./dev.sh run"

# Ctrl-C: INT to the whole process group of a new `./dev.sh run` (as a terminal sends it).
setsid -w ./dev.sh run >"$log" 2>&1 &
job=$!
until_ok 120 is_ready || fail "no daemon.ready within 120s (second start)"
sink=$(cat run/sink.pid)
group=$(ps -o pgid= -p "$sink" | tr -d ' ')  # setsid may have forked: the sink's group
[ -n "$group" ] && [ "$group" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] || fail "no process group of its own"
kill -INT "-$group"   # dash: no "--" before a negative pid
until_ok 60 is_gone "$job" || fail "./dev.sh run still running 60s after Ctrl-C"
wait "$job"
job=
until_ok 10 is_gone "$sink" || fail "the sink (pid $sink) outlived Ctrl-C"
if grep -q 'No such file' "$log"; then fail "Ctrl-C: a complaint about a missing file"; fi
echo "readme_smoke: Ctrl-C stopped sluice and the sink quietly"

# The fuzz loop once more, as a second `./dev.sh test` in this tree would run it: its
# glob once took its own .log files for targets.
if [ -d build-fuzz ] && ls build-fuzz/fuzz_*.log >/dev/null 2>&1; then
    ./dev.sh fuzz-run FUZZ_SECS=1 >"$log" 2>&1 || fail "a second fuzz run failed"
    echo "readme_smoke: a second fuzz run passed"
fi
rm -f "$log" "$log.swaks" "$log.client" "$log.second"
echo "readme_smoke: ok: ./dev.sh run started, relayed both README examples, stopped on TERM"
