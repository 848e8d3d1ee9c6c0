"""TLS as docs/smtp.md and docs/configuration.md describe it, with openssl s_client:
TLS 1.2 and 1.3 by default, tls.min_version = '1.3', the ECDSA or the RSA certificate
by what the client supports, session resumption, and listeners on ::1.

Each test checks what the client got (s_client's report and the SMTP replies), what
reached the sink and the daemon's tls.established / session.close log lines.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_tls.py
"""
import os
import re
import subprocess

import pytest

from conftest import (ALICE, PASSWORDS, b64, client_bytes, hup, received_header,
                      upstream_conf)

BODY = b'Subject: over s_client\r\n\r\n.dot line\r\nend\r\n'
SESSION = (b'EHLO client.test\r\nAUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE]))
           .encode() + b'\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n'
           b'DATA\r\nSubject: over s_client\r\n\r\n..dot line\r\nend\r\n.\r\nQUIT\r\n')


def s_client(relay, *args, starttls=False, stdin=b'QUIT\r\n'):
    """openssl s_client against the implicit-TLS or (starttls=True) the STARTTLS
    listener, verifying our certificate and its IP address. Reads until the daemon
    closes; the SMTP lines (Q, R...) are never taken for s_client commands."""
    port = relay.submission_port if starttls else relay.smtps_port
    host = '[%s]' % relay.host if ':' in relay.host else relay.host
    cmd = ['openssl', 's_client', '-connect', '%s:%d' % (host, port), '-CAfile',
           relay.cafile, '-verify_return_error', '-verify_ip', relay.host, '-ign_eof',
           '-nocommands']
    if starttls:
        cmd += ['-starttls', 'smtp', '-name', 'client.test']
    proc = subprocess.run(cmd + list(args), input=stdin, capture_output=True, timeout=30)
    proc.out = proc.stdout.decode(errors='replace')
    proc.err = proc.stderr.decode(errors='replace')
    return proc


def server_cert(proc):
    m = re.search(r'-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----', proc.out,
                  re.S)
    assert m, proc.out
    return m.group(0)


@pytest.mark.parametrize('starttls', [False, True], ids=['implicit', 'starttls'])
@pytest.mark.parametrize('version', ['1_2', '1_3'])
def test_s_client_relays_a_message_over_tls_1_2_and_1_3_by_default(relay, sink, version,
                                                                   starttls):
    proc = s_client(relay, '-tls' + version, starttls=starttls, stdin=SESSION)
    assert proc.returncode == 0, proc.out + proc.err
    name = 'TLSv' + version.replace('_', '.')
    assert 'New, %s, Cipher is ' % name in proc.out and 'Verification: OK' in proc.out
    replies = re.findall(r'^(\d{3}) (\S+)', proc.out, re.M)
    assert [code for code, _ in replies][-7:] == ['250', '235', '250', '250', '354', '250',
                                                  '221']
    [tls] = relay.logs('tls.established')
    assert tls['version'] == name and tls['resumed'] is False
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert (b'\t(using %s with cipher %s)\r\n' % (name.encode(), tls['cipher'].encode())
            in received_header(stored))
    if version == '1_2':  # the default list: ECDHE with AEAD only
        assert re.fullmatch(r'ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-'
                            r'POLY1305)', tls['cipher']), tls['cipher']


@pytest.mark.parametrize('starttls', [False, True], ids=['implicit', 'starttls'])
def test_min_version_1_3_refuses_a_tls_1_2_client(make_relay, sink, starttls):
    relay = make_relay(upstream_conf(sink.port), min_version='1.3')
    old = s_client(relay, '-tls1_2', starttls=starttls)
    assert old.returncode != 0
    assert 'alert protocol version' in old.err, old.err
    assert '221 2.0.0 Bye' not in old.out
    new = s_client(relay, '-tls1_3', starttls=starttls)
    assert new.returncode == 0 and '221 2.0.0 Bye' in new.out, new.out + new.err
    closes = relay.wait_logs('session.close', 2)
    assert closes[0]['reason'] == 'TLS handshake failed'
    assert [t['version'] for t in relay.logs('tls.established')] == ['TLSv1.3']
    assert list(sink.transcripts.iterdir()) == []


