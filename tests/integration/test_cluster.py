"""Three sluice nodes behind a real HAProxy, sharing limits, blocks and the token deny-list
in a real Redis, relaying to one upstream: the deployment of docs/deployment.md "Several
nodes behind HAProxy with Redis", run from dist/cluster/ as it is (node1.lua .. node3.lua,
haproxy.cfg, redis.conf, redis.pass), all on loopback: each node on its own address
(127.0.1.1-3), HAProxy on 127.0.1.10, Redis on 127.0.1.20, the upstream on 127.0.1.30.

  * a per-user limit of N per hour holds across nodes: attempt N+1 is refused whichever
    node it reaches;
  * a deny made on node 1 (`sluice ctl token deny`) is enforced on nodes 2 and 3 within a
    second;
  * with Redis stopped mid-run every node keeps serving within its local limits, and
    says so in its log;
  * killing one node mid-traffic loses no message that got 250.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_cluster.py
"""
import json
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time

import pytest

from bearer import INVALID, OK, xoauth2
from conftest import (ALICE, PASSWORDS, ROOT, SLUICE, assert_no_sanitizer_report, stop,
                      wait_for_line, wait_until)

CLUSTER = ROOT / 'dist' / 'cluster'
HAPROXY = '127.0.1.10'
SMTPS = 10465
NODES = (1, 2, 3)
LIMIT = 5            # domains['example.org'].limits.user_messages_per_hour in node*.lua
CAROL = 'carol@example.net'
CLIENT = '127.0.2.1'  # the clients' own source address: their sessions, not HAProxy's checks


class Cluster:
    def __init__(self, d, certs, users_dir):
        self.dir = d
        for f in CLUSTER.iterdir():
            shutil.copy(f, d / f.name)
        for sub in ('run', 'audit', 'tls', 'tokens'):
            (d / sub).mkdir()
        shutil.copy(certs / 'dev-rsa.crt', d / 'tls' / 'fullchain.pem')
        shutil.copy(certs / 'dev-rsa.key', d / 'tls' / 'privkey.pem')
        shutil.copy(certs / 'dev-ecdsa.crt', d / 'tls' / 'ecdsa-fullchain.pem')
        shutil.copy(certs / 'dev-ecdsa.key', d / 'tls' / 'ecdsa-privkey.pem')
        shutil.copytree(users_dir, d / 'users')
        os.symlink(ROOT / 'lua', d / 'lua')
        os.symlink(ROOT / 'policies', d / 'policies')
        subprocess.run([SLUICE, 'token', '--init', '--dir', str(d / 'tokens')],
                       capture_output=True, check=True)
        self.cafile = str(certs / 'dev-ca.crt')
        self.procs = {}
        try:
            self.start_all()
        except BaseException:
            self.stop_all()
            raise

    def start_all(self):
        d = self.dir
        self.start_redis()
        self.start('sink', [SLUICE, 'sink', '--listen', '127.0.1.30:10025', '--maildir',
                            str(d / 'maildir'), '--no-fsync'], r'sink listening on')
        for n in NODES:
            self.start_node(n)
        self.start('haproxy', [shutil.which('haproxy') or '/usr/sbin/haproxy', '-db', '-f',
                               str(d / 'haproxy.cfg')], None)
        wait_until(lambda: self.listening(HAPROXY, SMTPS), 'haproxy listening', timeout=10)

    def start(self, name, cmd, ready):
        err = self.dir / (name + '.err')
        self.procs[name] = subprocess.Popen(cmd, cwd=self.dir, stdout=subprocess.DEVNULL,
                                            stderr=open(err, 'wb'))
        if ready:
            wait_for_line(err, ready, self.procs[name])

    def start_redis(self):
        self.start('redis', ['/usr/bin/redis-server', str(self.dir / 'redis.conf')], None)
        wait_until(lambda: self.listening('127.0.1.20', 16379), 'redis listening', timeout=10)

    def start_node(self, n):
        self.start('node%d' % n, [SLUICE, 'run', '-c', str(self.dir / ('node%d.lua' % n))],
                   r'"event":"daemon.ready"')

    def listening(self, host, port):
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            return False

    def logs(self, n, event):
        out = []
        for line in (self.dir / ('node%d.err' % n)).read_text(errors='replace').splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get('event') == event:
                out.append(obj)
        return out

    def served(self, n):
        """How many client sessions node n opened (HAProxy's checks come from HAProxy)."""
        return len([o for o in self.logs(n, 'session.open') if o.get('ip') == CLIENT])

    def tls(self):
        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.check_hostname = False  # HAProxy's address is not in the dev certificate
        return ctx

    def client(self, login=ALICE):
        c = smtplib.SMTP_SSL(HAPROXY, SMTPS, local_hostname='client.test', context=self.tls(),
                             timeout=20, source_address=(CLIENT, 0))
        c.ehlo()
        if login:
            c.login(login, PASSWORDS[login])
        return c

    def send(self, user=ALICE, subject='t'):
        """One message on a new connection: 250, or the code MAIL FROM or DATA refused."""
        c = self.client(user)
        msg = ('From: <%s>\r\nSubject: %s\r\n\r\nhello\r\n' % (user, subject)).encode()
        try:
            c.sendmail(user, ['bob@example.org'], msg)
            return 250
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
            return e.smtp_code
        finally:
            c.close()

    def ctl(self, n, *args):
        return subprocess.run([SLUICE, 'ctl', '-s', str(self.dir / 'run' / ('node%d.ctl' % n))]
                              + list(args), capture_output=True, text=True, timeout=20)

    def stored_subjects(self):
        out = set()
        new = self.dir / 'maildir' / 'new'
        for f in new.iterdir() if new.exists() else ():
            for line in f.read_bytes().split(b'\r\n'):
                if line.startswith(b'Subject: '):
                    out.add(line[9:].decode())
        return out

    def stop_all(self):
        for name in ('haproxy', 'node1', 'node2', 'node3', 'sink', 'redis'):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                stop(p)


