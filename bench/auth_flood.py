#!/usr/bin/env python3
"""bench/auth_flood.py: AUTH latency of a legitimate client while another address floods
AUTH (docs/security.md "AUTH floods"; docs/benchmarks.md "AUTH under a flood").

One sluice (build/sluice, 1 worker, auth.lua only, auth cache off, argon2id users: every
AUTH is a real check) relaying to a `sluice sink --discard`. Three phases, each DURATION
seconds, in one run, the order rotated over ROUNDS:
  quiet      the legitimate client alone (127.0.0.2): AUTH PLAIN on a new TLS connection,
             one after another
  flood      the same, while FLOODERS connections from 127.0.0.1 send wrong passwords as
             fast as they are answered (reconnecting after each 421), default limits
  unbounded  the same flood with the queue unbounded (max_auth_jobs = 1024,
             max_auth_jobs_per_client = 1024): what the daemon did before the bounds
Prints a markdown table: the legitimate client's AUTHs done, p50/p99 of the AUTH round
trip (the AUTH line to its reply), its failures (anything but 235), and the flood's
replies by code. Bounded in time (ROUNDS x 3 x DURATION plus start-up); stops only the
processes it started, and removes its scratch directory (KEEP=1 keeps it, with the logs).
Usage: python3 bench/auth_flood.py [DURATION] [ROUNDS] [FLOODERS]"""
import base64
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SLUICE = os.environ.get('SLUICE_BIN', str(ROOT / 'build' / 'sluice'))
DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 10
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
FLOODERS = int(sys.argv[3]) if len(sys.argv) > 3 else 32
CA = str(ROOT / 'certs' / 'dev-ca.crt')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(path, text, proc, limit=20):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors='replace'):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit('%s did not say %s:\n%s' % (path, text, path.read_text(errors='replace')[-2000:]))


def start(work, name, limits):
    d = work / name
    d.mkdir()
    port = free_port()
    conf = d / 'sluice.lua'
    conf.write_text("""return {
  workers = 1, users_dir = %r, log_level = 'notice', auth_cache_ttl = 0,
  listeners = { { name = 'smtps', address = '127.0.0.1', port = %d, tls = 'implicit' } },
  tls = { certificates = { { cert = %r, key = %r } } },
  upstreams = { default = { { host = '127.0.0.1', port = %d } } },
  policies = { %r }, lua_dir = %r,
  domains = { ['example.org'] = {} },
  limits = { %s },
}
""" % (str(work / 'users'), port, str(ROOT / 'certs' / 'dev-ecdsa.crt'),
       str(ROOT / 'certs' / 'dev-ecdsa.key'), SINK_PORT, str(ROOT / 'policies' / 'auth.lua'),
       str(ROOT / 'lua'), limits))
    err = d / 'sluice.err'
    proc = subprocess.Popen([SLUICE, 'run', '-c', str(conf)], stdout=subprocess.DEVNULL,
                            stderr=open(err, 'wb'))
    wait_for(err, '"daemon.ready"', proc)
    return proc, port


def auth_once(ctx, port, source, user, password):
    """One AUTH PLAIN on a new TLS connection; (code, seconds of the AUTH round trip)."""
    raw = socket.create_connection(('127.0.0.1', port), timeout=30,
                                   source_address=(source, 0))
    s = ctx.wrap_socket(raw, server_hostname='localhost')
    f = s.makefile('rb')
    try:
        f.readline()
        s.sendall(b'EHLO bench.test\r\n')
        while f.readline()[3:4] == b'-':
            pass
        line = b'AUTH PLAIN ' + base64.b64encode(('\0%s\0%s' % (user, password)).encode())
        t0 = time.monotonic()
        s.sendall(line + b'\r\n')
        reply = f.readline()
        return int(reply[:3] or 0), time.monotonic() - t0
    finally:
        try:
            s.close()
        except OSError:
            pass


def legit(ctx, port, stop, out):
    while not stop.is_set():
        try:
            out.append(auth_once(ctx, port, '127.0.0.2', 'bob@example.org', 'bob-secret'))
        except (OSError, ValueError):
            out.append((0, 0.0))


