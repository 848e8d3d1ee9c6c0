"""Relaying to the upstream as docs/relay.md describes it: the pool and its reuse, the
envelope (RSET, pipelining), BDAT or DATA, upstream refusals and failures, failover,
routes, upstream TLS and AUTH, and big messages.

Real clients (smtplib over TLS) talk to a real `sluice run`, which relays to a real
`sluice sink`. Each test checks what the client got, the bytes the sink received
(--transcript: conn-N.in, and conn-N.reads for what came in one read) and stored
(Maildir), and the relay's log line (relay.done, upstream.*).

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_relay.py
"""
import re
import socket
import threading
import time

import pytest

from conftest import (ALICE, client_bytes, free_port, lua_str, received_header, upstream_conf,
                      wait_until)

# Lines starting with '.', a lone '.', trailing blanks, a TAB: what stuffing must survive.
BODY = (b'From: Alice <alice@example.org>\r\nTo: <x@example.com>\r\n'
        b'Subject: relay test\r\nMessage-ID: <relay-test@client.test>\r\n\r\n'
        b'.a line that starts with a dot\r\n..two dots\r\n.\r\n. \r\n'
        b'a . in the middle\r\ntrailing blanks   \r\n\tTAB\r\n\r\n')

QUEUED = r'2\.0\.0 Ok: queued as ([0-9a-f]+)\.(\d+) upstream (\S+)'


def transact(client, sender, rcpts, body=BODY):
    """MAIL, RCPT... (each must get 250 from the relay itself), DATA: the reply to the
    end of the data, as (code, text)."""
    assert client.mail(sender)[0] == 250
    for rcpt in rcpts:
        assert client.rcpt(rcpt)[0] == 250, rcpt
    code, text = client.data(body)
    return code, text.decode()


def send_one(relay, sender=ALICE, rcpts=('x@example.com',), body=BODY, via='smtps'):
    """One message in its own session; the reply to the end of its data."""
    client = relay.smtps(sender) if via == 'smtps' else relay.submission(sender)
    try:
        return transact(client, sender, rcpts, body)
    finally:
        client.quit()


def reads(sink, session):
    """The bytes the sink read on one connection, one item per read(2) ('tls' marks
    the handshake); they add up to conn-N.in exactly."""
    data = (sink.transcripts / ('conn-%d.in' % session)).read_bytes()
    out, off = [], 0
    for token in (sink.transcripts / ('conn-%d.reads' % session)).read_text().split():
        if token == 'tls':
            out.append('tls')
            continue
        out.append(data[off:off + int(token)])
        off += int(token)
    assert off == len(data)
    return out


def transcript(sink, session):
    return (sink.transcripts / ('conn-%d.in' % session)).read_bytes()


def envelope(sender, rcpts, size=None, rset=False):
    mail = 'MAIL FROM:<%s>%s\r\n' % (sender, '' if size is None else ' SIZE=%d' % size)
    return (('RSET\r\n' if rset else '') + mail +
            ''.join('RCPT TO:<%s>\r\n' % r for r in rcpts)).encode()


