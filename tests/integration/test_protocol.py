"""SMTP as docs/smtp.md describes it, with real clients (swaks, smtplib, raw sockets)
against a real `sluice run` relaying to a real `sluice sink`.

Each test checks what the client got, the exact bytes the sink stored (the client's
message after our Received: header, see conftest.client_bytes) and the daemon's log.

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_protocol.py
"""
import email.utils
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import ALICE, PASSWORDS, b64, client_bytes, received_header, upstream_conf

# Lines starting with '.', a lone '.', an empty line at the end: what dot-stuffing is for.
MESSAGE = (b'From: alice@example.org\r\nTo: bob@example.com\r\nSubject: dots\r\n\r\n'
           b'.a line that starts with a dot\r\n..two dots\r\n.\r\n'
           b'a . in the middle\r\n. \r\n\r\n')

QUEUED = rb'250 2\.0\.0 Ok: queued as ([0-9a-f]{8,16})\.(\d+) upstream (\S+)'


def swaks(relay, mode, mech, data_file, *extra):
    """swaks over implicit TLS (--tlsc) or STARTTLS (--tls), verifying our certificate."""
    port = relay.smtps_port if mode == 'implicit' else relay.submission_port
    cmd = ['swaks', '--server', '%s:%d' % (relay.host, port),
           '--tlsc' if mode == 'implicit' else '--tls', '--tls-verify',
           '--tls-ca-path', relay.cafile, '--ehlo', 'client.test',
           '--auth', mech, '--auth-user', ALICE, '--auth-password', PASSWORDS[ALICE],
           '--from', ALICE, '--to', 'bob@example.com', '--data', '@' + str(data_file)]
    return subprocess.run(cmd + list(extra), capture_output=True, timeout=60)


def swaks_file(tmp_path, message):
    """swaks adds the CRLF that ends the last line itself, so the file leaves it out."""
    assert message.endswith(b'\r\n')
    path = tmp_path / 'message.eml'
    path.write_bytes(message[:-2])
    return path


def sent_and_stored(relay, sink, out):
    """The queue ids in swaks' transcript, checked against the sink and the log."""
    m = re.search(QUEUED, out)
    assert m, out.decode(errors='replace')
    sid, n, upstream_id = m.group(1).decode(), int(m.group(2)), m.group(3).decode()
    [event] = sink.events('sink.message')
    assert event['file'] == 'new/' + upstream_id
    [done] = relay.wait_logs('relay.done')
    assert (done['sid'], done['code'], done['queue_id']) == (sid, 250, upstream_id)
    return sid, n


@pytest.mark.parametrize('mode, mech', [('implicit', 'PLAIN'), ('implicit', 'LOGIN'),
                                        ('starttls', 'PLAIN'), ('starttls', 'LOGIN')])
def test_swaks_message_with_dot_lines_arrives_byte_exact(relay, sink, tmp_path, mode, mech):
    proc = swaks(relay, mode, mech, swaks_file(tmp_path, MESSAGE))
    assert proc.returncode == 0, proc.stdout.decode(errors='replace')
    assert b'..a line that starts with a dot\r\n' in proc.stdout  # swaks stuffed it
    assert b'235 2.7.0 Authentication successful' in proc.stdout
    sid, n = sent_and_stored(relay, sink, proc.stdout)
    [stored] = sink.messages()
    assert client_bytes(stored) == MESSAGE
    assert n == 1
    [ok] = relay.logs('auth.ok')
    assert (ok['sid'], ok['mech'], ok['user'], ok['domain']) == (sid, mech, ALICE,
                                                                 'example.org')
    event = sink.events('sink.message')[0]
    assert event['mail_from'] == ALICE and event['rcpt'] == ['bob@example.com']
    assert event['size'] == len(stored)


def test_swaks_one_megabyte_message_arrives_byte_exact(relay, sink, tmp_path):
    lines = []
    for i in range(14000):  # ~1 MiB of 76-octet lines, every 7th starting with a dot
        lines.append((b'.' if i % 7 == 0 else b'') + (b'%05d ' % i) * 12 + b'\r\n')
    body = b''.join(lines)
    message = b'Subject: big\r\n\r\n' + body
    assert 1_000_000 < len(message) < 1_100_000
    proc = swaks(relay, 'implicit', 'PLAIN', swaks_file(tmp_path, message), '--suppress-data')
    assert proc.returncode == 0, proc.stdout.decode(errors='replace')
    sent_and_stored(relay, sink, proc.stdout)
    [stored] = sink.messages()
    assert client_bytes(stored) == message
    assert relay.logs('relay.done')[0]['size'] == len(message)