def flooder(ctx, port, stop, codes, lock):
    while not stop.is_set():
        try:
            raw = socket.create_connection(('127.0.0.1', port), timeout=30)
            s = ctx.wrap_socket(raw, server_hostname='localhost')
            f = s.makefile('rb')
            f.readline()
            s.sendall(b'EHLO flood.test\r\n')
            while f.readline()[3:4] == b'-':
                pass
            line = b'AUTH PLAIN ' + base64.b64encode(b'\0alice@example.org\0wrong') + b'\r\n'
            while not stop.is_set():
                s.sendall(line)
                reply = f.readline()
                with lock:
                    codes[reply[:3].decode() or 'closed'] = codes.get(reply[:3].decode()
                                                                      or 'closed', 0) + 1
                if not reply or reply.startswith(b'421'):
                    break
            s.close()
        except (OSError, ValueError):
            with lock:
                codes['error'] = codes.get('error', 0) + 1


def phase(ctx, port, flood):
    stop = threading.Event()
    samples, codes, lock = [], {}, threading.Lock()
    threads = [threading.Thread(target=legit, args=(ctx, port, stop, samples))]
    if flood:
        threads += [threading.Thread(target=flooder, args=(ctx, port, stop, codes, lock))
                    for _ in range(FLOODERS)]
    for t in threads[1:]:
        t.start()
    time.sleep(0.5 if flood else 0)  # the flood is under way before the first sample
    threads[0].start()
    time.sleep(DURATION)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    return samples, codes


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else 0


def main():
    global SINK_PORT
    ctx = ssl.create_default_context(cafile=CA)
    work = pathlib.Path(tempfile.mkdtemp(prefix='sluice-authflood-'))
    os.chmod(work, 0o755)
    (work / 'users').mkdir()
    lines = []
    for user, pw in (('alice', 'alice-secret'), ('bob', 'bob-secret')):
        h = subprocess.run([SLUICE, 'passwd', '-s', 'argon2id'], input=pw + '\n', text=True,
                           capture_output=True, check=True).stdout.strip()
        lines.append('%s:%s\n' % (user, h))
    (work / 'users' / 'example.org.txt').write_text(''.join(lines))
    SINK_PORT = free_port()
    sink = subprocess.Popen([SLUICE, 'sink', '--listen', '127.0.0.1:%d' % SINK_PORT,
                             '--discard'], stdout=subprocess.DEVNULL,
                            stderr=open(work / 'sink.err', 'wb'))
    procs = [sink]
    try:
        bounded, bport = start(work, 'bounded', '')
        procs.append(bounded)
        unbounded, uport = start(work, 'unbounded',
                                 'max_auth_jobs = 1024, max_auth_jobs_per_client = 1024')
        procs.append(unbounded)
        runs = {'quiet': ([], {}), 'flood': ([], {}), 'unbounded': ([], {})}
        order = [('quiet', bport, False), ('flood', bport, True), ('unbounded', uport, True)]
        for r in range(ROUNDS):
            for name, port, flood in order[r % 3:] + order[:r % 3]:
                samples, codes = phase(ctx, port, flood)
                runs[name][0].extend(samples)
                for k, v in codes.items():
                    runs[name][1][k] = runs[name][1].get(k, 0) + v
        print('| phase | legit AUTHs | p50 ms | p99 ms | legit failures | flood replies |')
        print('|---|---|---|---|---|---|')
        for name in ('quiet', 'flood', 'unbounded'):
            samples, codes = runs[name]
            ok = [t for c, t in samples if c == 235]
            bad = len(samples) - len(ok)
            print('| %s | %d | %.1f | %.1f | %d | %s |' % (
                name, len(samples), pct(ok, 50) * 1000, pct(ok, 99) * 1000, bad,
                ', '.join('%s: %d' % kv for kv in sorted(codes.items())) or '-'))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get('KEEP') is None:
            shutil.rmtree(work, ignore_errors=True)  # its logs too; KEEP=1 keeps them


if __name__ == '__main__':
    main()