@pytest.mark.parametrize('args, cert, sigtype', [
    (['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'], 'dev-ecdsa.crt', 'ECDSA'),
    (['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'], 'dev-rsa.crt', 'RSA-PSS'),
    (['-tls1_2', '-sigalgs', 'ECDSA+SHA256'], 'dev-ecdsa.crt', 'ECDSA'),
    (['-tls1_2', '-sigalgs', 'RSA+SHA256:RSA-PSS+SHA256'], 'dev-rsa.crt', None),
    (['-tls1_3', '-sigalgs', 'ecdsa_secp256r1_sha256'], 'dev-ecdsa.crt', 'ECDSA'),
    (['-tls1_3', '-sigalgs', 'rsa_pss_rsae_sha256'], 'dev-rsa.crt', 'RSA-PSS'),
], ids=['tls12-ecdsa-cipher', 'tls12-rsa-cipher', 'tls12-ecdsa-sigalgs',
        'tls12-rsa-sigalgs', 'tls13-ecdsa', 'tls13-rsa'])
def test_client_gets_the_certificate_type_it_supports(relay, sink, certs, args, cert,
                                                      sigtype):
    proc = s_client(relay, *args)
    assert proc.returncode == 0, proc.out + proc.err
    assert server_cert(proc) == (certs / cert).read_text().strip()
    if sigtype is not None:
        assert 'Peer signature type: %s\n' % sigtype in proc.out
    assert 'Server public key is %s bit' % ('256' if 'ecdsa' in cert else '2048') in proc.out
    assert '220 relay.test ESMTP sluice ready' in proc.out and '221 2.0.0 Bye' in proc.out
    [tls] = relay.wait_logs('tls.established')
    assert tls['version'] == ('TLSv1.2' if '-tls1_2' in args else 'TLSv1.3')
    assert list(sink.transcripts.iterdir()) == []


def test_a_client_that_takes_both_gets_ecdsa_whichever_pair_is_listed_first(relay, sink,
                                                                             certs):
    """ECDSA first (docs/configuration.md tls): OpenSSL picks the certificate by the
    server's order of TLS 1.2 suites and of signature algorithms, ECDSA's first, not by
    the order of tls.certificates; a client that takes only RSA still gets RSA."""
    ecdsa = (certs / 'dev-ecdsa.crt').read_text().strip()
    rsa = (certs / 'dev-rsa.crt').read_text().strip()
    conf = relay.conf.read_text()
    pairs = re.search(r'(    \{ cert = [^\n]*dev-ecdsa[^\n]*\n)(    \{ cert = [^\n]*dev-rsa'
                      r'[^\n]*\n)', conf)
    assert pairs, conf
    for generation in ('ECDSA listed first', 'RSA listed first'):
        for version in ('-tls1_2', '-tls1_3'):
            proc = s_client(relay, version)
            assert proc.returncode == 0, proc.out + proc.err
            assert server_cert(proc) == ecdsa, generation + ' ' + version
            assert 'Peer signature type: ECDSA\n' in proc.out
        only_rsa = s_client(relay, '-tls1_3', '-sigalgs', 'rsa_pss_rsae_sha256')
        assert only_rsa.returncode == 0 and server_cert(only_rsa) == rsa, only_rsa.out
        if generation == 'ECDSA listed first':
            relay.conf.write_text(conf.replace(pairs.group(0), pairs.group(2) + pairs.group(1)))
            assert 'generation 2' in hup(relay)['msg']
    assert [t['version'] for t in relay.wait_logs('tls.established', 6)] == [
        'TLSv1.2', 'TLSv1.3', 'TLSv1.3'] * 2
    assert list(sink.transcripts.iterdir()) == []


