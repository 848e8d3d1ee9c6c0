#!/usr/bin/env bash
# bench/dkim_cost.sh: the cost of DKIM signing one relayed message (docs/benchmarks.md "DKIM
# signing (issue 13)"): instructions per dkim_sign() call under callgrind (independent of
# what else the machine runs) and microseconds per call, for RSA-2048, RSA-1024 and Ed25519
# keys made by `sluice dkim keygen`, over a 2 KB message. A message whose From: domain has
# no keys costs the From: lookup only (core/smtp/smtp_dkim.c returns before any hashing).
# Environment: BUILD (build), N (200 signatures per key under callgrind).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
N=${N:-200}
cmake --build "$BUILD" --target sluice sluice-dkim-bench >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BUILD/sluice" dkim keygen --domain example.org --selector r2048 --out "$tmp/r2048.key" >/dev/null 2>&1
"$BUILD/sluice" dkim keygen --domain example.org --selector r1024 --bits 1024 --out "$tmp/r1024.key" >/dev/null 2>&1
"$BUILD/sluice" dkim keygen --domain example.org --selector ed --algorithm ed25519 --out "$tmp/ed.key" >/dev/null 2>&1
echo "| key | instructions per signature | us per signature (this machine, not quiet) |"
echo "|---|---:|---:|"
for k in r2048 r1024 ed; do
    us=$("$BUILD/sluice-dkim-bench" "$tmp/$k.key" 2000 | sed 's/.*: \([0-9.]*\) us.*/\1/')
    valgrind --tool=callgrind --callgrind-out-file="$tmp/$k.cg" --toggle-collect=dkim_sign \
        "$BUILD/sluice-dkim-bench" "$tmp/$k.key" "$N" >/dev/null 2>&1
    ir=$(callgrind_annotate "$tmp/$k.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
    echo "| $k | $((ir / N)) | $us |"
done
