"""AUTH as docs/smtp.md describes it: PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER in both the
initial-response and the challenge form, the failure replies, the limits, and the
sender-domain rule that follows from the authenticated identity.

Each test checks what the client got, what reached the sink and the daemon's log (and
that no secret is ever in it).

Run: SLUICE_BIN=build-asan/sluice /usr/bin/python3 -m pytest tests/integration/test_auth.py
"""
import base64
import json
import smtplib
import statistics
import time

import pytest

from conftest import ALICE, PASSWORDS, SHIPPED_POLICIES, b64, client_bytes, upstream_conf

PW = PASSWORDS[ALICE]
OK = (235, b'2.7.0 Authentication successful')
INVALID = (535, b'5.7.8 Authentication credentials invalid')
TOKEN = 'ya29.A0ARrdaM-token_value~with+allowed/chars'


def xoauth2(user=ALICE, token=TOKEN):
    return b64('user=%s\x01auth=Bearer %s\x01\x01' % (user, token))


def oauthbearer(user=ALICE, token=TOKEN):
    return b64('n,a=%s,\x01host=relay.test\x01port=465\x01auth=Bearer %s\x01\x01' % (
        user, token))


def send_one(c, subject):
    """A message on an authenticated RawClient; returns the client's final reply."""
    c.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n')
    assert [r.code for r in c.replies(3)] == [250, 250, 354]
    return c.cmd(b'Subject: %s\r\n\r\nbody\r\n.' % subject)


# Each exchange: (what the client sends, what it must get back), line by line.
PASSWORD_EXCHANGES = {
    'PLAIN-initial': [('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PW)), OK)],
    'PLAIN-challenge': [('AUTH PLAIN', (334, b'')), (b64('\0%s\0%s' % (ALICE, PW)), OK)],
    'PLAIN-same-authzid': [('AUTH PLAIN ' + b64('%s\0%s\0%s' % (ALICE, ALICE, PW)), OK)],
    'LOGIN-initial': [('AUTH LOGIN ' + b64(ALICE), (334, b'UGFzc3dvcmQ6')), (b64(PW), OK)],
    'LOGIN-challenge': [('auth login', (334, b'VXNlcm5hbWU6')),
                        (b64(ALICE), (334, b'UGFzc3dvcmQ6')), (b64(PW), OK)],
}


@pytest.mark.threads  # hashes in the thread pool
@pytest.mark.parametrize('name', PASSWORD_EXCHANGES)
def test_password_mechanism_authenticates_and_the_message_is_relayed(relay, sink, name):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    for line, expect in PASSWORD_EXCHANGES[name]:
        assert c.cmd(line) == expect, line
    reply = send_one(c, name.encode())
    assert reply.code == 250 and reply.text.startswith(b'2.0.0 Ok: queued as ')
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: %s\r\n\r\nbody\r\n' % name.encode()
    assert sink.events()[0]['mail_from'] == ALICE
    [ok] = relay.logs('auth.ok')
    assert (ok['mech'], ok['user'], ok['domain'], ok['ip']) == (
        name.split('-')[0], ALICE, 'example.org', '127.0.0.1')
    assert PW not in relay.err.read_text()


# The token is refused in this version: RFC 7628 3.2.2 error challenge, the client's
# answer, then 535.
TOKEN_EXCHANGES = {
    'XOAUTH2-initial': ['AUTH XOAUTH2 ' + xoauth2()],
    'XOAUTH2-challenge': ['AUTH XOAUTH2', xoauth2()],
    'OAUTHBEARER-initial': ['AUTH OAUTHBEARER ' + oauthbearer()],
    'OAUTHBEARER-challenge': ['AUTH OAUTHBEARER', oauthbearer()],
}
TOKEN_ERRORS = {
    'XOAUTH2': {'status': '400', 'schemes': 'Bearer', 'scope': 'smtp.send'},
    'OAUTHBEARER': {'status': 'invalid_token', 'schemes': 'bearer', 'scope': 'smtp.send'},
}


@pytest.mark.parametrize('name', TOKEN_EXCHANGES)
@pytest.mark.parametrize('answer', ['', 'AQ=='], ids=['empty', 'ctrl-A'])
def test_bearer_token_gets_the_json_error_challenge_then_535(relay, sink, name, answer):
    mech = name.split('-')[0]
    lines = TOKEN_EXCHANGES[name]
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    if len(lines) == 2:
        assert c.cmd(lines[0]) == (334, b'')
    code, challenge = c.cmd(lines[-1])
    assert code == 334
    assert json.loads(base64.b64decode(challenge, validate=True)) == TOKEN_ERRORS[mech]
    assert c.cmd(answer) == INVALID
    assert c.cmd(b'MAIL FROM:<alice@example.org>') == (530, b'5.7.0 Authentication required')
    c.close()
    [fail] = relay.wait_logs('auth.fail')
    assert (fail['mech'], fail['user'], fail['code']) == (mech, ALICE, 535)
    assert relay.logs('auth.ok') == []
    assert TOKEN not in relay.err.read_text()
    assert list(sink.transcripts.iterdir()) == []


@pytest.mark.parametrize('user, password', [
    (ALICE, 'Wr0ng-passw0rd-q7'),              # wrong password
    ('nobody@example.org', 'Wr0ng-passw0rd-q7'),  # unknown user, known domain
    ('alice@unknown.test', 'Wr0ng-passw0rd-q7'),  # unknown domain
    ('alice', 'Wr0ng-passw0rd-q7'),            # no domain at all
])
@pytest.mark.parametrize('mech', ['PLAIN', 'LOGIN'])
def test_wrong_password_and_unknown_user_get_the_same_535(relay, sink, user, password,
                                                          mech):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    if mech == 'PLAIN':
        reply = c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (user, password)))
    else:
        assert c.cmd('AUTH LOGIN ' + b64(user)) == (334, b'UGFzc3dvcmQ6')
        reply = c.cmd(b64(password))
    assert reply == INVALID
    assert c.cmd(b'NOOP') == (250, b'2.0.0 Ok')  # one failure does not end the session
    c.close()
    [fail] = relay.wait_logs('auth.fail')
    assert (fail['mech'], fail['user'], fail['code'], fail['ip']) == (
        mech, user, 535, '127.0.0.1')
    log = relay.err.read_text()
    assert password not in log and b64(password) not in log
    assert list(sink.transcripts.iterdir()) == []