def wait_events(sink, name, n, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(sink.events(name)) < n:
        time.sleep(0.02)
    return sink.events(name)


def assert_nothing_stored(sink, relay):
    """Once the relay is done with the message (relay.done, logged after the upstream's
    last word), the sink has stored nothing: it stores a message before it answers."""
    assert relay.wait_logs('relay.done'), 'no relay.done'
    assert sink.messages() == []
    assert sink.events('sink.message') == []


def only_done(relay):
    [done] = relay.wait_logs('relay.done')
    return done


def server(port, tls='none', host='127.0.0.1', **kw):
    """One upstream server entry, as Lua."""
    fields = ["host = '%s'" % host, 'port = %d' % port, "tls = '%s'" % tls]
    for key, value in kw.items():
        if isinstance(value, bool):
            fields.append('%s = %s' % (key, 'true' if value else 'false'))
        elif isinstance(value, dict):
            fields.append('%s = { %s }' % (key, ', '.join(
                '%s = %s' % (k, lua_str(v)) for k, v in value.items())))
        else:
            fields.append('%s = %s' % (key, lua_str(value)))
    return '{ ' + ', '.join(fields) + ' }'


def sets(**named):
    """upstreams = { name = { server, ... }, ... }"""
    return '{ ' + ', '.join('%s = { %s }' % (name, ', '.join(servers))
                            for name, servers in named.items()) + ' }'


# ---- the message itself ----


@pytest.mark.parametrize('via', ['smtps', 'submission'])
def test_the_message_arrives_byte_exact_under_our_received_header(make_relay, sink, via):
    relay = make_relay(upstream_conf(sink.port))
    client = relay.smtps() if via == 'smtps' else relay.submission()
    version, cipher = client.sock.version(), client.sock.cipher()[0]
    code, text = transact(client, ALICE, ['x@example.com'])
    client.quit()

    assert code == 250, text
    m = re.fullmatch(QUEUED, text)
    assert m, text
    sid, n, upstream_id = m.groups()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert re.fullmatch(
        (r'Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n'
         r'\tby relay\.test \(sluice\) with ESMTPSA id %s\.1\r\n'
         r'\t\(using %s with cipher %s\)\r\n'
         r'\tfor <x@example\.com>;\r\n'
         r'\t(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov'
         r'|Dec) \d{4} \d\d:\d\d:\d\d \+0000\r\n') % (sid, re.escape(version), re.escape(cipher)),
        received_header(stored).decode()), received_header(stored)
    assert n == '1'
    [event] = sink.events('sink.message')
    assert event['file'] == 'new/' + upstream_id
    assert event['mail_from'] == ALICE and event['rcpt'] == ['x@example.com']
    assert event['size'] == len(stored)
    done = only_done(relay)
    assert (done['sid'], done['code'], done['enhanced'], done['queue_id'], done['size'],
            done['upstream']) == (sid, 250, '2.0.0', upstream_id, len(BODY),
                                  '127.0.0.1:%d' % sink.port)


# ---- the pool: reuse, RSET, pipelining ----


def test_two_sessions_share_one_upstream_connection_and_the_second_starts_with_rset(
        make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), workers=1)
    first = send_one(relay)
    second = send_one(relay, rcpts=['y@example.com'])

    assert first[0] == 250 and second[0] == 250, (first, second)
    [one, two] = wait_events(sink, 'sink.message', 2)
    assert (one['session'], one['msg_in_session']) == (1, 1)
    assert (two['session'], two['msg_in_session']) == (1, 2)
    assert len(sink.events('sink.open')) == 1
    got = reads(sink, 1)
    stored = sink.messages()
    size = [len(s) for s in stored]
    # The first transaction has no RSET; the second's RSET, MAIL and RCPT are one write.
    assert envelope(ALICE, ['x@example.com'], size[0]) in got
    assert envelope(ALICE, ['y@example.com'], size[1], rset=True) in got
    assert transcript(sink, 1).count(b'RSET\r\n') == 1
    assert [client_bytes(s) for s in stored] == [BODY, BODY]
    assert [d['reused'] for d in relay.wait_logs('relay.done', 2)] == [False, True]
    assert len(relay.logs('upstream.connect')) == 1


def test_mail_and_every_rcpt_go_in_one_read_when_the_upstream_offers_pipelining(
        make_relay, sink):
    relay = make_relay(upstream_conf(sink.port))
    rcpts = ['a@example.com', 'b@example.com', 'c@example.com']
    code, text = send_one(relay, rcpts=rcpts)

    assert code == 250, text
    [stored] = sink.wait_messages(1)
    assert envelope(ALICE, rcpts, len(stored)) in reads(sink, 1)
    assert [d['pipelining'] for d in relay.logs('upstream.ready')] == [True]
    assert only_done(relay)['code'] == 250


def test_the_envelope_goes_one_command_per_read_without_pipelining(make_relay, make_sink):
    sink = make_sink('--no-pipelining')
    relay = make_relay(upstream_conf(sink.port), workers=1)
    rcpts = ['a@example.com', 'b@example.com', 'c@example.com']
    assert send_one(relay, rcpts=rcpts)[0] == 250
    assert send_one(relay, rcpts=rcpts)[0] == 250

    stored = sink.wait_messages(2)
    got = reads(sink, 1)
    commands = [r for r in got if r[:4] in (b'RSET', b'MAIL', b'RCPT')]
    rcpt_lines = [b'RCPT TO:<%s>\r\n' % r.encode() for r in rcpts]
    assert commands == (
        [b'MAIL FROM:<%s> SIZE=%d\r\n' % (ALICE.encode(), len(stored[0]))] + rcpt_lines +
        [b'RSET\r\n', b'MAIL FROM:<%s> SIZE=%d\r\n' % (ALICE.encode(), len(stored[1]))] +
        rcpt_lines)
    assert [d['pipelining'] for d in relay.logs('upstream.ready')] == [False]
    assert [client_bytes(s) for s in stored] == [BODY, BODY]


# ---- BDAT or DATA ----


def test_bdat_carries_the_message_as_is_when_the_upstream_offers_chunking(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port))
    assert send_one(relay)[0] == 250

    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    got = transcript(sink, 1)
    assert b'BDAT %d LAST\r\n' % len(stored) + stored in got
    assert b'DATA\r\n' not in got
    assert [d['chunking'] for d in relay.logs('upstream.ready')] == [True]


def test_data_dot_stuffs_the_message_when_the_upstream_lacks_chunking(make_relay, make_sink):
    sink = make_sink('--no-chunking')
    relay = make_relay(upstream_conf(sink.port))
    assert send_one(relay)[0] == 250

    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    stuffed = re.sub(rb'(?m)^\.', b'..', stored)
    assert stuffed != stored
    got = transcript(sink, 1)
    assert b'DATA\r\n' + stuffed + b'.\r\n' in got
    assert b'BDAT' not in got
    assert [d['chunking'] for d in relay.logs('upstream.ready')] == [False]