def test_three_messages_in_one_session_arrive_in_order(relay, sink):
    with relay.smtps() as c:
        for i in range(1, 4):
            msg = b'Subject: number %d\r\n\r\nbody %d\r\n' % (i, i)
            assert c.sendmail(ALICE, ['r%d@example.com' % i], msg) == {}
            code, text = c.noop()
            assert code == 250
    stored = sink.wait_messages(3)
    assert [client_bytes(m) for m in stored] == [
        b'Subject: number %d\r\n\r\nbody %d\r\n' % (i, i) for i in range(1, 4)]
    ids = [re.search(rb' id ([0-9a-f]{8,16}\.\d+)\r\n', received_header(m)).group(1)
           for m in stored]
    sid = relay.logs('auth.ok')[0]['sid']
    assert ids == [b'%s.%d' % (sid.encode(), i) for i in range(1, 4)]
    assert [e['rcpt'] for e in sink.events('sink.message')] == [
        ['r1@example.com'], ['r2@example.com'], ['r3@example.com']]
    done = relay.wait_logs('relay.done', 3)
    assert [(d['sid'], d['code']) for d in done] == [(sid, 250)] * 3
    [close] = relay.wait_logs('session.close')
    assert close['messages'] == 3


def test_pipelined_batch_over_tls_gets_all_replies_in_order_in_one_write(relay, sink):
    c = relay.raw_authed()
    c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<one@example.com>\r\n'
           b'RCPT TO:<two@example.com>\r\nDATA\r\n')
    first = c.sock.recv(65536)  # one TLS record carries the whole batch of replies
    assert first == (b'250 2.1.0 Sender ok\r\n250 2.1.5 Recipient ok\r\n'
                     b'250 2.1.5 Recipient ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n')
    c.send(b'Subject: pipelined\r\n\r\n..dot\r\n.\r\nQUIT\r\n')
    queued, bye = c.replies(2)
    assert queued.code == 250 and re.match(QUEUED[4:], queued.text)
    assert bye == (221, b'2.0.0 Bye')
    assert c.at_eof()
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: pipelined\r\n\r\n.dot\r\n'
    assert b'\tfor <' not in received_header(stored)  # two recipients: no "for"
    assert sink.events()[0]['rcpt'] == ['one@example.com', 'two@example.com']
    assert relay.wait_logs('relay.done')[0]['rcpts'] == 2


def test_eight_bit_body_with_body_8bitmime_is_relayed_untouched(relay, sink):
    message = (b'Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n'
               b'Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9 \xe2\x82\xac \xff\xfe\x80\r\n')
    with relay.smtps() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], message,
                          mail_options=['BODY=8BITMIME']) == {}
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == message
    assert re.search(rb'\r\nMAIL FROM:<alice@example\.org> [^\r]*BODY=8BITMIME',
                     sink.transcript_in())
    assert relay.wait_logs('relay.done')[0]['code'] == 250


def test_smtputf8_local_part_reaches_the_sink_with_smtputf8(relay, sink):
    sender, rcpt = 'jöran@example.org', 'dørte@exämple.com'
    message = 'Subject: ünïcode\r\n\r\nhej då\r\n'.encode()
    with relay.smtps() as c:
        assert c.sendmail(sender, [rcpt], message, mail_options=['SMTPUTF8']) == {}
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == message
    assert b' with UTF8SMTPSA id ' in received_header(stored)
    assert ('\tfor <%s>;' % rcpt).encode() in received_header(stored)
    [event] = sink.events()
    assert event['mail_from'] == sender and event['rcpt'] == [rcpt]
    upstream_in = sink.transcript_in()
    assert re.search(('MAIL FROM:<%s> [^\r]*SMTPUTF8\r\n' % sender).encode(), upstream_in)
    assert relay.wait_logs('relay.done')[0]['from'] == sender


def test_utf8_address_without_smtputf8_gets_553(relay, sink):
    c = relay.raw_authed()
    assert c.cmd('MAIL FROM:<jöran@example.org>'.encode()) == (
        553, b'5.6.7 Non-ASCII address needs SMTPUTF8')
    assert c.cmd(b'MAIL FROM:<alice@example.org>') == (250, b'2.1.0 Sender ok')
    assert c.cmd('RCPT TO:<dørte@example.com>'.encode()) == (
        553, b'5.6.7 Non-ASCII address needs SMTPUTF8')
    c.close()
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 2)] == [553, 553]
    assert sink.messages() == []