@pytest.mark.parametrize('first', ['AUTH PLAIN', 'AUTH LOGIN ' + b64(ALICE), 'AUTH XOAUTH2'])
def test_star_cancels_the_exchange_with_501_and_auth_can_start_again(relay, sink, first):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    assert c.cmd(first).code == 334
    assert c.cmd(b'*') == (501, b'5.0.0 Authentication cancelled')
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PW))) == OK
    c.close()
    [fail] = relay.wait_logs('auth.fail')  # a cancel is a failed attempt too
    assert (fail['code'], fail['reason']) == (501, 'Authentication cancelled')
    assert len(relay.logs('auth.ok')) == 1


@pytest.mark.parametrize('lines', [
    ['AUTH PLAIN !!!!'],
    ['AUTH PLAIN', 'AGFsaWNl*'],
    ['AUTH PLAIN ' + b64('\0%s\0%s!' % (ALICE, PW)).rstrip('=')],  # unpadded
    ['AUTH LOGIN', 'YWxp Y2U='],
    ['AUTH XOAUTH2 not base64 at all'],
], ids=['ir-punctuation', 'challenge-star-inside', 'ir-unpadded', 'login-space',
        'xoauth2-words'])
def test_bad_base64_gets_501_5_5_2(relay, sink, lines):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    for line in lines[:-1]:
        assert c.cmd(line).code == 334
    assert c.cmd(lines[-1]) == (501, b'5.5.2 Invalid base64 data')
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PW))) == OK
    c.close()
    assert [r['code'] for r in relay.wait_logs('auth.fail')] == [501]


def test_malformed_payload_gets_501_5_5_2(relay, sink):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    assert c.cmd('AUTH PLAIN ' + b64('no nul bytes here')) == (
        501, b'5.5.2 Malformed authentication data')
    assert c.cmd('AUTH XOAUTH2 ' + b64('user=%s\x01\x01' % ALICE)) == (
        501, b'5.5.2 Malformed authentication data')
    assert c.cmd(b'AUTH CRAM-MD5') == (504, b'5.5.4 Unrecognized authentication type')
    c.close()
    assert [r['code'] for r in relay.wait_logs('auth.fail', 2)] == [501, 501]
    assert [r['code'] for r in relay.wait_logs('smtp.reject')] == [504]


def test_authzid_other_than_authcid_gets_535(relay, sink):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    # alice's own, correct password, asking to act as bob
    assert c.cmd('AUTH PLAIN ' + b64('bob@example.org\0%s\0%s' % (ALICE, PW))) == INVALID
    assert c.cmd(b'MAIL FROM:<bob@example.org>') == (530, b'5.7.0 Authentication required')
    c.close()
    [fail] = relay.wait_logs('auth.fail')
    assert (fail['user'], fail['code'], fail['reason']) == (
        ALICE, 535, 'authzid differs from authcid')
    assert relay.logs('auth.ok') == []
    assert PW not in relay.err.read_text()


