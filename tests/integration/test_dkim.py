"""DKIM signing (docs/dkim.md): sluice signs a relayed message for its header From's domain
with the keys `sluice dkim keygen` made, and an independent verifier (python3-dkim, Debian's
dkimpy) checks the bytes the upstream received against the TXT record keygen printed: RSA
and Ed25519, a message an on_data policy edited, folded and blank-heavy headers and a body
with trailing empty lines, two keys (two signatures), a domain without keys (none). `sluice
check` refuses a bad key, a short RSA key and a selector that is not a label.

RSA signatures are made on the offload pool: a worker keeps serving its other sessions
while one of its messages is signed, a client that leaves meanwhile has nothing relayed
(and nothing leaks: the ASan build's report is checked at stop), and a full pool answers
451 4.3.0 rather than relaying unsigned mail."""
import re
import statistics
import subprocess
import threading
import time

import dkim
import pytest

from conftest import ALICE, SHIPPED_POLICIES, SLUICE, hup, lua_str, upstream_conf

CAROL = 'carol@example.net'


def keygen(tmp_path, selector, algorithm='rsa', domain='example.org', bits=None):
    """(key path, {dns name: TXT text}) from `sluice dkim keygen`."""
    out = tmp_path / ('%s.%s.key' % (domain, selector))
    extra = ['--bits', str(bits)] if bits else []
    r = subprocess.run([SLUICE, 'dkim', 'keygen', '--domain', domain, '--selector', selector,
                        '--algorithm', algorithm, '--out', str(out)] + extra,
                       capture_output=True, text=True, check=True)
    m = re.match(r'^(\S+) IN TXT \((.*)\)$', r.stdout.strip())
    assert m, r.stdout
    assert out.stat().st_mode & 0o777 == 0o600
    return out, {m.group(1): ''.join(re.findall(r'"([^"]*)"', m.group(2)))}