# ---- the upstream refuses ----


@pytest.mark.parametrize('option, code, enhanced', [('--reject-rcpt', 550, '5.1.1'),
                                                    ('--tempfail-rcpt', 451, '4.3.0')])
def test_one_recipient_refused_upstream_refuses_the_whole_message_and_names_it(
        make_relay, make_sink, option, code, enhanced):
    sink = make_sink(option, 'doomed')
    relay = make_relay(upstream_conf(sink.port), workers=1)
    rcpts = ['a@example.com', 'doomed@example.com', 'c@example.com']
    got = send_one(relay, rcpts=rcpts)

    assert got[0] == code, got
    assert re.fullmatch(r'%s <doomed@example\.com>: upstream said: .+' % re.escape(enhanced),
                        got[1]), got
    assert_nothing_stored(sink, relay)
    # The upstream saw the refusal, then RSET, and never a message.
    wire = transcript(sink, 1)
    [relayed] = relay.wait_logs('upstream.relay')
    assert wire.endswith(envelope(ALICE, rcpts, relayed['size']) + b'RSET\r\n'), wire
    assert b'BDAT' not in wire and b'DATA' not in wire
    done = only_done(relay)
    assert (done['code'], done['enhanced']) == (code, enhanced)
    assert 'doomed@example.com' in done['text']
    assert relayed['failed_rcpt'] == 1
    # The connection stayed in sync: the next message goes over it.
    assert send_one(relay)[0] == 250
    [event] = wait_events(sink, 'sink.message', 1)
    assert (event['session'], event['msg_in_session']) == (1, 1)


@pytest.mark.parametrize('option, code, enhanced, text', [
    ('--reject-data', 554, '5.6.0', 'Message content rejected'),
    ('--tempfail-data', 451, '4.3.0', 'Message content temporarily rejected')])
def test_the_upstreams_refusal_of_the_data_reaches_the_client_as_given(
        make_relay, make_sink, option, code, enhanced, text):
    sink = make_sink(option, 'relay test')
    relay = make_relay(upstream_conf(sink.port))
    got = send_one(relay)

    assert got == (code, '%s %s' % (enhanced, text))
    assert_nothing_stored(sink, relay)
    [reject] = sink.events('sink.reject')
    assert reject['code'] == code
    done = only_done(relay)
    assert (done['code'], done['enhanced'], done['text']) == (code, enhanced, text)


# ---- the upstream fails ----


def test_an_upstream_with_nothing_listening_gets_451_4_4_1_and_no_acknowledgement(
        make_relay):
    port = free_port()
    relay = make_relay(upstream_conf(port))
    client = relay.smtps()
    code, text = transact(client, ALICE, ['x@example.com'])

    assert code == 451, text
    assert text.startswith('4.4.1 No upstream available (127.0.0.1:%d: connection refused'
                           % port), text
    assert client.noop()[0] == 250  # the session goes on
    client.quit()
    done = only_done(relay)
    assert (done['code'], done['enhanced'], done['queue_id']) == (451, '4.4.1', '')
    [relayed] = relay.logs('upstream.relay')
    assert relayed['status'] == 'unavailable'
    assert relay.logs('upstream.connect') == []


def test_an_upstream_dropping_the_connection_after_the_data_gets_451_4_4_2(
        make_relay, make_sink):
    sink = make_sink('--drop-data', 'relay test')
    relay = make_relay(upstream_conf(sink.port))
    code, text = send_one(relay)

    assert code == 451, text
    assert text.startswith('4.4.2 Upstream 127.0.0.1:%d failed: ' % sink.port), text
    assert_nothing_stored(sink, relay)
    assert len(wait_events(sink, 'sink.drop', 1)) == 1
    assert transcript(sink, 1).count(b'BDAT') == 1  # sent once: no second attempt
    done = only_done(relay)
    assert (done['code'], done['enhanced']) == (451, '4.4.2')
    [error] = relay.logs('upstream.error')
    assert error['stage'] == 'body'


def test_failover_delivers_through_the_second_server_when_the_first_is_down(
        make_relay, sink):
    down = free_port()
    relay = make_relay(sets(default=[server(down), server(sink.port)]))
    code, text = send_one(relay)

    assert code == 250, text
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert only_done(relay)['upstream'] == '127.0.0.1:%d' % sink.port
    [error] = relay.logs('upstream.error')
    assert (error['upstream'], error['addr'], error['stage']) == (
        '127.0.0.1:%d' % down, '127.0.0.1', 'connect')