def test_second_auth_after_success_gets_503(relay, sink):
    c = relay.raw_authed()
    assert c.cmd('AUTH PLAIN ' + b64('\0bob@example.org\0bob-pw')) == (
        503, b'5.5.1 Already authenticated')
    assert c.cmd(b'AUTH LOGIN') == (503, b'5.5.1 Already authenticated')
    reply = send_one(c, b'still alice')
    assert reply.code == 250
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: still alice\r\n\r\nbody\r\n'
    assert [o['user'] for o in relay.logs('auth.ok')] == [ALICE]
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 2)] == [503, 503]


def test_auth_inside_a_transaction_gets_503(relay, sink):
    c = relay.raw_authed()
    assert c.cmd(b'MAIL FROM:<alice@example.org>').code == 250
    assert c.cmd(b'AUTH PLAIN') == (503, b'5.5.1 Already authenticated')
    c.close()


def test_long_xoauth2_initial_response_is_not_a_long_line(relay, sink):
    token = ('abcdefghijklmnopqrstuvwxyz0123456789' * 200)[:3800]
    line = 'AUTH XOAUTH2 ' + xoauth2(token=token)
    assert len(line) > 5000
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    code, challenge = c.cmd(line)
    assert code == 334 and json.loads(base64.b64decode(challenge))['status'] == '400'
    assert c.cmd(b'') == INVALID
    # the same length as a SASL response after a 334
    assert c.cmd(b'AUTH XOAUTH2') == (334, b'')
    assert c.cmd(xoauth2(token=token)).code == 334
    assert c.cmd(b'') == INVALID
    c.close()
    assert [f['code'] for f in relay.wait_logs('auth.fail', 2)] == [535, 535]
    assert [r['text'] for r in relay.logs('smtp.reject')] == [INVALID[1][6:].decode()] * 2
    assert token not in relay.err.read_text()


def test_auth_line_limit_is_12288_octets(relay, sink):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    payload = xoauth2(token='t' * 9167)
    line = ('AUTH XOAUTH2 ' + payload + '\r\n').encode()
    assert len(line) == 12288 - 1  # the longest valid base64 that fits
    c.send(line)
    assert c.reply().code == 334
    assert c.cmd(b'') == INVALID
    c.send(b'AUTH XOAUTH2 ' + b'A' * (12289 - 15) + b'\r\n')
    assert c.reply() == (500, b'5.5.2 Line too long')
    assert c.cmd(b'NOOP') == (250, b'2.0.0 Ok')
    c.send(b'NOOP ' + b'A' * 600 + b'\r\n')  # other commands keep their 512
    assert c.reply() == (500, b'5.5.2 Line too long')
    c.close()


def test_sender_must_be_in_the_authenticated_domain_ignoring_case(relay, sink):
    c = relay.raw_authed()
    # the replies of policies/sender_domain.lua (docs/policies.md)
    for sender in [b'alice@example.net', b'alice@sub.example.org', b'alice@example.org.evil']:
        assert c.cmd(b'MAIL FROM:<%s>' % sender) == (
            550, b'5.7.1 Sender address is not in your domain'), sender
    assert c.cmd(b'MAIL FROM:<>') == (
        550, b'5.7.1 The null sender <> is not allowed for your domain')
    assert c.cmd(b'MAIL FROM:<Alice@EXAMPLE.Org>') == (250, b'2.1.0 Sender ok')
    assert c.cmd(b'RCPT TO:<bob@example.com>').code == 250
    assert c.cmd(b'DATA').code == 354
    assert c.cmd(b'Subject: case\r\n\r\nx\r\n.').code == 250
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: case\r\n\r\nx\r\n'
    assert sink.events()[0]['mail_from'] == 'Alice@EXAMPLE.Org'
    rejects = relay.wait_logs('smtp.reject', 4)
    assert [(r['code'], r['enhanced']) for r in rejects] == [(550, '5.7.1')] * 4