@pytest.fixture
def cluster(tmp_path, certs, users_dir):
    c = Cluster(tmp_path, certs, users_dir)
    yield c
    c.stop_all()
    for n in NODES:
        assert_no_sanitizer_report((tmp_path / ('node%d.err' % n)).read_text(errors='replace'),
                                   'node%d' % n)


def test_a_per_user_limit_holds_across_nodes(cluster):
    codes = [cluster.send(ALICE) for _ in range(LIMIT + 3)]
    assert codes == [250] * LIMIT + [451] * 3
    # round robin: every node took part, and each refused at least one attempt
    assert sorted(cluster.served(n) for n in NODES) == [2, 3, 3]
    refusals = [len([o for o in cluster.logs(n, 'smtp.reject') if o.get('code') == 451])
                for n in NODES]
    assert sum(refusals) == 3 and all(r >= 1 for r in refusals), refusals


def token_auth(cluster, token):
    c = cluster.client(login=None)
    code, text = c.docmd('AUTH', 'XOAUTH2 ' + xoauth2(ALICE, token))
    if code == 334:
        code, text = c.docmd('')
    c.close()
    return code, text


def test_a_deny_on_node_1_holds_on_every_node(cluster):
    token = subprocess.run([SLUICE, 'token', '-c', str(cluster.dir / 'node1.lua'), '--key',
                            str(cluster.dir / 'tokens' / 'dev-token.key'), ALICE],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert [token_auth(cluster, token) for _ in NODES] == [OK] * 3
    body = token.split('.')[1]
    jti = json.loads(__import__('base64').urlsafe_b64decode(body + '=' * (-len(body) % 4)))['jti']
    p = cluster.ctl(1, 'token', 'deny', 'jti', jti)
    assert p.returncode == 0, p.stderr
    denied_at = time.monotonic()
    assert [token_auth(cluster, token) for _ in NODES] == [INVALID] * 3
    assert time.monotonic() - denied_at < 1.0
    refused = [[o for o in cluster.logs(n, 'oauth2.refuse') if o.get('denied_by') == 'jti']
               for n in NODES]
    assert all(len(r) == 1 for r in refused), refused


def test_without_redis_every_node_serves_within_its_local_limits(cluster):
    assert [cluster.send(ALICE) for _ in range(2)] == [250, 250]
    cluster.procs['redis'].terminate()
    cluster.procs['redis'].wait(timeout=10)
    # each node now counts alice alone, from zero: LIMIT per node, no more
    codes = [cluster.send(ALICE) for _ in range(3 * (LIMIT + 1))]
    assert sorted(codes) == [250] * (3 * LIMIT) + [451] * 3, codes
    for n in NODES:
        assert cluster.logs(n, 'redis.down'), 'node%d did not log redis.down' % n
        assert any(o['zone'] == 'limits' for o in cluster.logs(n, 'zone.fallback'))
    # Redis back: the nodes connect again and count together
    cluster.start_redis()
    wait_until(lambda: cluster.send(CAROL) == 250 and
               all(cluster.logs(n, 'redis.up') for n in NODES), 'every node uses Redis again',
               timeout=30)


def test_killing_a_node_mid_traffic_loses_no_accepted_message(cluster):
    results = {}
    lock = threading.Lock()
    killed = threading.Event()

    def sender(k):
        for i in range(20):
            subject = 's%d-%d' % (k, i)
            try:
                code = cluster.send(CAROL, subject)
            except (smtplib.SMTPException, OSError) as e:
                code = type(e).__name__  # cut off before any 250: allowed
            with lock:
                results[subject] = code
                if len(results) == 15 and not killed.is_set():
                    killed.set()
                    os.kill(cluster.procs['node2'].pid, signal.SIGKILL)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert killed.is_set() and len(results) == 60
    accepted = {s for s, code in results.items() if code == 250}
    # every message a client saw 250 for is at the upstream, whichever node took it
    wait_until(lambda: accepted <= cluster.stored_subjects(), 'every accepted message stored')
    assert all(code == 250 or code in (421, 451, 454) or isinstance(code, str)
               for code in results.values()), results
    # the other nodes carried on: most messages went through
    assert len(accepted) >= 45, results


def test_the_docs_show_the_files_as_they_are():
    """docs/deployment.md shows node1.lua, haproxy.cfg and redis.conf in full; node2.lua
    and node3.lua are node1.lua with the node's number and address."""
    docs = (ROOT / 'docs' / 'deployment.md').read_text()
    for name in ('node1.lua', 'haproxy.cfg', 'redis.conf'):
        marker = docs.index('<!-- dist/cluster/%s' % name)
        start = docs.index('\n', docs.index('```', marker)) + 1
        block = docs[start:docs.index('```\n', start)]
        assert block == (CLUSTER / name).read_text(), name
    one = (CLUSTER / 'node1.lua').read_text()
    for n in (2, 3):
        expected = (one.replace('node1', 'node%d' % n).replace('node 1 ', 'node %d ' % n)
                    .replace("'127.0.1.1'", "'127.0.1.%d'" % n))
        assert (CLUSTER / ('node%d.lua' % n)).read_text() == expected