def test_bdat_in_two_chunks_is_stored_without_unstuffing(relay, sink):
    one = b'Subject: chunks\r\n\r\n.a dot that stays\r\n'
    two = b'..two dots stay too\r\nend\r\n'
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<alice@example.org>').code == 250
    assert c.cmd(b'RCPT TO:<bob@example.com>').code == 250
    c.send(b'BDAT %d\r\n' % len(one) + one)
    assert c.reply() == (250, b'2.0.0 %d octets received' % len(one))
    c.send(b'BDAT %d LAST\r\n' % len(two) + two)
    reply = c.reply()
    assert reply.code == 250 and re.match(QUEUED[4:], reply.text), reply
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == one + two
    assert relay.wait_logs('relay.done')[0]['size'] == len(one + two)


def test_bdat_0_last_ends_a_message_pipelined_in_one_write(relay, sink):
    chunk = b'Subject: zero last\r\n\r\nbody\r\n'
    c = relay.raw_authed()
    c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n'
           b'BDAT %d\r\n' % len(chunk) + chunk + b'BDAT 0 LAST\r\nQUIT\r\n')
    replies = c.replies(5)
    assert replies[:3] == [(250, b'2.1.0 Sender ok'), (250, b'2.1.5 Recipient ok'),
                           (250, b'2.0.0 %d octets received' % len(chunk))]
    assert replies[3].code == 250 and re.match(QUEUED[4:], replies[3].text)
    assert replies[4] == (221, b'2.0.0 Bye')
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == chunk


def test_rset_mid_transaction_forgets_the_envelope(relay, sink):
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<alice@example.org>').code == 250
    assert c.cmd(b'RCPT TO:<forgotten@example.com>').code == 250
    assert c.cmd(b'RSET') == (250, b'2.0.0 Reset')
    assert c.cmd(b'DATA') == (503, b'5.5.1 Need MAIL command first')
    assert c.cmd(b'MAIL FROM:<alice@example.org>').code == 250
    assert c.cmd(b'RCPT TO:<kept@example.com>').code == 250
    assert c.cmd(b'DATA').code == 354
    assert c.cmd(b'Subject: after rset\r\n\r\nx\r\n.').code == 250
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: after rset\r\n\r\nx\r\n'
    assert sink.events()[0]['rcpt'] == ['kept@example.com']
    assert b'forgotten' not in sink.transcript_in()
    assert [r['code'] for r in relay.wait_logs('smtp.reject')] == [503]


def test_vrfy_help_noop_and_quit_answer_as_documented(relay, sink):
    c = relay.raw()
    assert c.greeting == (220, b'relay.test ESMTP sluice ready')
    assert c.cmd(b'EHLO client.test').code == 250
    assert c.cmd(b'VRFY alice') == (252, b'2.5.0 Cannot VRFY user, but will accept message')
    assert c.cmd(b'VRFY nobody-at-all') == (252, b'2.5.0 Cannot VRFY user, but will accept '
                                                 b'message')
    code, text = c.cmd(b'HELP')
    assert code == 214 and b'Commands: EHLO' in text and len(text.split(b'\n')) == 2
    assert c.cmd(b'NOOP') == (250, b'2.0.0 Ok')
    assert c.cmd(b'NOOP with an argument') == (250, b'2.0.0 Ok')
    assert c.cmd(b'EXPN staff') == (502, b'5.5.1 EXPN not available')
    assert c.cmd(b'QUIT') == (221, b'2.0.0 Bye')
    assert c.at_eof()
    c.close()
    [close] = relay.wait_logs('session.close')
    assert close['reason'] == 'Bye' and close['commands'] == 8 and close['messages'] == 0
    assert list(sink.transcripts.iterdir()) == []  # nothing reached the upstream


def test_ehlo_again_after_a_transaction_starts_afresh_and_stays_authenticated(relay, sink):
    with relay.smtps() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: 1\r\n\r\none\r\n') == {}
        code, text = c.ehlo('again.test')
        assert code == 250 and text.startswith(b'relay.test Hello again.test [127.0.0.1]\n')
        assert b'\nAUTH ' not in text  # already authenticated
        assert c.mail(ALICE) == (250, b'2.1.0 Sender ok')
        assert c.ehlo('third.test')[0] == 250  # EHLO resets the transaction ...
        assert c.rcpt('bob@example.com') == (503, b'5.5.1 Need MAIL command first')
        # ... but not the authentication
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: 2\r\n\r\ntwo\r\n') == {}
    first, second = sink.wait_messages(2)
    assert client_bytes(first) == b'Subject: 1\r\n\r\none\r\n'
    assert client_bytes(second) == b'Subject: 2\r\n\r\ntwo\r\n'
    assert received_header(first).startswith(b'Received: from client.test ([127.0.0.1])')
    assert received_header(second).startswith(b'Received: from third.test ([127.0.0.1])')
    assert len(relay.logs('auth.ok')) == 1
    assert len(relay.wait_logs('relay.done', 2)) == 2