def test_smtplib_login_and_pipelined_auth_with_the_transaction(relay, sink):
    with relay.smtps(login=None) as s:
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(ALICE, 'not-it')  # smtplib tries PLAIN, then LOGIN
        assert (e.value.smtp_code, e.value.smtp_error) == INVALID
        assert s.login('carol@example.net', PASSWORDS['carol@example.net']) == OK
        assert s.sendmail('carol@example.net', ['x@example.com'], b'Subject: c\r\n\r\nc\r\n') \
            == {}
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    c.send(('AUTH PLAIN %s\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.com>\r\n'
            'DATA\r\n' % b64('\0%s\0%s' % (ALICE, PW))).encode())
    assert [r.code for r in c.replies(4)] == [235, 250, 250, 354]
    assert c.cmd(b'Subject: piped\r\n\r\nx\r\n.').code == 250
    c.close()
    first, second = sink.wait_messages(2)
    assert client_bytes(first) == b'Subject: c\r\n\r\nc\r\n'
    assert client_bytes(second) == b'Subject: piped\r\n\r\nx\r\n'
    assert [o['user'] for o in relay.logs('auth.ok')] == ['carol@example.net', ALICE]
    assert [(f['mech'], f['user']) for f in relay.logs('auth.fail')] == [('PLAIN', ALICE),
                                                                         ('LOGIN', ALICE)]


@pytest.fixture
def strict(make_relay, sink):
    return make_relay(upstream_conf(sink.port), limits='max_auth_failures = 2')


@pytest.mark.parametrize('attempt', [
    ['AUTH PLAIN ' + b64('\0%s\0wrong' % ALICE)],
    ['AUTH PLAIN ' + b64('bob@example.org\0%s\0%s' % (ALICE, PW))],
    ['AUTH XOAUTH2 ' + xoauth2(), ''],
], ids=['wrong-password', 'authzid', 'token'])
def test_too_many_auth_failures_get_the_535_then_421(strict, sink, attempt):
    c = strict.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    for line in attempt[:-1]:
        assert c.cmd(line).code == 334
    assert c.cmd(attempt[-1]) == INVALID
    for line in attempt[:-1]:
        assert c.cmd(line).code == 334
    c.send((attempt[-1] + '\r\n').encode())
    assert c.replies(2) == [INVALID, (421, b'4.7.0 Too many authentication failures')]
    assert c.at_eof()
    c.close()
    assert len(strict.wait_logs('auth.fail', 2)) == 2
    [close] = strict.wait_logs('session.close')
    assert close['reason'] == 'Too many authentication failures'
    assert list(sink.transcripts.iterdir()) == []


def test_listener_offers_and_accepts_only_its_configured_mechanisms(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port), sasl=['plain', 'XOAUTH2'])
    c = relay.raw()
    code, text = c.cmd(b'EHLO client.test')
    assert text.split(b'\n')[-1] == b'AUTH PLAIN XOAUTH2'
    assert c.cmd('AUTH LOGIN ' + b64(ALICE)) == (504, b'5.5.4 Unrecognized authentication type')
    assert c.cmd(b'AUTH OAUTHBEARER') == (504, b'5.5.4 Unrecognized authentication type')
    assert c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (ALICE, PW))) == OK
    assert send_one(c, b'plain only').code == 250
    c.close()
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: plain only\r\n\r\nbody\r\n'
    assert [r['code'] for r in relay.wait_logs('smtp.reject', 2)] == [504, 504]
    assert [o['mech'] for o in relay.logs('auth.ok')] == ['PLAIN']


@pytest.mark.threads  # the thread pool
def test_unknown_user_costs_the_same_time_as_a_wrong_password(make_relay, sink):
    # policies/ratelimit.lua would block 127.0.0.1 after 5 failures (454): not here
    relay = make_relay(upstream_conf(sink.port), policies=[
        p for p in SHIPPED_POLICIES if not p.endswith('ratelimit.lua')])
    timings = {ALICE: [], 'nobody@example.org': []}
    for _ in range(5):
        for user, spent in timings.items():  # interleaved: load hits both alike
            with relay.raw() as c:
                assert c.cmd(b'EHLO client.test').code == 250
                started = time.monotonic()
                assert c.cmd('AUTH PLAIN ' + b64('\0%s\0Wr0ng' % user)) == INVALID
                spent.append(time.monotonic() - started)
    known, unknown = (statistics.median(t) for t in timings.values())
    assert len(relay.wait_logs('auth.fail', 10)) == 10
    assert unknown < 2 * known + 0.005 and known < 2 * unknown + 0.005, (known, unknown)


def test_user_name_case_is_ignored_and_the_identity_is_the_users_files(relay, sink):
    c = relay.raw()
    assert c.cmd(b'EHLO client.test').code == 250
    assert c.cmd('AUTH PLAIN ' + b64('\0Alice@Example.ORG\0%s' % PW)) == OK
    assert send_one(c, b'capital A').code == 250
    c.close()
    [ok] = relay.logs('auth.ok')
    assert (ok['user'], ok['domain']) == (ALICE, 'example.org')
    [stored] = sink.wait_messages(1)
    assert client_bytes(stored) == b'Subject: capital A\r\n\r\nbody\r\n'
    assert sink.events()[0]['mail_from'] == ALICE