def test_an_upstream_named_localhost_is_reached_on_whichever_address_listens(
        make_relay, sink):
    """Debian's /etc/hosts gives localhost ::1 before 127.0.0.1, and the sink listens on
    127.0.0.1 only: an address that refuses moves the same relay attempt on to the next.
    (Where localhost is 127.0.0.1 alone this passes without a failover; the unit test
    a_name_whose_first_address_refuses_relays_through_the_next fakes Debian's order.)"""
    relay = make_relay(sets(default=[server(sink.port, host='localhost')]))
    code, text = send_one(relay)

    assert code == 250, text
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert only_done(relay)['upstream'] == 'localhost:%d' % sink.port
    [connect] = relay.logs('upstream.connect')
    assert (connect['upstream'], connect['addr']) == ('localhost:%d' % sink.port, '127.0.0.1')
    for error in relay.logs('upstream.error'):  # ::1 first, where nothing listens
        assert error['stage'] == 'connect' and error['addr'] != '127.0.0.1', error


def test_the_sender_domain_route_picks_the_upstream_set(make_relay, make_sink):
    default, other = make_sink(), make_sink()
    relay = make_relay(sets(default=[server(default.port)], other=[server(other.port)]),
                       extra="routes = { ['example.net'] = 'other' },")
    assert send_one(relay, sender='carol@example.net')[0] == 250
    assert send_one(relay, sender=ALICE)[0] == 250

    [carol] = wait_events(other, 'sink.message', 1)
    [alice] = wait_events(default, 'sink.message', 1)
    assert carol['mail_from'] == 'carol@example.net'
    assert alice['mail_from'] == ALICE
    assert [client_bytes(m) for m in other.messages() + default.messages()] == [BODY, BODY]
    assert [(d['from'], d['upstream']) for d in relay.wait_logs('relay.done', 2)] == [
        ('carol@example.net', '127.0.0.1:%d' % other.port),
        (ALICE, '127.0.0.1:%d' % default.port)]


# ---- upstream TLS and AUTH ----


def tls_sink(make_sink, certs, *args):
    return make_sink('--tls-cert', str(certs / 'dev-ecdsa.crt'),
                     '--tls-key', str(certs / 'dev-ecdsa.key'), *args)


AUTH = {'user': 'relayuser', 'password': 'relay-secret'}


def test_starttls_upstream_with_a_verified_certificate_and_auth_relays(
        make_relay, make_sink, certs):
    sink = tls_sink(make_sink, certs, '--auth', 'relayuser:relay-secret')
    relay = make_relay(sets(default=[server(sink.port, 'starttls', verify=True,
                                            ca_file=str(certs / 'dev-ca.crt'), auth=AUTH)]))
    code, text = send_one(relay)

    assert code == 250, text
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    [event] = sink.events('sink.message')
    assert (event['tls'], event['auth']) == (True, 'relayuser')
    got = reads(sink, 1)
    # EHLO in clear, STARTTLS, handshake, then EHLO again and AUTH only inside TLS.
    assert got[:3] == [b'EHLO relay.test\r\n', b'STARTTLS\r\n', 'tls']
    assert got[3] == b'EHLO relay.test\r\n'
    assert got[4].startswith(b'AUTH PLAIN ')
    [ready] = relay.logs('upstream.ready')
    assert ready['tls'].startswith('TLSv1.') and ready['auth'] is True
    assert only_done(relay)['code'] == 250


def test_an_upstream_certificate_not_naming_tls_name_is_refused_with_451(
        make_relay, make_sink, certs):
    sink = tls_sink(make_sink, certs)
    relay = make_relay(sets(default=[server(sink.port, 'starttls', verify=True,
                                            ca_file=str(certs / 'dev-ca.crt'),
                                            tls_name='wrong.example.com')]))
    code, text = send_one(relay)

    assert code == 451, text
    assert text.startswith('4.4.2 No upstream available (127.0.0.1:%d: certificate '
                           'verification failed' % sink.port), text
    assert_nothing_stored(sink, relay)
    assert b'MAIL' not in transcript(sink, 1)
    [error] = relay.logs('upstream.error')
    assert error['stage'] == 'tls' and 'certificate verification failed' in error['error']


def test_a_certificate_mismatch_fails_over_to_the_next_server(make_relay, make_sink, certs):
    sink = tls_sink(make_sink, certs)
    ca = str(certs / 'dev-ca.crt')
    relay = make_relay(sets(default=[
        server(sink.port, 'starttls', ca_file=ca, tls_name='wrong.example.com'),
        server(sink.port, 'starttls', ca_file=ca, tls_name='localhost')]))
    code, text = send_one(relay)

    assert code == 250, text
    [event] = wait_events(sink, 'sink.message', 1)
    assert (event['session'], event['tls']) == (2, True)
    assert b'MAIL' not in transcript(sink, 1)
    assert client_bytes(sink.messages()[0]) == BODY
    [error] = relay.logs('upstream.error')
    assert 'certificate verification failed' in error['error']


