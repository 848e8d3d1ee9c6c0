#!/usr/bin/python3
"""bench/xclient_cost.py: what XCLIENT and XFORWARD cost (docs/benchmarks.md
"XCLIENT/XFORWARD (issue 13)"), in instructions and in upstream commands, which unlike
time do not depend on what else the machine runs.

For each variant it starts sluice (BUILD, 1 worker) under valgrind's callgrind, with a
real Postfix upstream (tests/integration/postfix_server.py: the .deb `make deps` fetched,
as root) relaying on to a `sluice sink`, sends N messages from 127.0.0.7 over implicit
TLS + AUTH PLAIN, either one client session per message (`new`: every message has a new
client, the worst case for XCLIENT on a reused upstream connection) or all in one session
(`same`), stops sluice and reports:
  upstream Ir/msg   inclusive instructions of core/relay/upstream.c's entry points
                    (upstream_conn_cb, upstream_transact, upstream_kick_cb) per message;
  commands/msg      Postfix's own count of the commands it got (its disconnect line:
                    ehlo=, xclient=, xforward=, mail=, rcpt=, bdat=, rset=), per message;
  round trips/msg   upstream replies sluice waited for per message (XCLIENT, its EHLO,
                    the pipelined envelope, the message), from those counts.
    sudo bench/xclient_cost.py            # N=200
Environment: N (200), BUILD (build)."""
import os
import pathlib
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests' / 'integration'))
BUILD = pathlib.Path(os.environ.get('BUILD', ROOT / 'build')).resolve()
os.environ['SLUICE_BIN'] = str(BUILD / 'sluice')
import conftest  # noqa: E402
from postfix_server import PostfixServer  # noqa: E402

N = int(os.environ.get('N', '200'))
ENTRY = re.compile(r'^upstream_(conn_cb|transact|kick_cb)$')


def setup(tmp):
    certs = tmp / 'certs'
    certs.mkdir()
    subprocess.run(['sh', str(ROOT / 'certs' / 'gen-dev-certs.sh'), str(certs)], check=True,
                   capture_output=True)
    users = tmp / 'users'
    users.mkdir()
    h = subprocess.run([conftest.SLUICE, 'passwd', '-s', 'sha512'], input='alice-pw\n',
                       text=True, capture_output=True, check=True).stdout.strip()
    (users / 'example.org.txt').write_text('alice:%s\n' % h)
    return certs, users


def ir_of(profile):
    out = subprocess.run(['callgrind_annotate', '--inclusive=yes', '--threshold=100',
                          str(profile)], capture_output=True, text=True).stdout
    total = 0
    for line in out.splitlines():
        m = re.match(r'\s*([\d,]+) .*:([A-Za-z0-9_]+) \[', line)
        if m and ENTRY.match(m.group(2)):
            total += int(m.group(1).replace(',', ''))
    return total


def client(relay):
    c = smtplib.SMTP_SSL(relay.host, relay.smtps_port, local_hostname='laptop.example.org',
                         context=relay.tls_context(), timeout=60,
                         source_address=('127.0.0.7', 0))
    c.ehlo()
    c.login('alice@example.org', 'alice-pw')
    return c


def run(tmp, certs, users, label, xclient, mode, postfix_kw):
    d = tmp / label
    d.mkdir()
    (d / 'sink').mkdir()
    sink = conftest.Sink(d / 'sink')
    pf = PostfixServer(d / 'postfix', sink.port, **postfix_kw)
    cg = d / 'cg'
    cg.mkdir()
    os.chmod(cg, 0o1777)
    real = conftest.SLUICE
    wrapper = d / 'sluice-cg'
    wrapper.write_text('#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/'
                       'callgrind.%%p %s "$@"\n' % (cg, real))
    wrapper.chmod(0o755)
    conftest.SLUICE = str(wrapper)
    try:
        (d / 'relay').mkdir()
        relay = conftest.Relay(d / 'relay', certs,
                               users, conftest.upstream_conf(
                                   pf.port, extra=', xclient = %s' % xclient))
    finally:
        conftest.SLUICE = real
    # valgrind made the profiles at start, as root, mode 0600: the daemon writes its own at
    # exit as the service user (conf `user`, default sluice), as bench/policy_instr.sh says
    for p in cg.glob('callgrind.*'):
        shutil.chown(p, 'sluice')
    body = b'Subject: x\r\n\r\n' + b'hello\r\n' * 30
    if mode == 'same':
        c = client(relay)
        for _ in range(N):
            c.sendmail('alice@example.org', ['rcpt@example.com'], body)
        c.quit()
    else:
        for _ in range(N):
            c = client(relay)
            c.sendmail('alice@example.org', ['rcpt@example.com'], body)
            c.quit()
    rc = conftest.stop(relay.proc, timeout=300)  # callgrind writes its profile at exit
    assert rc == 0, 'sluice exited %s' % rc
    pf.wait_log(r'disconnect from \S+ ehlo=')
    counts = {}
    for m in re.finditer(r'disconnect from \S+ (ehlo=.*)', pf.log_text()):
        for k, v in re.findall(r'(\w+)=(?:\d+/)?(\d+)', m.group(1)):
            counts[k] = counts.get(k, 0) + int(v)
    pf.stop()
    sink.stop()
    prof = max(cg.glob('callgrind.*'), key=lambda p: p.stat().st_size)
    return ir_of(prof) / N, counts


def main():
    if os.geteuid() != 0:
        sys.exit('xclient_cost.py: Postfix runs only as root')
    tmp = pathlib.Path(tempfile.mkdtemp(prefix='sluice-xclient-cost-'))
    os.chmod(tmp, 0o711)  # the daemon writes its profile as the service user
    certs, users = setup(tmp)
    variants = [
        ('off, new client per message', 'false', 'new', {}),
        ('XCLIENT, new client per message', 'true', 'new', {}),
        ('XFORWARD, new client per message', 'true', 'new', {'xclient_hosts': ''}),
        ('off, one client session', 'false', 'same', {}),
        ('XCLIENT, one client session', 'true', 'same', {}),
    ]
    print('| variant (N=%d, 1 worker, reused upstream connection) | upstream Ir/msg | '
          'commands/msg | upstream round trips/msg |' % N)
    print('|---|---:|---|---:|')
    for i, (label, x, mode, kw) in enumerate(variants):
        ir, counts = run(tmp, certs, users, 'v%d' % i, x, mode, kw)
        per = ', '.join('%s %.2f' % (k, counts[k] / N) for k in
                        ('xclient', 'xforward', 'ehlo', 'rset', 'mail', 'rcpt', 'bdat', 'data')
                        if counts.get(k))
        rtt = (counts.get('xclient', 0) + counts.get('ehlo', 0) + counts.get('mail', 0) +
               counts.get('bdat', 0) + counts.get('data', 0)) / N
        print('| %s | %d | %s | %.2f |' % (label, ir, per, rtt), flush=True)


if __name__ == '__main__':
    main()