def dnsfunc(records):
    def lookup(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        txt = records.get(name if name.endswith('.') else name + '.')
        return txt.encode() if txt is not None else None
    return lookup


def dkim_table(key, selector, headers=None):
    extra = '' if headers is None else ', headers = { %s }' % ', '.join(map(lua_str, headers))
    return '{ selector = %s, key_file = %s%s }' % (lua_str(selector), lua_str(key), extra)


def domains(org_dkim):
    return ("{ ['example.org'] = { check_header_from = false, dkim = %s },"
            " ['example.net'] = { check_header_from = false } }" % org_dkim)


def send(relay, message, user=ALICE):
    c = relay.raw_authed(user)
    assert c.cmd(b'MAIL FROM:<%s>' % user.encode())[0] == 250
    assert c.cmd(b'RCPT TO:<rcpt@example.com>')[0] == 250
    assert c.cmd(b'DATA')[0] == 354
    reply = c.cmd(message + b'.')
    c.close()
    return reply


def signatures(stored):
    return re.findall(rb'^DKIM-Signature:.*?\r\n(?![ \t])', stored, re.M | re.S)


def verify_all(stored, records):
    """dkimpy's verdict on each signature (a mismatch raises in some paths: False)."""
    out = []
    for i in range(len(signatures(stored))):
        try:
            out.append(dkim.DKIM(stored).verify(idx=i, dnsfunc=dnsfunc(records)))
        except dkim.DKIMException:
            out.append(False)
    return out


MESSAGE = (b'From: Alice <alice@example.org>\r\nTo: rcpt@example.com\r\n'
           b'Subject: hello\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n'
           b'Message-ID: <1@example.org>\r\n\r\nHello, world.\r\n')


@pytest.mark.parametrize('algorithm', ['rsa', 'ed25519'])
def test_a_signed_message_verifies_with_dkimpy_against_the_printed_record(
        make_relay, sink, tmp_path, algorithm):
    key, records = keygen(tmp_path, 's2026', algorithm)
    relay = make_relay(upstream_conf(sink.port), domains=domains(dkim_table(key, 's2026')))
    assert send(relay, MESSAGE)[0] == 250
    stored = sink.wait_messages(1)[0]
    assert stored.startswith(b'DKIM-Signature: v=1; a=%s-sha256; c=relaxed/relaxed; '
                             % algorithm.encode())
    sig = signatures(stored)[0]
    assert re.search(rb'd=example\.org;\s+s=s2026;', sig)
    assert all(len(line) <= 78 for line in sig.split(b'\r\n'))
    h = re.search(rb'h=([^;]*);', sig).group(1)
    assert re.sub(rb'\s', b'', h).split(b':').count(b'from') == 2  # From oversigned
    assert b'Received: from' in stored and stored.index(b'Received') > stored.index(sig)
    assert verify_all(stored, records) == [True]
    # the verifier can fail: one octet of the body changed
    assert verify_all(stored.replace(b'Hello, world.', b'Hello, World.'), records) == [False]
    log = relay.wait_logs('dkim.sign')[0]
    assert log['domain'] == 'example.org'
    assert log['selectors'] == 's2026:%s-sha256' % algorithm


EDIT = """
return {
  on_data = function(session, tx)
    tx:remove_header('Subject')
    tx:add_header('Subject', 'edited by policy')
    tx:add_header('Reply-To', 'desk@example.org')
  end,
}
"""


def test_headers_an_on_data_policy_edited_are_signed_as_relayed(make_relay, sink, tmp_path):
    key, records = keygen(tmp_path, 'ed', 'ed25519')
    policy = tmp_path / 'edit.lua'
    policy.write_text(EDIT)
    relay = make_relay(upstream_conf(sink.port), domains=domains(dkim_table(key, 'ed')),
                       policies=SHIPPED_POLICIES + [str(policy)])
    assert send(relay, MESSAGE)[0] == 250
    stored = sink.wait_messages(1)[0]
    assert b'Subject: edited by policy\r\n' in stored and b'Subject: hello' not in stored
    h = re.sub(rb'\s', b'', re.search(rb'h=([^;]*);', signatures(stored)[0]).group(1))
    assert b'reply-to' in h.split(b':') and b'subject' in h.split(b':')
    assert verify_all(stored, records) == [True]
    tampered = stored.replace(b'edited by policy', b'hello')
    assert verify_all(tampered, records) == [False]


def test_folded_blank_heavy_headers_and_trailing_empty_lines_verify(make_relay, sink,
                                                                     tmp_path):
    key, records = keygen(tmp_path, 'rsa1', 'rsa')
    relay = make_relay(upstream_conf(sink.port), domains=domains(dkim_table(key, 'rsa1')))
    message = (b'From:  "Alice  A."\r\n\t <alice@EXAMPLE.org>  \r\n'
               b'To: a@example.com,\r\n  b@example.com\t,\r\n\t c@example.com\r\n'
               b'SUBJECT:\t  lots   of\t\tspace   \r\n'
               b'Content-Type: text/plain;\r\n charset="utf-8"\r\n\r\n'
               b'  indented  line  \t\r\n\r\ntext\t\r\n\r\n\r\n\r\n')
    assert send(relay, message)[0] == 250
    stored = sink.wait_messages(1)[0]
    assert stored.endswith(b'text\t\r\n\r\n\r\n\r\n')  # relayed as sent: only the hash is relaxed
    assert verify_all(stored, records) == [True]


def test_two_keys_give_two_signatures_that_both_verify(make_relay, sink, tmp_path):
    rsa_key, rsa_records = keygen(tmp_path, 'r2026', 'rsa')
    ed_key, ed_records = keygen(tmp_path, 'e2026', 'ed25519')
    both = '{ %s, %s }' % (dkim_table(rsa_key, 'r2026'),
                           dkim_table(ed_key, 'e2026', ['from', 'to', 'subject', 'x-app-*']))
    relay = make_relay(upstream_conf(sink.port), domains=domains(both))
    assert send(relay, MESSAGE.replace(b'\r\n\r\n', b'\r\nX-App-Id: 7\r\n\r\n'))[0] == 250
    stored = sink.wait_messages(1)[0]
    sigs = signatures(stored)
    assert len(sigs) == 2
    assert b's=r2026;' in sigs[0] and b'a=rsa-sha256;' in sigs[0]
    assert b's=e2026;' in sigs[1] and b'a=ed25519-sha256;' in sigs[1]
    ed_h = re.sub(rb'\s', b'', re.search(rb'h=([^;]*);', sigs[1]).group(1)).split(b':')
    assert sorted(ed_h) == [b'from', b'from', b'subject', b'to', b'x-app-id']
    assert verify_all(stored, {**rsa_records, **ed_records}) == [True, True]


def test_a_domain_without_keys_is_relayed_unsigned(make_relay, sink, tmp_path):
    key, _ = keygen(tmp_path, 's1', 'ed25519')
    relay = make_relay(upstream_conf(sink.port), domains=domains(dkim_table(key, 's1')))
    message = MESSAGE.replace(b'alice@example.org', CAROL.encode())
    assert send(relay, message, user=CAROL)[0] == 250
    stored = sink.wait_messages(1)[0]
    assert stored.startswith(b'Received: from ')
    assert signatures(stored) == []
    assert relay.logs('dkim.sign') == []


def test_a_user_of_another_domain_never_gets_its_signature(make_relay, sink, tmp_path):
    """example.net turned check_header_from off, so carol@example.net may write any From:;
    one of example.org (which has keys) is relayed, but not with example.org's signature
    (it would let the spoof pass DMARC), nor with her own domain's (not the From:'s)."""
    key, _ = keygen(tmp_path, 's1', 'ed25519')
    net_key, _ = keygen(tmp_path, 'n1', 'ed25519', domain='example.net')
    relay = make_relay(upstream_conf(sink.port), domains=(
        "{ ['example.org'] = { check_header_from = false, dkim = %s },"
        " ['example.net'] = { check_header_from = false, dkim = %s } }"
        % (dkim_table(key, 's1'), dkim_table(net_key, 'n1'))))
    assert send(relay, MESSAGE, user=CAROL)[0] == 250
    stored = sink.wait_messages(1)[0]
    assert b'From: Alice <alice@example.org>' in stored
    assert signatures(stored) == []
    skip = relay.wait_logs('dkim.skip')[0]
    assert (skip['domain'], skip['error']) == ('example.org', "the From: domain is not the user's")
    assert relay.logs('dkim.sign') == []


def check(tmp_path, org_dkim):
    conf = tmp_path / 'check.lua'
    (tmp_path / 'c.crt').write_text('')
    conf.write_text(
        "return {\n  insecure = true, users_dir = %s,\n"
        "  listeners = { { name = 'smtps', address = '127.0.0.1', port = 8465,"
        " tls = 'none' } },\n"
        "  upstreams = %s,\n"
        "  domains = {\n    ['example.org'] = {\n      dkim = %s,\n    },\n  },\n}\n"
        % (lua_str(tmp_path), upstream_conf(2525), org_dkim))
    return subprocess.run([SLUICE, 'check', '-c', str(conf)], capture_output=True, text=True)


def test_sluice_check_accepts_good_keys_and_names_file_and_line_of_bad_ones(tmp_path):
    good, _ = keygen(tmp_path, 'good', 'ed25519')
    r = check(tmp_path, dkim_table(good, 'good'))
    assert r.returncode == 0, r.stderr
    short = tmp_path / 'short.key'
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'RSA', '-pkeyopt',
                    'rsa_keygen_bits:512', '-out', str(short)], check=True, capture_output=True)
    garbage = tmp_path / 'garbage.key'
    garbage.write_text('not a key\n')
    cases = [
        (dkim_table(short, 's1'), 'key_file: \'%s\': RSA key of 512 bits: at least 1024' % short),
        (dkim_table(garbage, 's1'), 'key_file: \'%s\': not a PEM private key' % garbage),
        (dkim_table(tmp_path / 'absent.key', 's1'), 'key_file: cannot read'),
        (dkim_table(good, 'bad_selector'), 'selector: expected a DNS label'),
        (dkim_table(good, 's1', ['subject']), "headers: must list 'from'"),
    ]
    for text, want in cases:
        r = check(tmp_path, text)
        assert r.returncode != 0
        assert re.search(r'check\.lua:7: domains\[\'example\.org\'\]\.dkim\.', r.stderr), r.stderr
        assert want in r.stderr, r.stderr