def test_implicit_tls_upstream_relays(make_relay, make_sink, certs):
    sink = tls_sink(make_sink, certs, '--implicit-tls')
    relay = make_relay(sets(default=[server(sink.port, 'implicit',
                                            ca_file=str(certs / 'dev-ca.crt'))]))
    code, text = send_one(relay)

    assert code == 250, text
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert sink.events('sink.message')[0]['tls'] is True
    assert reads(sink, 1)[:2] == ['tls', b'EHLO relay.test\r\n']
    [connect] = relay.logs('upstream.connect')
    assert connect['tls'] == 'implicit'


@pytest.mark.parametrize('mode', ['implicit', 'starttls'])
def test_a_new_upstream_tls_connection_resumes_the_session_of_the_one_before(
        make_relay, make_sink, certs, mode):
    # max_reuse = 1: every message on a new upstream connection. The first handshake is
    # a full one; the second offers the session (TLS 1.3 ticket) the first was given.
    sink = tls_sink(make_sink, certs, *(['--implicit-tls'] if mode == 'implicit' else []))
    relay = make_relay(sets(default=[server(sink.port, mode, verify=True,
                                            ca_file=str(certs / 'dev-ca.crt'),
                                            tls_name='localhost')]),
                       extra='pool = { max_reuse = 1 },')
    for _ in range(3):
        code, text = send_one(relay)
        assert code == 250, text
    assert [client_bytes(m) for m in sink.wait_messages(3)] == [BODY] * 3
    ready = relay.wait_logs('upstream.ready', 3)
    assert [r['resumed'] for r in ready] == [False, True, True], ready
    assert all(r['tls'] == 'TLSv1.3' for r in ready), ready
    assert [e['tls'] for e in sink.events('sink.message')] == [True] * 3
    assert len(relay.logs('upstream.connect')) == 3  # three connections, not one reused


def test_a_session_is_offered_only_to_the_server_it_came_from(make_relay, make_sink, certs):
    # Two upstream sets, each its own server (another port): each one's second connection
    # resumes its own session; neither ever resumes with the other's.
    ca = str(certs / 'dev-ca.crt')
    one, two = tls_sink(make_sink, certs), tls_sink(make_sink, certs)
    relay = make_relay(sets(default=[server(one.port, 'starttls', verify=True, ca_file=ca,
                                            tls_name='localhost')],
                            partner=[server(two.port, 'starttls', verify=True, ca_file=ca,
                                            tls_name='localhost')]),
                       extra="pool = { max_reuse = 1 }, routes = { ['example.net'] = "
                             "'partner' },")
    for sender in (ALICE, 'carol@example.net', ALICE, 'carol@example.net'):  # sender routes
        code, text = send_one(relay, sender=sender)
        assert code == 250, text
    ready = relay.wait_logs('upstream.ready', 4)
    by_port = {}
    for r in ready:
        by_port.setdefault(r['upstream'], []).append(r['resumed'])
    assert by_port == {'127.0.0.1:%d' % one.port: [False, True],
                       '127.0.0.1:%d' % two.port: [False, True]}, ready
    assert len(one.wait_messages(2)) == 2 and len(two.wait_messages(2)) == 2


def test_a_reply_injected_behind_the_starttls_220_is_discarded(make_relay, make_sink, certs):
    sink = tls_sink(make_sink, certs, '--inject-before-tls')
    relay = make_relay(sets(default=[server(sink.port, 'starttls',
                                            ca_file=str(certs / 'dev-ca.crt'))]))
    code, text = send_one(relay)

    assert code == 250, text
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    sent = (sink.transcripts / 'conn-1.out').read_bytes()
    assert b'220 2.0.0 Ready to start TLS\r\n250 injected\r\n' in sent
    got = reads(sink, 1)
    assert got[:4] == [b'EHLO relay.test\r\n', b'STARTTLS\r\n', 'tls', b'EHLO relay.test\r\n']
    [tls] = relay.logs('upstream.tls')
    assert 'discarded 14 octets' in tls['msg']
    assert only_done(relay)['code'] == 250


# ---- dead, idle and worn-out pooled connections ----


def test_a_pooled_connection_whose_upstream_restarted_is_replaced(make_relay, make_sink):
    port = free_port()
    first = make_sink('--listen', '127.0.0.1:%d' % port)
    relay = make_relay(upstream_conf(port), workers=1)
    assert send_one(relay)[0] == 250
    first.stop()
    second = make_sink('--listen', '127.0.0.1:%d' % port)
    code, text = send_one(relay)

    assert code == 250, text
    assert len(first.wait_messages(1)) == 1
    [stored] = second.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert b'RSET' not in transcript(second, 1)  # a fresh connection
    assert [d['reused'] for d in relay.wait_logs('relay.done', 2)] == [False, False]
    assert len(relay.logs('upstream.connect')) == 2
    # Noticed while idle: the upstream's last reply (its 250) is not this error's.
    error = relay.logs('upstream.error')[0]
    assert (error['stage'], error['error']) == ('idle', 'peer closed')
    assert 'code' not in error and 'text' not in error, error
    assert relay.logs('upstream.close')[0]['reason'] == 'peer closed'


