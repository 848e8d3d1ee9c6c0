#!/bin/bash
# tests/fuzz/run_all.sh FUZZ_DIR SECS: every fuzzer in FUZZ_DIR (fuzz_*, not *.log) for SECS
# seconds each from its seeds in tests/fuzz/corpus/<name without fuzz_>/ (what it finds on
# the way is dropped), as many at once as there are CPUs: `make fuzz-run`. A fuzzer that
# fails (a crash, a leak, an input over 10 s) prints the end of its log, FUZZ_DIR/NAME.log;
# the exit status is 1 when any failed. Bounded: each run is -max_total_time=SECS.
set -uo pipefail
dir=$1 secs=$2
jobs=$(nproc 2>/dev/null || echo 1)
failed=0
declare -A running=() # pid -> name
n=0 # how many run

# reap_one: wait for one running fuzzer; report it when it failed
reap_one() {
    local pid rc
    wait -n -p pid
    rc=$?
    if ((rc != 0)); then
        echo "fuzz: ${running[$pid]} FAILED (exit $rc):"
        tail -40 "$dir/${running[$pid]}.log"
        failed=1
    fi
    rm -rf "tests/fuzz/corpus/${running[$pid]#fuzz_}-run"
    unset "running[$pid]"
    n=$((n - 1))
}

for f in "$dir"/fuzz_*; do
    case $f in *.log) continue ;; esac
    name=$(basename "$f")
    corpus=tests/fuzz/corpus/${name#fuzz_}
    mkdir -p "$corpus-run"
    while ((n >= jobs)); do reap_one; done
    echo "fuzz: $name for ${secs}s"
    "$f" -max_total_time="$secs" -timeout=10 -print_final_stats=0 "$corpus-run" "$corpus" \
        >"$dir/$name.log" 2>&1 &
    running[$!]=$name
    n=$((n + 1))
done
while ((n > 0)); do reap_one; done
exit $failed