MONTHS = b'(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)'


def test_received_header_records_esmtpsa_tls_and_the_one_recipient(relay, sink):
    with relay.smtps() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: trace\r\n\r\nx\r\n') == {}
    [stored] = sink.wait_messages(1)
    [tls] = relay.logs('tls.established')
    header = received_header(stored)
    m = re.fullmatch(
        rb'Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n'
        rb'\tby relay\.test \(sluice\) with ESMTPSA id ([0-9a-f]{8,16})\.1\r\n'
        rb'\t\(using (\S+) with cipher (\S+)\)\r\n'
        rb'\tfor <bob@example\.com>;\r\n'
        rb'\t((Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d ' + MONTHS +
        rb' \d{4} \d\d:\d\d:\d\d \+0000)\r\n', header)
    assert m, header
    assert m.group(1).decode() == tls['sid']
    assert (m.group(2).decode(), m.group(3).decode()) == (tls['version'], tls['cipher'])
    assert tls['version'] == 'TLSv1.3'
    when = email.utils.parsedate_to_datetime(m.group(4).decode()).timestamp()
    assert abs(when - time.time()) < 60
    assert client_bytes(stored) == b'Subject: trace\r\n\r\nx\r\n'
    assert b'alice' not in header  # the user name is not disclosed


def test_received_header_over_starttls_has_the_tls_line_too(relay, sink):
    with relay.submission() as c:
        assert c.sendmail(ALICE, ['bob@example.com'], b'Subject: s\r\n\r\nx\r\n') == {}
    [stored] = sink.wait_messages(1)
    [tls] = relay.logs('tls.established')
    assert (b'\t(using %s with cipher %s)\r\n' % (tls['version'].encode(),
                                                  tls['cipher'].encode())
            in received_header(stored))
    assert b' with ESMTPSA id ' in received_header(stored)


def test_helo_then_auth_gets_503(relay, sink):
    c = relay.raw()
    assert c.cmd(b'HELO client.test') == (250, b'relay.test Hello client.test [127.0.0.1]')
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PASSWORDS[ALICE]))) == (
        503, b'5.5.1 Send EHLO first')
    assert c.cmd(b'MAIL FROM:<alice@example.org>') == (530, b'5.7.0 Authentication required')
    c.close()
    assert relay.logs('auth.ok') == [] and relay.logs('auth.fail') == []
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 2)] == [503, 530]
    assert sink.messages() == []


def test_two_messages_pipelined_in_one_write_are_relayed_in_order(relay, sink):
    c = relay.raw_authed()
    batch = b''
    for i in (1, 2):
        batch += (b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<r%d@example.com>\r\nDATA\r\n'
                  b'Subject: %d\r\n\r\n.%d\r\n.\r\n' % (i, i, i))
    c.send(batch + b'QUIT\r\n')
    replies = c.replies(9)
    assert [r.code for r in replies] == [250, 250, 354, 250, 250, 250, 354, 250, 221]
    assert [re.match(QUEUED[4:], replies[i].text).group(2) for i in (3, 7)] == [b'1', b'2']
    c.close()
    assert [client_bytes(m) for m in sink.wait_messages(2)] == [
        b'Subject: 1\r\n\r\n1\r\n', b'Subject: 2\r\n\r\n2\r\n']
    assert [e['rcpt'] for e in sink.events()] == [['r1@example.com'], ['r2@example.com']]
    assert len(relay.wait_logs('relay.done', 2)) == 2


def test_data_without_recipients_gets_554_and_the_transaction_goes_on(relay, sink):
    c = relay.raw_authed()
    assert c.cmd(b'DATA') == (503, b'5.5.1 Need MAIL command first')
    assert c.cmd(b'MAIL FROM:<alice@example.org>').code == 250
    assert c.cmd(b'MAIL FROM:<alice@example.org>') == (503, b'5.5.1 Nested MAIL command')
    assert c.cmd(b'DATA') == (554, b'5.5.1 No valid recipients')
    assert c.cmd(b'RCPT TO:<bob@example.com>').code == 250
    assert c.cmd(b'DATA').code == 354
    assert c.cmd(b'Subject: late\r\n\r\nx\r\n.').code == 250
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: late\r\n\r\nx\r\n'
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 3)] == [503, 503, 554]