# ---- signing on the offload pool -------------------------------------------------------

def slow_signing(tmp_path):
    """`domains` whose messages take some 30 ms of RSA to sign: one RSA-4096 key (~3.7 ms a
    signature here) under the 8 selectors a domain may have, so that a blocked loop shows."""
    key, records = keygen(tmp_path, 'slow0', 'rsa', bits=4096)
    tables = ', '.join(dkim_table(key, 'slow%d' % i) for i in range(8))
    txt = records['slow0._domainkey.example.org.']
    return domains('{ %s }' % tables), {'slow%d._domainkey.example.org.' % i: txt
                                         for i in range(8)}


def authed_in_data(relay):
    """A client after AUTH, MAIL, RCPT and DATA's 354: the message and its dot come next."""
    c = relay.raw_authed(ALICE)
    assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode())[0] == 250
    assert c.cmd(b'RCPT TO:<rcpt@example.com>')[0] == 250
    assert c.cmd(b'DATA')[0] == 354
    return c


@pytest.mark.threads  # signatures in the thread pool
def test_a_worker_signing_rsa_keeps_serving_its_other_sessions(make_relay, sink, tmp_path):
    doms, records = slow_signing(tmp_path)
    relay = make_relay(upstream_conf(sink.port), domains=doms)  # workers = 1
    sender, other = relay.raw_authed(ALICE), relay.raw()
    assert other.cmd(b'EHLO other.test')[0] == 250
    windows, waits, done = [], [], threading.Event()

    def send_many():
        try:
            for i in range(6):
                assert sender.cmd(b'MAIL FROM:<%s>' % ALICE.encode())[0] == 250
                assert sender.cmd(b'RCPT TO:<rcpt@example.com>')[0] == 250
                assert sender.cmd(b'DATA')[0] == 354
                t0 = time.monotonic()
                reply = sender.cmd(MESSAGE.replace(b'<1@', b'<m%d@' % i) + b'.')
                windows.append((t0, time.monotonic()))
                assert reply[0] == 250, reply
        finally:
            done.set()

    t = threading.Thread(target=send_many)
    t.start()
    for _ in range(100000):  # bounded: the sender's six messages end it
        if done.is_set():
            break
        t0 = time.monotonic()
        assert other.cmd(b'NOOP') == (250, b'2.0.0 Ok')
        waits.append((t0, time.monotonic()))
    t.join(timeout=60)
    assert len(windows) == 6 and len(sink.wait_messages(6)) == 6
    signing = statistics.median(b - a for a, b in windows)
    slowest = max(b - a for a, b in waits)
    # Each message spends ~30 ms signing. A loop blocked by it holds a NOOP that arrives
    # meanwhile until the signature is made (the slowest NOOP then takes about as long
    # as a whole message); offloaded, no NOOP waits for a signature.
    assert slowest < signing / 3, (slowest, signing)
    inside = sum(1 for a, b in waits for w0, w1 in windows if w0 < a and b < w1)
    assert inside >= 2 * len(windows), (inside, len(waits))
    assert verify_all(sink.wait_messages(6)[5], records) == [True] * 8