class KillSwitchProxy:
    """TCP proxy to the sink that can make its open connections die unnoticed: a doomed
    connection is closed, without a reply, when the relay next writes to it. That is
    the race docs/relay.md describes, an upstream's idle close crossing our RSET."""

    def __init__(self, target_port):
        self.target = target_port
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        self.doomed = set()
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(('127.0.0.1', self.target))
            with self.lock:
                self.conns.append((down, up))
            threading.Thread(target=self._pump, args=(down, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, False), daemon=True).start()

    def _pump(self, src, dst, from_relay):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b''
            if from_relay and src in self.doomed:
                data = b''
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def doom_all(self):
        with self.lock:
            self.doomed.update(down for down, _ in self.conns)

    def close(self):
        self.listener.close()
        for down, up in self.conns:
            down.close()
            up.close()


def test_a_pooled_connection_dead_at_rset_is_retried_once_on_a_new_one(make_relay, sink):
    proxy = KillSwitchProxy(sink.port)
    try:
        relay = make_relay(upstream_conf(proxy.port), workers=1)
        assert send_one(relay)[0] == 250
        proxy.doom_all()
        code, text = send_one(relay, rcpts=['y@example.com'])
    finally:
        proxy.close()

    assert code == 250, text
    events = wait_events(sink, 'sink.message', 2)
    assert [(e['session'], e['msg_in_session'], e['rcpt']) for e in events] == [
        (1, 1, ['x@example.com']), (2, 1, ['y@example.com'])]
    assert b'RSET' not in transcript(sink, 1) + transcript(sink, 2)  # never forwarded
    assert [client_bytes(m) for m in sink.messages()] == [BODY, BODY]
    [error] = relay.logs('upstream.error')
    assert error['stage'] == 'rset'
    done = relay.wait_logs('relay.done', 2)
    assert [(d['code'], d['reused']) for d in done] == [(250, False), (250, False)]
    assert len(relay.logs('upstream.connect')) == 2


def test_an_idle_upstream_connection_is_closed_with_quit_after_idle_timeout(
        make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), workers=1,
                       extra='pool = { idle_timeout = 1 },')
    assert send_one(relay)[0] == 250

    [close] = wait_events(sink, 'sink.close', 1, timeout=4)
    [message] = sink.events('sink.message')
    idle = _ts(close['ts']) - _ts(message['ts'])
    assert 0.9 <= idle <= 2.5, idle
    assert transcript(sink, 1).endswith(b'QUIT\r\n')
    [closed] = relay.wait_logs('upstream.close')
    assert (closed['reason'], closed['transactions']) == ('idle timeout', 1)


def _ts(stamp):
    """Seconds of the day from an ISO-8601 UTC log timestamp."""
    h, m, s = stamp.split('T')[1].rstrip('Z').split(':')
    return int(h) * 3600 + int(m) * 60 + float(s)


def test_max_reuse_2_moves_the_third_message_to_a_new_connection(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), workers=1, extra='pool = { max_reuse = 2 },')
    for _ in range(3):
        assert send_one(relay)[0] == 250

    events = wait_events(sink, 'sink.message', 3)
    assert [(e['session'], e['msg_in_session']) for e in events] == [(1, 1), (1, 2), (2, 1)]
    assert transcript(sink, 1).endswith(b'QUIT\r\n')
    assert b'RSET' not in transcript(sink, 2)
    [closed] = relay.logs('upstream.close')
    assert (closed['reason'], closed['transactions']) == ('max_reuse', 2)
    assert [d['reused'] for d in relay.wait_logs('relay.done', 3)] == [False, True, False]


# ---- big envelopes and messages ----


def test_a_message_to_50_recipients_is_relayed_once_to_all_of_them(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port))
    rcpts = ['r%02d@example.com' % i for i in range(50)]
    code, text = send_one(relay, rcpts=rcpts)

    assert code == 250, text
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert b'\tfor <' not in received_header(stored)  # only for a single recipient
    [event] = sink.events('sink.message')
    assert event['rcpt'] == rcpts
    assert envelope(ALICE, rcpts, len(stored)) in reads(sink, 1)
    done = only_done(relay)
    assert (done['code'], done['rcpts']) == (250, 50)


def test_a_5_mb_message_arrives_intact(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port))
    line = b'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n'
    lines = [b'.%06d ' % i + line if i % 7 == 0 else line for i in range(5 * 1024 * 1024 //
                                                                          len(line))]
    body = b'Subject: big\r\n\r\n' + b''.join(lines)
    assert len(body) >= 5 * 1000 * 1000
    client = relay.smtps(timeout=30)
    started = time.monotonic()
    code, text = transact(client, ALICE, ['x@example.com'], body)
    client.quit()

    assert code == 250, text
    assert time.monotonic() - started < 10
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == body
    assert sink.events('sink.message')[0]['size'] == len(stored)
    done = only_done(relay)
    assert (done['code'], done['size']) == (250, len(body))