def test_sigterm_answers_idle_sessions_421_and_lets_a_message_in_flight_finish(relay, sink):
    idle = relay.raw()
    assert idle.cmd(b'EHLO client.test').code == 250
    busy = relay.raw_authed()
    busy.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n'
              b'Subject: in flight\r\n\r\nfirst half\r\n')
    assert [r.code for r in busy.replies(3)] == [250, 250, 354]
    relay.proc.send_signal(signal.SIGTERM)
    assert idle.reply() == (421, b'4.3.2 Service shutting down')
    assert idle.at_eof()
    with pytest.raises(ConnectionRefusedError):  # no longer accepting
        socket.create_connection((relay.host, relay.smtps_port), timeout=5)
    busy.send(b'second half\r\n.\r\n')
    done = busy.reply()
    assert done.code == 250 and re.match(QUEUED[4:], done.text)
    assert busy.reply() == (421, b'4.3.2 Service shutting down')
    assert busy.at_eof()
    assert relay.proc.wait(15) == 0
    idle.close()
    busy.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n'
    assert [c['reason'] for c in relay.logs('session.close')] == ['Service shutting down'] * 2


def test_message_whose_last_tls_record_overflows_the_read_buffer_is_not_left_waiting(
        make_relay, sink):
    # The daemon is stopped while the message arrives whole, in 16 KiB TLS records. Woken,
    # it reads until its buffer (88 KiB) is full, inside the last record: the rest of that
    # record is already decrypted in OpenSSL, and the socket has nothing more to say.
    relay = make_relay(upstream_conf(sink.port), timeouts='data = 2')
    c = relay.raw_authed()
    c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n')
    assert [r.code for r in c.replies(3)] == [250, 250, 354]
    body = b'Subject: big\r\n\r\n' + (b'a' * 98 + b'\r\n') * 939
    body += b'b' * (93997 - len(body) - 2) + b'\r\n'
    assert 90112 < len(body + b'.\r\n') < 98304  # the 6th record holds the end
    relay.proc.send_signal(signal.SIGSTOP)
    try:
        sender = threading.Thread(target=c.send, args=(body + b'.\r\n',))
        sender.start()
        sender.join(1)  # 94 KB fit in the socket buffers
    finally:
        relay.proc.send_signal(signal.SIGCONT)
    sender.join(10)
    reply = c.reply()
    assert reply.code == 250 and re.match(QUEUED[4:], reply.text), reply
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == body
    assert relay.wait_logs('relay.done')[0]['size'] == len(body)
    assert relay.logs('smtp.reject') == []


def test_sigterm_during_a_starttls_handshake_gets_421_once_tls_is_up(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), timeouts='drain = 20')
    c = relay.raw(tls=False)
    assert c.cmd(b'EHLO client.test').code == 250
    assert c.cmd(b'STARTTLS') == (220, b'2.0.0 Ready to start TLS')
    relay.proc.send_signal(signal.SIGTERM)
    for _ in range(250):  # until the worker has stopped accepting: it is draining
        try:
            socket.create_connection((relay.host, relay.submission_port), timeout=5).close()
        except (ConnectionRefusedError, ConnectionResetError):  # reset: closed in the backlog
            break
        time.sleep(0.02)
    c.sock = relay.tls_context().wrap_socket(c.sock, server_hostname=c.host)
    started = time.monotonic()
    assert c.reply() == (421, b'4.3.2 Service shutting down')  # not 20 s later
    assert time.monotonic() - started < 5
    assert c.at_eof()
    c.close()
    assert relay.proc.wait(10) == 0
    assert relay.logs('worker.drain_timeout') == []
    assert 'Service shutting down' in [x['reason'] for x in relay.logs('session.close')]
    assert list(sink.transcripts.iterdir()) == []


@pytest.mark.parametrize('first', ['AUTH LOGIN', 'AUTH XOAUTH2 %s' % b64(
    'user=%s\x01auth=Bearer tok\x01\x01' % ALICE)], ids=['sasl-challenge', 'token-error'])
def test_sigterm_in_the_middle_of_auth_gets_421(relay, sink, first):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    assert c.cmd(first).code == 334
    relay.proc.send_signal(signal.SIGTERM)
    assert c.reply() == (421, b'4.3.2 Service shutting down')
    assert c.at_eof()
    c.close()
    assert relay.proc.wait(10) == 0
    [close] = relay.logs('session.close')
    assert close['reason'] == 'Service shutting down'