@pytest.mark.parametrize('args', [['-tls1_2'], ['-tls1_2', '-no_ticket'], ['-tls1_3']],
                         ids=['tls12-ticket', 'tls12-session-cache', 'tls13-ticket'])
@pytest.mark.parametrize('starttls', [False, True], ids=['implicit', 'starttls'])
def test_session_resumption_reuses_the_session(relay, sink, tmp_path, args, starttls):
    sess = str(tmp_path / 'session.pem')
    first = s_client(relay, '-sess_out', sess, *args, starttls=starttls)
    assert first.returncode == 0 and 'New, TLSv1.' in first.out, first.out + first.err
    second = s_client(relay, '-sess_in', sess, *args, starttls=starttls, stdin=SESSION)
    assert second.returncode == 0, second.out + second.err
    assert re.search(r'^Reused, TLSv1\.[23], Cipher is ', second.out, re.M), second.out
    assert '221 2.0.0 Bye' in second.out
    assert [t['resumed'] for t in relay.wait_logs('tls.established', 2)] == [False, True]
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY


@pytest.mark.parametrize('starttls', [False, True], ids=['implicit', 'starttls'])
def test_a_resumed_tls_1_3_session_leaves_the_client_a_fresh_ticket(relay, sink, tmp_path,
                                                                    starttls):
    """s_client writes -sess_out only when a ticket arrives: a chain of connections, each
    resuming with the ticket the one before got, resumes every time (RFC 8446 C.4: a
    client should use a ticket once). Before, a resumed handshake got no ticket."""
    sess = [str(tmp_path / ('session%d.pem' % i)) for i in range(4)]
    first = s_client(relay, '-tls1_3', '-sess_out', sess[0], starttls=starttls)
    assert first.returncode == 0 and 'New, TLSv1.3, Cipher is ' in first.out, first.err
    for i in range(1, 4):
        proc = s_client(relay, '-tls1_3', '-sess_in', sess[i - 1], '-sess_out', sess[i],
                        starttls=starttls, stdin=SESSION if i == 3 else b'QUIT\r\n')
        assert proc.returncode == 0, proc.out + proc.err
        assert re.search(r'^Reused, TLSv1\.3, Cipher is ', proc.out, re.M), proc.out
        assert os.path.exists(sess[i]), 'no ticket after resumed connection %d' % i
        assert open(sess[i]).read() != open(sess[i - 1]).read()
    assert [t['resumed'] for t in relay.wait_logs('tls.established', 4)] == [
        False, True, True, True]
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY


def reload_as(relay, hostname, tls_extra=''):
    """Rewrite the relay's configuration with another hostname (the greeting then tells
    which generation served a connection) and tls_extra in its tls table; SIGHUP."""
    conf = relay.conf.read_text()
    conf = re.sub(r"hostname = '[^']*'", "hostname = '%s'" % hostname, conf)
    conf = conf.replace("min_version = '1.2',", "min_version = '1.2', " + tls_extra)
    relay.conf.write_text(conf)
    return hup(relay)


@pytest.mark.parametrize('args', [['-tls1_2'], ['-tls1_3']], ids=['tls12', 'tls13'])
@pytest.mark.parametrize('starttls', [False, True], ids=['implicit', 'starttls'])
def test_a_session_ticket_resumes_after_a_reload(make_relay, sink, tmp_path, args, starttls):
    relay = make_relay(upstream_conf(sink.port), min_version='1.2')
    sess = str(tmp_path / 'session.pem')
    first = s_client(relay, '-sess_out', sess, *args, starttls=starttls)
    assert first.returncode == 0 and 'New, TLSv1.' in first.out, first.out + first.err
    assert 'generation 2' in reload_as(relay, 'reloaded.test')['msg']
    second = s_client(relay, '-sess_in', sess, *args, starttls=starttls, stdin=SESSION)
    assert second.returncode == 0, second.out + second.err
    # served by the new generation: its greeting, or after STARTTLS its EHLO reply
    assert re.search(r'^(220 |250-)reloaded\.test ', second.out, re.M), second.out
    assert re.search(r'^Reused, TLSv1\.[23], Cipher is ', second.out, re.M), second.out
    assert [t['resumed'] for t in relay.wait_logs('tls.established', 2)] == [False, True]
    assert relay.logs('tls.ticket_keys') == []
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY


