"""bench/compare.sh, smoke test (docs/benchmarks.md, "sluice beside Postfix and the nginx
mail proxy"): with `--only sluice` and one round of one second per scenario it starts a
sluice and its counting sink, runs the three scenarios, prints the table with what the
sink received, and stops what it started. Postfix and nginx (Debian packages fetched at
run time) are not part of the test: the benchmark is rerun by hand.

It runs the plain build's binaries (build/sluice and build/sluice-loadgen, which `make
integration` builds), as the benchmark does, whatever SLUICE_BIN says. About 10 s.

Run: /usr/bin/python3 -m pytest tests/integration/test_bench_compare.py
"""
import os
import re
import subprocess

import pytest

from conftest import ROOT

SCRIPT = ROOT / 'bench' / 'compare.sh'
BUILD = ROOT / 'build'
LABELS = {'reuse': 'reused connections, 2 KB', 'new': 'new TLS connection per message, 2 KB',
          'big': 'reused connections, 100 KB'}


def compare(out, *args, **env):
    e = dict(os.environ, OUT=str(out), BUILD=str(BUILD), RUNS='1', DURATION='1', WARMUP='0',
             CHART='', **env)
    return subprocess.run(['bash', str(SCRIPT), *args], env=e, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope='module')
def sluice_only(tmp_path_factory):
    for f in ('sluice', 'sluice-loadgen'):
        assert (BUILD / f).exists(), 'bench/compare.sh needs build/%s (make build)' % f
    out = tmp_path_factory.mktemp('compare')
    return out, compare(out, '--only', 'sluice')


def median_rows(stdout):
    """{scenario label: [cells]} of the medians table's sluice rows."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if len(cells) == 9 and cells[1].startswith('sluice'):
            rows[cells[0]] = cells
    return rows


def test_sluice_alone_relays_every_scenario_and_the_sink_gets_every_message(sluice_only):
    out, r = sluice_only
    assert r.returncode == 0, r.stderr
    rows = median_rows(r.stdout)
    assert set(rows) == set(LABELS.values()), r.stdout
    for label, cells in rows.items():
        msgs, lost, failed = cells[2], cells[7], cells[8]
        assert float(msgs.replace(' ', '')) > 0, label
        m = re.fullmatch(r'(-?[\d ]+) of ([\d ]+)', lost)
        assert m and int(m.group(1).replace(' ', '')) == 0, (label, lost)
        assert int(m.group(2).replace(' ', '')) > 0, (label, lost)
        assert failed == '0', label
    # one line per run: what the sink counted equals what loadgen had accepted
    runs = [line.split('\t') for line in (out / 'results.tsv').read_text().splitlines()]
    assert sorted(r[1] for r in runs) == sorted(LABELS)
    for run in runs:
        accepted, received = int(run[10]), int(run[11])
        assert accepted > 0 and received == accepted, run


def test_the_server_serves_the_one_certificate_it_was_given(sluice_only):
    out, _ = sluice_only
    conf = (out / 'sluice.lua').read_text()
    assert 'dev-rsa.crt' in conf and 'dev-ecdsa' not in conf


def test_every_process_it_started_is_gone_when_it_ends(sluice_only):
    out, r = sluice_only
    line = re.search(r'servers up .*', r.stderr)
    assert line, r.stderr
    pids = [int(p) for p in re.findall(r'pid (\d+)', line.group(0))]
    assert len(pids) == 2, line.group(0)  # sluice and its sink
    for pid in pids:
        try:
            cmdline = open('/proc/%d/cmdline' % pid, 'rb').read()
        except FileNotFoundError:
            continue
        assert str(out).encode() not in cmdline, 'pid %d still runs' % pid


def test_an_unknown_server_is_refused_before_anything_starts(tmp_path):
    r = compare(tmp_path, '--only', 'sluice,exim')
    assert r.returncode == 2
    assert 'unknown server exim' in r.stderr
    assert not (tmp_path / 'sluice.lua').exists()