@pytest.mark.threads  # signatures in the thread pool
def test_a_client_that_leaves_while_its_message_is_signed_has_nothing_relayed(
        make_relay, sink, tmp_path):
    doms, _ = slow_signing(tmp_path)
    relay = make_relay(upstream_conf(sink.port), domains=doms)
    c = authed_in_data(relay)
    c.send(MESSAGE + b'.\r\n')
    c.close()  # at once: the signature takes ~30 ms on the pool
    close = relay.wait_logs('session.close', timeout=10)[-1]
    sid = close['sid']
    assert [l['to'] for l in relay.logs('session.state') if l['sid'] == sid][-1] == 'RELAY'
    # A later message goes through: once it is in, the first would have been before it.
    assert send(relay, MESSAGE.replace(b'<1@', b'<2@'))[0] == 250
    stored = sink.wait_messages(1)
    assert len(stored) == 1 and b'Message-ID: <2@example.org>' in stored[0]
    assert [l for l in relay.logs() if l.get('sid') == sid and
            l['event'] in ('dkim.sign', 'relay.done')] == []
    assert len(relay.logs('dkim.sign')) == 1


@pytest.mark.threads  # signatures in the thread pool, a reload
def test_a_reload_right_after_clients_left_mid_signing_leaves_signing_working(
        make_relay, sink, tmp_path):
    doms, records = slow_signing(tmp_path)
    relay = make_relay(upstream_conf(sink.port), domains=doms)
    clients = [authed_in_data(relay) for _ in range(4)]
    for c in clients:  # two signing on the two pool threads, two queued (then cancelled)
        c.send(MESSAGE + b'.\r\n')
        c.close()
    # The sessions go at once and unpin their generation; the running jobs hold it for
    # their keys. (Under ASan a reload takes about as long as one of these signatures, so
    # the old generation is usually retired just after they end: this shows the daemon
    # sound and signing after such a reload, not every interleaving.)
    hup(relay)
    relay.wait_logs('session.close', n=4, timeout=10)
    assert send(relay, MESSAGE.replace(b'<1@', b'<2@'))[0] == 250
    stored = sink.wait_messages(1)
    assert len(stored) == 1 and verify_all(stored[0], records) == [True] * 8
    assert relay.logs('dkim.sign')[0]['sid'] not in [l['sid'] for l in
                                                      relay.logs('session.close')[:4]]