def test_a_reload_that_changes_ticket_key_lifetime_makes_new_keys(make_relay, sink, tmp_path):
    relay = make_relay(upstream_conf(sink.port), min_version='1.2')
    sess = [str(tmp_path / ('session%d.pem' % i)) for i in range(2)]
    first = s_client(relay, '-tls1_3', '-sess_out', sess[0])
    assert first.returncode == 0 and 'New, TLSv1.3' in first.out, first.out + first.err
    reload_as(relay, 'reloaded.test', 'ticket_key_lifetime = 7200,')
    [keys] = relay.wait_logs('tls.ticket_keys')
    assert keys['level'] == 'notice' and 'ticket_key_lifetime changed' in keys['msg']
    second = s_client(relay, '-tls1_3', '-sess_in', sess[0], '-sess_out', sess[1])
    assert second.returncode == 0, second.out + second.err
    assert '220 reloaded.test ESMTP' in second.out
    assert re.search(r'^New, TLSv1\.3, Cipher is ', second.out, re.M), second.out
    # the next reload keeps the lifetime, and so the keys: the new ticket resumes
    reload_as(relay, 'again.test')
    third = s_client(relay, '-tls1_3', '-sess_in', sess[1])
    assert '220 again.test ESMTP' in third.out
    assert re.search(r'^Reused, TLSv1\.3, Cipher is ', third.out, re.M), third.out
    assert [t['resumed'] for t in relay.wait_logs('tls.established', 3)] == [False, False,
                                                                            True]
    assert len(relay.logs('tls.ticket_keys')) == 1


def test_ipv6_listeners_on_loopback_serve_smtps_and_starttls(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), address='::1')
    with relay.smtps() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: v6\r\n\r\none\r\n') == {}
    with relay.submission() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: v6\r\n\r\ntwo\r\n') == {}
    proc = s_client(relay, '-tls1_3')
    assert proc.returncode == 0 and '221 2.0.0 Bye' in proc.out, proc.out + proc.err
    one, two = sink.wait_messages(2)
    assert [client_bytes(m) for m in (one, two)] == [b'Subject: v6\r\n\r\none\r\n',
                                                     b'Subject: v6\r\n\r\ntwo\r\n']
    assert received_header(one).startswith(b'Received: from client.test ([::1])\r\n')
    ready = [r for r in relay.logs('listener.ready')]
    assert [(r['name'], r['addresses']) for r in ready] == [('smtps', '::1'),
                                                           ('submission', '::1')]
    assert [o['ip'] for o in relay.wait_logs('session.open', 3)] == ['::1'] * 3
    assert [o['ip'] for o in relay.logs('auth.ok')] == ['::1'] * 2


def test_client_initiated_renegotiation_is_refused_and_serving_goes_on(relay, sink):
    proc = subprocess.Popen(['openssl', 's_client', '-connect', '%s:%d' % (
        relay.host, relay.smtps_port), '-CAfile', relay.cafile, '-tls1_2'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(200):  # s_client's report, then our greeting
            line = proc.stdout.readline()
            if not line or line.startswith(b'220 '):
                break
        assert line == b'220 relay.test ESMTP sluice ready\r\n'
        proc.stdin.write(b'R\n')  # s_client's "renegotiate" command
        proc.stdin.flush()
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
    assert 'no renegotiation' in proc.stderr.read().decode()
    [close] = relay.wait_logs('session.close')
    assert close['reason'] == 'read error' and close['commands'] == 0
    with relay.smtps() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: after\r\n\r\nx\r\n') == {}
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: after\r\n\r\nx\r\n'