def test_a_server_that_failed_lately_is_still_tried_after_the_others(make_relay, make_sink):
    first_port = free_port()
    second = make_sink()
    relay = make_relay(sets(default=[server(first_port), server(second.port)]), workers=1)
    assert send_one(relay)[0] == 250  # the first is down: marked, the second delivers
    second.stop()
    first = make_sink('--listen', '127.0.0.1:%d' % first_port)
    code, text = send_one(relay)  # within 10 s: the second first, then the first again

    assert code == 250, text
    [stored] = first.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert [d['upstream'] for d in relay.wait_logs('relay.done', 2)] == [
        '127.0.0.1:%d' % second.port, '127.0.0.1:%d' % first_port]


@pytest.mark.parametrize('chunking', [True, False])
def test_a_message_without_a_final_crlf_gets_one(make_relay, make_sink, chunking):
    sink = make_sink() if chunking else make_sink('--no-chunking')
    relay = make_relay(upstream_conf(sink.port))
    body = b'Subject: no end\r\n\r\nlast line\r\n.starts with a dot, no CRLF'
    with relay.raw_authed() as client:
        assert client.cmd('MAIL FROM:<%s>' % ALICE).code == 250
        assert client.cmd('RCPT TO:<x@example.com>').code == 250
        client.send(b'BDAT %d LAST\r\n' % len(body) + body)
        reply = client.reply()

    assert reply.code == 250, reply
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == body + b'\r\n'
    wire = transcript(sink, 1)
    if chunking:
        assert b'BDAT %d LAST\r\n' % len(stored) + stored in wire
    else:
        assert wire.endswith(b'\r\n..starts with a dot, no CRLF\r\n.\r\n')