@pytest.mark.threads  # signatures in the thread pool
def test_a_full_offload_pool_answers_451_and_relays_nothing_unsigned(make_relay, sink,
                                                                    tmp_path):
    doms, _ = slow_signing(tmp_path)
    relay = make_relay(upstream_conf(sink.port), domains=doms, limits='max_auth_jobs = 1')
    replies = []
    for _ in range(5):  # bounded: one round nearly always has a refusal
        clients = [authed_in_data(relay) for _ in range(4)]
        for c in clients:  # four dots at once: one signs (~30 ms), the others find it full
            c.send(MESSAGE + b'.\r\n')
        replies += [c.reply() for c in clients]
        for c in clients:
            c.close()
        if any(r[0] == 451 for r in replies):
            break
    busy = [r for r in replies if r[0] == 451]
    assert busy and all(r == (451, b'4.3.0 Too busy to sign the message, try again later')
                        for r in busy), replies
    ok = [r for r in replies if r[0] == 250]
    assert len(ok) + len(busy) == len(replies) and ok
    assert len(sink.wait_messages(len(ok))) == len(ok)
    logs = relay.wait_logs('dkim.busy', n=len(busy))
    assert len(logs) == len(busy)
    assert logs[0]['level'] == 'notice' and logs[0]['domain'] == 'example.org'
    assert logs[0]['error'] == 'limits.max_auth_jobs reached'
    # nothing unsigned went out: a refused message never started a relay, and every
    # stored message carries the eight signatures
    assert len(relay.logs('relay.done')) == len(ok)
    assert all(len(signatures(m)) == 8 for m in sink.wait_messages(len(ok)))