@pytest.mark.parametrize('shift', [0, 1, 2])
def test_dot_stuffing_is_right_wherever_a_256_kib_write_boundary_falls(
        make_relay, make_sink, shift):
    """The message goes out in 256 KiB pieces; lines of a lone '.' (3 octets) put a
    piece boundary before the dot, between dot and CR, or between CR and LF: `shift`
    moves the lines by one octet so that the three runs cover all three."""
    sink = make_sink('--no-chunking')
    relay = make_relay(upstream_conf(sink.port))
    body = b'Subject: dots' + b'x' * shift + b'\r\n\r\n' + b'.\r\n' * (600 * 1024 // 3)
    client = relay.smtps(timeout=30)
    code, text = transact(client, ALICE, ['x@example.com'], body)
    client.quit()

    assert code == 250, text
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == body
    assert b'DATA\r\n' + stored.replace(b'\r\n.', b'\r\n..') + b'.\r\n' in transcript(sink, 1)


@pytest.mark.parametrize('code', ['554', '421'])
def test_a_server_refusing_its_greeting_is_skipped_for_the_next(make_relay, make_sink, code):
    refusing, good = make_sink('--greeting-code', code), make_sink()
    relay = make_relay(sets(default=[server(refusing.port), server(good.port)]))
    got = send_one(relay)

    assert got[0] == 250, got
    [stored] = good.wait_messages(1)
    assert client_bytes(stored) == BODY
    assert_nothing_stored(refusing, relay)
    [error] = relay.logs('upstream.error')
    assert (error['stage'], error['code']) == ('greeting', int(code))


def test_a_server_refusing_its_greeting_alone_gets_451_4_4_1(make_relay, make_sink):
    refusing = make_sink('--greeting-code', '554')
    relay = make_relay(upstream_conf(refusing.port))
    code, text = send_one(relay)

    assert code == 451, text
    assert text.startswith('4.4.1 No upstream available (127.0.0.1:%d: greeting refused: 554'
                           % refusing.port), text
    assert_nothing_stored(refusing, relay)
    assert (only_done(relay)['code'], only_done(relay)['enhanced']) == (451, '4.4.1')


def concurrently(*calls, between):
    """Run each call in its own thread, starting the next once between(i) (i: the number
    started so far) has seen the earlier ones under way; their results in order."""
    results = [None] * len(calls)

    def run(i, call):
        try:
            results[i] = call()
        except Exception as e:  # noqa: BLE001 - reported as the result
            results[i] = e
    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for i, t in enumerate(threads, 1):
        t.start()
        if i < len(threads):
            between(i)  # in this order
    for t in threads:
        t.join(30)
    return results


def test_a_message_waits_for_the_only_connection_and_then_goes_over_it(make_relay, make_sink):
    sink = make_sink('--delay-ms', '700')
    relay = make_relay(upstream_conf(sink.port), workers=1,
                       extra='pool = { max_per_worker = 1 },')
    first, second = concurrently(lambda: send_one(relay),
                                 lambda: send_one(relay, rcpts=['y@example.com']),
                                 between=lambda i: wait_until(
                                     lambda: len(sink.events('sink.open')) >= i,
                                     'the first message to hold the only connection'))

    assert first[0] == 250 and second[0] == 250, (first, second)
    events = wait_events(sink, 'sink.message', 2)
    assert [(e['session'], e['msg_in_session'], e['rcpt']) for e in events] == [
        (1, 1, ['x@example.com']), (1, 2, ['y@example.com'])]
    assert len(sink.events('sink.open')) == 1
    # The second waited for the first's 700 ms, then took its own: it was queued.
    assert [r['ms'] >= 1000 for r in relay.wait_logs('upstream.relay', 2)] == [False, True]


def test_a_message_waiting_longer_than_the_upstream_timeout_gets_451_4_4_5(
        make_relay, make_sink):
    sink = make_sink('--delay-ms', '1800')
    relay = make_relay(upstream_conf(sink.port), workers=1,
                       extra='pool = { max_per_worker = 1 },', timeouts='upstream = 1,')
    first, second = concurrently(lambda: send_one(relay),
                                 lambda: send_one(relay, rcpts=['y@example.com']),
                                 between=lambda i: wait_until(
                                     lambda: len(sink.events('sink.open')) >= i,
                                     'the first message to hold the only connection'))

    assert first[0] == 250, first
    assert second == (451, '4.4.5 All upstream connections are busy, try again later')
    [event] = wait_events(sink, 'sink.message', 1)
    assert event['rcpt'] == ['x@example.com']
    assert sorted(d['code'] for d in relay.wait_logs('relay.done', 2)) == [250, 451]


def test_a_client_leaving_during_the_relay_cancels_it_and_the_connection_is_not_pooled(
        make_relay, make_sink):
    sink = make_sink('--delay-ms', '800')
    relay = make_relay(upstream_conf(sink.port), workers=1)
    with relay.raw_authed() as client:
        assert client.cmd('MAIL FROM:<%s>' % ALICE).code == 250
        assert client.cmd('RCPT TO:<x@example.com>').code == 250
        client.send(b'BDAT %d LAST\r\n' % len(BODY) + BODY)
        wire = sink.transcripts / 'conn-1.in'
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (wire.exists() and
                                                   wire.read_bytes().endswith(BODY)):
            time.sleep(0.02)
        assert wire.read_bytes().endswith(BODY)  # in flight: the sink holds its answer
    [closed] = relay.wait_logs('upstream.close')
    assert closed['reason'] == 'cancelled'
    assert relay.logs('relay.done') == []
    # The next message does not get the cancelled connection's late 250.
    code, text = send_one(relay, rcpts=['y@example.com'])
    assert code == 250, text
    events = wait_events(sink, 'sink.message', 2)
    assert [e['session'] for e in events if e['rcpt'] == ['y@example.com']] == [2]


def test_an_upstream_refusing_our_credentials_gets_451_4_4_1(make_relay, make_sink, certs):
    sink = tls_sink(make_sink, certs, '--auth', 'relayuser:relay-secret')
    relay = make_relay(sets(default=[server(sink.port, 'starttls',
                                            ca_file=str(certs / 'dev-ca.crt'),
                                            auth={'user': 'relayuser',
                                                  'password': 'wrong'})]))
    code, text = send_one(relay)

    assert code == 451, text
    assert text.startswith('4.4.1 No upstream available (127.0.0.1:%d: AUTH refused: 535'
                           % sink.port), text
    assert 'wrong' not in text
    assert_nothing_stored(sink, relay)
    assert b'MAIL' not in transcript(sink, 1)
    [error] = relay.logs('upstream.error')
    assert (error['stage'], error['code']) == ('auth', 535)


def test_a_starttls_upstream_that_does_not_offer_it_is_never_used_in_clear(make_relay, sink):
    relay = make_relay(sets(default=[server(sink.port, 'starttls')]))
    code, text = send_one(relay)

    assert code == 451, text
    assert text == ('4.4.1 No upstream available (127.0.0.1:%d: upstream does not offer '
                    'STARTTLS)' % sink.port)
    assert_nothing_stored(sink, relay)
    assert wait_events(sink, 'sink.close', 1)
    assert reads(sink, 1) == [b'EHLO relay.test\r\n']  # then it hung up


def test_a_message_over_the_upstreams_size_gets_552_and_is_never_sent(make_relay, make_sink):
    sink = make_sink('--max-size', '300')
    relay = make_relay(upstream_conf(sink.port))
    code, text = send_one(relay)

    assert (code, text) == (552, "5.3.4 Message size exceeds the upstream's limit")
    assert_nothing_stored(sink, relay)
    assert b'MAIL' not in transcript(sink, 1)
    done = only_done(relay)
    assert (done['code'], done['enhanced']) == (552, '5.3.4')
