"""Client compatibility: the SMTP exchanges of the mail clients people use, against a real
`sluice run` and a real `sluice sink`, over real TLS sockets on 127.0.0.1.

Two kinds of test (docs/compatibility.md has the table):

- "replayed": a client we cannot run here (Outlook, Thunderbird, Apple Mail, iOS Mail,
  Gmail's "Send mail as", K-9 Mail / Thunderbird for Android). The exchange is written
  byte for byte from the client's source code where it is public (Thunderbird's
  SmtpClient, K-9's SmtpTransport) or from its documented/observed behaviour, with Python's
  ssl + socket so that we decide exactly what is sent, in which write, and when.
- "real binary": msmtp, curl, swaks and Python's smtplib, run for real.

Each test asserts what the client got (codes and enhanced codes), that the upstream
received the client's message byte for byte after dot-unstuffing (the sink stores our
Received: header and then exactly those bytes), and the relay's log lines.

Run: SLUICE_BIN=$PWD/build-asan/sluice /usr/bin/python3 -m pytest -q \
         tests/integration/test_clients.py
"""
import base64
import io
import json
import os
import re
import shutil
import smtplib
import socket
import ssl
import struct
import subprocess
import time
from email.generator import BytesGenerator
from email.message import EmailMessage

import pytest

from conftest import PASSWORDS, SLUICE, wait_read_by_peer

# A missing binary is a failure, never a skip: a skipped suite must not look green.
assert os.access(SLUICE, os.X_OK), 'no sluice binary at %s (set SLUICE_BIN)' % SLUICE

ALICE = 'alice@example.org'
CAROL = 'carol@example.net'
# Clients connect by the submission server's name; the dev certificate covers it.
SERVER_NAME = 'mail.example.org'
TIMEOUT = 10


# ---------------------------------------------------------------------------- the wire

class Reply:
    def __init__(self, raw):
        self.raw = raw                                   # every line, CRLFs included
        lines = raw.split(b'\r\n')[:-1]
        self.code = int(lines[-1][:3])
        self.lines = [l[4:] for l in lines]              # text after "250-" / "250 "
        last = self.lines[-1].split(b' ', 1)
        self.enhanced = last[0].decode() if re.match(rb'^[245]\.\d{1,3}\.\d{1,3}$', last[0]) \
            else None

    @property
    def text(self):
        return b'\n'.join(self.lines).decode('utf-8', 'replace')

    def __repr__(self):
        return 'Reply(%r)' % self.raw


class Wire:
    """One client connection: exactly the bytes we send, in the writes we choose.

    In lockstep mode (clients that wait for each reply) every reply must come alone:
    bytes beyond it in the same read would be a reply to nothing we have sent."""

    def __init__(self, relay, port, implicit_tls, lockstep=True):
        self.ctx = relay.tls_context()
        raw = socket.create_connection(('127.0.0.1', port), timeout=TIMEOUT)
        self.sock = self.ctx.wrap_socket(raw, server_hostname=SERVER_NAME) \
            if implicit_tls else raw
        self.lockstep = lockstep
        self.buf = b''
        self.sent = []                                   # each write, for failure messages

    def send(self, data):
        self.sent.append(data)
        self.sock.sendall(data)

    def _read_reply(self):
        while True:
            m = re.match(rb'((?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n)', self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return Reply(m.group(1))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError('connection closed; unparsed %r after %r'
                                     % (self.buf, self.sent[-3:]))
            self.buf += chunk

    def reply(self):
        r = self._read_reply()
        if self.lockstep:
            assert self.buf == b'', 'unsolicited bytes after %r: %r' % (r, self.buf)
        return r

    def replies(self, n):
        """n replies to n pipelined commands; nothing may follow them."""
        out = [self._read_reply() for _ in range(n)]
        assert self.buf == b'', 'unsolicited bytes after %r: %r' % (out, self.buf)
        return out

    def cmd(self, line, code, enhanced=None):
        self.send(line + b'\r\n')
        return expect(self.reply(), code, enhanced)

    def starttls(self):
        r = self.cmd(b'STARTTLS', 220, '2.0.0')
        assert self.buf == b''
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname=SERVER_NAME)
        return r

    def at_eof(self):
        """True when the server closed the connection (after QUIT's 221)."""
        try:
            return self.sock.recv(1) == b''
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        self.sock.close()


def expect(reply, code, enhanced=None):
    assert reply.code == code, reply
    if enhanced is not None:
        assert reply.enhanced == enhanced, reply
    return reply


def ehlo(w, name, tls):
    r = w.cmd(b'EHLO ' + name, 250)
    assert r.lines[0] == b'relay.test Hello ' + name + b' [127.0.0.1]', r
    keywords = [l.split(b' ')[0] for l in r.lines[1:]]
    for kw in (b'PIPELINING', b'SIZE', b'8BITMIME', b'SMTPUTF8', b'ENHANCEDSTATUSCODES'):
        assert kw in keywords, r
    if tls:
        assert b'STARTTLS' not in keywords, r
        assert b'AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER' in r.lines, r
    else:  # RFC 3207 section 4 / RFC 4954 section 4: no AUTH offered in cleartext
        assert b'STARTTLS' in keywords and b'AUTH' not in keywords, r
    return r


def greet(w):
    r = w.reply()
    assert r.raw == b'220 relay.test ESMTP sluice ready\r\n', r
    return r


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode().encode()


def plain_ir(user, password):
    """AUTH PLAIN initial response as Thunderbird, K-9, Apple and Gmail build it: no authzid."""
    return b64(b'\0' + user.encode() + b'\0' + password.encode())


def stuff(message):
    """RFC 5321 4.5.2 transparency: what a client puts on the wire for `message` (CRLF
    lines, ending in CRLF), without the final ".\\r\\n"."""
    assert message.endswith(b'\r\n') and b'\n' not in message.replace(b'\r\n', b'')
    return b''.join(b'.' + l if l.startswith(b'.') else l
                    for l in message.splitlines(keepends=True))


def queued(reply):
    expect(reply, 250, '2.0.0')
    assert re.match(r'^2\.0\.0 Ok: queued as [0-9a-f]{8,16}\.\d+ upstream \S+$',
                    reply.text), reply
    return reply


# ------------------------------------------------------------- what the upstream got

RECEIVED = re.compile(
    rb'^Received: from (?P<helo>[^ \r\n]+) \(\[127\.0\.0\.1\]\)\r\n'
    rb'\tby relay\.test \(sluice\) with (?P<with>[A-Z0-9]+) id (?P<id>[0-9a-f]{8,16}\.\d+)\r\n'
    rb'\t\(using (?P<tls>TLSv1\.[23]) with cipher (?P<cipher>[A-Za-z0-9_-]+)\)'
    rb'(?:\r\n\tfor <(?P<for>[^>\r\n]+)>)?;\r\n'
    rb'\t(?P<date>(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep'
    rb'|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000)\r\n')


def split_received(stored):
    """(our Received: header fields, the rest). The header is the first line and every
    following line that starts with a TAB; the rest must be the client's message."""
    lines = stored.splitlines(keepends=True)
    assert lines and lines[0].startswith(b'Received: '), stored[:200]
    n = 1
    while n < len(lines) and lines[n].startswith(b'\t'):
        n += 1
    header, rest = b''.join(lines[:n]), b''.join(lines[n:])
    m = RECEIVED.match(header)
    assert m and m.end() == len(header), header
    return m.groupdict(), rest


def arrived(sink, n=1):
    msgs = sink.wait_messages(n)
    assert len(msgs) == n, 'sink holds %d messages, expected %d' % (len(msgs), n)
    return [split_received(m) for m in msgs]


def assert_delivered(sink, expected, helo, rcpts, mail_from=ALICE, with_kw=b'ESMTPSA'):
    """The sink holds exactly these messages, each byte-exact after our Received:."""
    got = arrived(sink, len(expected))
    for (fields, body), want in zip(got, expected):
        assert body == want
        assert fields['helo'] == helo
        assert fields['with'] == with_kw
        assert fields['for'] == (rcpts[0].encode() if len(rcpts) == 1 else None)
    events = sink.events('sink.message')
    assert len(events) == len(expected)
    for e in events:
        assert e['mail_from'] == mail_from and e['rcpt'] == list(rcpts), e
    return got


def upstream_mail_lines(sink):
    """The MAIL FROM lines the sink received from sluice (its --transcript files)."""
    lines = []
    for p in sorted(sink.transcripts.glob('*.in')):
        lines += [l for l in p.read_bytes().split(b'\r\n') if l.upper().startswith(b'MAIL ')]
    return lines


def assert_logged(relay, mech, user=ALICE, relayed=1):
    ok = relay.logs('auth.ok')
    assert [(e['mech'], e['user']) for e in ok] == [(mech, user)], ok
    done = relay.logs('relay.done')
    assert len(done) == relayed and all(e['code'] == 250 for e in done), done
    assert relay.logs('auth.fail') == []


# ------------------------------------------------------------------ the messages sent

def crlf(text):
    data = text.encode('utf-8') if isinstance(text, str) else text
    assert b'\r' not in data
    return data.replace(b'\n', b'\r\n')


OUTLOOK_MESSAGE = crlf('''\
From: "Alice Example" <alice@example.org>
To: "Someone" <someone@example.com>
Subject: Quarterly figures
Date: Tue, 3 Mar 2026 09:14:07 +0100
Message-ID: <000001d9a1b2$4c3d5e60$e4b81b20$@example.org>
MIME-Version: 1.0
Content-Type: multipart/alternative;
\tboundary="----=_NextPart_000_0001_01D9A1BA.ADF1F460"
X-Mailer: Microsoft Outlook 16.0
Thread-Index: AdmhsiqPZ4wGhG9rQ5y8w9nJ1c2N5A==
Content-Language: en-us

This is a multipart message in MIME format.

------=_NextPart_000_0001_01D9A1BA.ADF1F460
Content-Type: text/plain;
\tcharset="us-ascii"
Content-Transfer-Encoding: 7bit

Hi,

.the figures are below this line, which starts with a dot.
..this one starts with two.
.
A line with only a dot is above; the message goes on.

Regards,
Alice

------=_NextPart_000_0001_01D9A1BA.ADF1F460
Content-Type: text/html;
\tcharset="us-ascii"
Content-Transfer-Encoding: quoted-printable

<html xmlns:v=3D"urn:schemas-microsoft-com:vml" =
xmlns:o=3D"urn:schemas-microsoft-com:office:office"><body lang=3DEN-US =
link=3D"#0563C1" vlink=3D"#954F72"><div class=3DWordSection1><p =
class=3DMsoNormal>Hi,<o:p></o:p></p></div></body></html>

------=_NextPart_000_0001_01D9A1BA.ADF1F460--
''')

THUNDERBIRD_MESSAGE = crlf('''\
Message-ID: <5b7e0c1a-3f2d-4e8a-9c61-2f0d4b7a9e13@example.org>
Date: Tue, 3 Mar 2026 10:02:55 +0100
MIME-Version: 1.0
User-Agent: Mozilla Thunderbird
Content-Language: fr
To: bob@example.net, someone@example.com
From: Alice <alice@example.org>
Subject: =?UTF-8?Q?R=C3=A9union_d=C3=A9plac=C3=A9e?=
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit

Bonjour à tous, 
la réunion est déplacée à 14 h. Les lignes « flowed » finissent par une 
espace, qui doit arriver telle quelle.
.
-- 
Alice
''')

APPLE_MESSAGES = [crlf('''\
From: Alice Example <alice@example.org>
Content-Type: text/plain;
\tcharset=us-ascii
Content-Transfer-Encoding: 7bit
Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.600.62\\))
Subject: %s
Message-Id: <8E1C2D1A-6B3F-4C2E-9F7A-0D5B2E4A1C9%d@example.org>
Date: Tue, 3 Mar 2026 12:01:1%d +0100
To: Bob <bob@example.net>
X-Mailer: Apple Mail (2.3774.600.62)

%s
...and a line that starts with three dots.
''' % (subject, i, i, body)) for i, (subject, body) in enumerate([
    ('Lunch?', 'Noon at the usual place?'),
    ('Re: Lunch?', 'Make it half past.'),
])]

GMAIL_MESSAGE = crlf('''\
MIME-Version: 1.0
From: Alice Example <alice@example.org>
Date: Tue, 3 Mar 2026 11:20:31 +0100
Message-ID: <CAF=x8Lp+Q1m4r0w7cQz9yYH3kE5n2V0b6aT1sJ@mail.gmail.com>
Subject: Invoice 2026-031
To: someone@example.com
Content-Type: multipart/mixed; boundary="000000000000a1b2c3d4e5f60718"

--000000000000a1b2c3d4e5f60718
Content-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f60716"

--000000000000a1b2c3d4e5f60716
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: 8bit

Ci-joint la facture — merci !

--000000000000a1b2c3d4e5f60716
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: 8bit

<div dir="ltr">Ci-joint la facture — merci !</div>

--000000000000a1b2c3d4e5f60716--
--000000000000a1b2c3d4e5f60718
Content-Type: application/pdf; name="invoice.pdf"
Content-Disposition: attachment; filename="invoice.pdf"
Content-Transfer-Encoding: base64
X-Attachment-Id: f_lt9k2x0a0
Content-ID: <f_lt9k2x0a0>

%s
--000000000000a1b2c3d4e5f60718--
''' % '\n'.join(base64.encodebytes(bytes(range(256)) * 12).decode().splitlines()))

# K-9 wraps long lines (LineWrapOutputStream(..., 1000)). The message carries a 998-octet
# line: 1000 with CRLF, RFC 5321 4.5.3.1.6's limit and sluice's default, exactly.
K9_MESSAGE = crlf('''\
MIME-Version: 1.0
Date: Tue, 03 Mar 2026 13:45:02 +0100
Subject: From my phone
To: bob@example.net
From: Alice <alice@example.org>
Message-ID: <7c1f8a3e-2b9d-4f6e-a1c5-3d8e9b0f2a47@example.org>
User-Agent: K-9 Mail for Android
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Sent from my phone — the next line is 998 octets long.
%s
.
''' % ('x' * 998))


# --------------------------------------------------------------------------- fixtures

def open_client(relay, listener, name, lockstep=True):
    """Connect to listener '465' (implicit TLS) or '587' (STARTTLS), greet, EHLO (and
    STARTTLS + EHLO again on 587) as the client named `name` does. Returns the Wire."""
    port, implicit = {'465': (relay.smtps_port, True),
                      '587': (relay.submission_port, False)}[listener]
    w = Wire(relay, port, implicit, lockstep)
    greet(w)
    if not implicit:
        ehlo(w, name, tls=False)
        w.starttls()
    ehlo(w, name, tls=True)
    return w


def quit_(w):
    r = w.cmd(b'QUIT', 221, '2.0.0')
    assert w.at_eof()
    w.close()
    return r


# ===================================================================== replayed clients

def test_outlook_on_587_sends_its_machine_name_starts_tls_and_answers_the_auth_login_prompts(
        relay, sink):
    # Outlook (Windows): EHLO with the NetBIOS machine name (not a domain), STARTTLS,
    # EHLO again, AUTH LOGIN without an initial response, no pipelining.
    w = open_client(relay, '587', b'DESKTOP-7Q2M4KD')
    w.send(b'AUTH LOGIN\r\n')
    # "Username:" and "Password:" exactly, nothing after them: Thunderbird's AUTH LOGIN
    # compares the challenge text as a string and gives up on anything else.
    assert w.reply().raw == b'334 VXNlcm5hbWU6\r\n'
    w.send(b64(ALICE) + b'\r\n')
    assert w.reply().raw == b'334 UGFzc3dvcmQ6\r\n'
    w.send(b64(PASSWORDS[ALICE]) + b'\r\n')
    expect(w.reply(), 235, '2.7.0')
    w.cmd(b'MAIL FROM:<alice@example.org> SIZE=%d' % len(OUTLOOK_MESSAGE), 250, '2.1.0')
    w.cmd(b'RCPT TO:<someone@example.com>', 250, '2.1.5')
    w.cmd(b'DATA', 354)
    data = stuff(OUTLOOK_MESSAGE)
    # The body leaves in several writes; cut where the decoder must carry state across
    # reads: just before a stuffed "..", and between the CR and LF of the lone-dot line.
    cut1 = data.index(b'\r\n...this one') + 2
    cut2 = data.index(b'\r\n..\r\n') + 5
    for piece in (data[:cut1], data[cut1:cut2], data[cut2:] + b'.\r\n'):
        w.send(piece)
        wait_read_by_peer(w.sock)  # each piece its own read
    queued(w.reply())
    quit_(w)
    assert_delivered(sink, [OUTLOOK_MESSAGE], b'DESKTOP-7Q2M4KD', ['someone@example.com'])
    assert_logged(relay, 'LOGIN')


def test_older_outlook_writes_a_space_after_the_colon_and_the_address_as_the_user_typed_it(
        relay, sink):
    # "MAIL FROM: <a>" is not RFC 5321 syntax, but Outlook Express and older Outlook wrote
    # it and servers accept it (core/proto/smtp_parse.c does, deliberately). The address comes
    # from the account settings as typed: the domain check is case-insensitive.
    sender = 'Alice@EXAMPLE.ORG'
    w = open_client(relay, '587', b'DESKTOP-7Q2M4KD')
    w.cmd(b'AUTH LOGIN', 334)
    w.cmd(b64(ALICE), 334)
    w.cmd(b64(PASSWORDS[ALICE]), 235, '2.7.0')
    w.cmd(b'MAIL FROM: <%s> SIZE=%d' % (sender.encode(), len(OUTLOOK_MESSAGE)), 250, '2.1.0')
    w.cmd(b'RCPT TO: <someone@example.com>', 250, '2.1.5')
    w.cmd(b'DATA', 354)
    w.send(stuff(OUTLOOK_MESSAGE) + b'.\r\n')
    queued(w.reply())
    quit_(w)
    assert_delivered(sink, [OUTLOOK_MESSAGE], b'DESKTOP-7Q2M4KD', ['someone@example.com'],
                     mail_from=sender)


THUNDERBIRD_SECOND = THUNDERBIRD_MESSAGE.replace(b'9e13@example.org', b'9e14@example.org')


@pytest.mark.parametrize('listener', ['465', '587'])
def test_thunderbird_uses_an_address_literal_auth_plain_and_waits_for_every_reply(
        relay, sink, listener):
    # Thunderbird's SmtpClient (comm-central mailnews/compose/src/SmtpClient.sys.mjs):
    # EHLO [local address] when no hello_argument is set, AUTH PLAIN with an initial
    # response and no authzid, "MAIL FROM:<a> BODY=8BITMIME SIZE=n", then RCPT one at a
    # time, each after the previous reply (it does not pipeline), DATA, the body, and the
    # final ".\r\n" in a write of its own. It keeps the connection for the next message
    # (up to 10) without RSET.
    w = open_client(relay, listener, b'[127.0.0.1]')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    rcpts = ['bob@example.net', 'someone@example.com']
    for msg in (THUNDERBIRD_MESSAGE, THUNDERBIRD_SECOND):
        w.cmd(b'MAIL FROM:<alice@example.org> BODY=8BITMIME SIZE=%d' % len(msg), 250, '2.1.0')
        for rcpt in rcpts:
            w.cmd(b'RCPT TO:<%s>' % rcpt.encode(), 250, '2.1.5')
        w.cmd(b'DATA', 354)
        w.send(stuff(msg))
        w.send(b'.\r\n')
        queued(w.reply())
    quit_(w)
    assert_delivered(sink, [THUNDERBIRD_MESSAGE, THUNDERBIRD_SECOND], b'[127.0.0.1]', rcpts)
    mails = upstream_mail_lines(sink)
    assert len(mails) == 2 and all(b' BODY=8BITMIME' in m for m in mails), mails
    assert_logged(relay, 'PLAIN', relayed=2)


def test_thunderbird_91_adds_smtputf8_to_every_mail_from_and_the_message_is_relayed_as_utf8(
        relay, sink):
    # Thunderbird 91-102 (SmtpClient.jsm) appended SMTPUTF8 whenever the server offered
    # it, ASCII addresses or not: "MAIL FROM:<a> BODY=8BITMIME SMTPUTF8 SIZE=n".
    w = open_client(relay, '465', b'[127.0.0.1]')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    w.cmd(b'MAIL FROM:<alice@example.org> BODY=8BITMIME SMTPUTF8 SIZE=%d'
          % len(THUNDERBIRD_MESSAGE), 250, '2.1.0')
    w.cmd(b'RCPT TO:<bob@example.net>', 250, '2.1.5')
    w.cmd(b'DATA', 354)
    w.send(stuff(THUNDERBIRD_MESSAGE))
    w.send(b'.\r\n')
    queued(w.reply())
    quit_(w)
    # RFC 6531 section 3.7.4: the "with" keyword says UTF8SMTP; SMTPUTF8 goes upstream.
    assert_delivered(sink, [THUNDERBIRD_MESSAGE], b'[127.0.0.1]', ['bob@example.net'],
                     with_kw=b'UTF8SMTPSA')
    [mail] = upstream_mail_lines(sink)
    assert b' SMTPUTF8' in mail and b' BODY=8BITMIME' in mail, mail


def xoauth2_line(user, token_len):
    payload = b'user=%s\x01auth=Bearer %s\x01\x01' % (user.encode(), b'y' * token_len)
    return b'AUTH XOAUTH2 ' + base64.b64encode(payload) + b'\r\n'


def longest_xoauth2_line(limit=12288):
    """The longest AUTH XOAUTH2 line (CRLF included) that fits in `limit` octets."""
    n = 1
    while len(xoauth2_line(ALICE, n + 1)) <= limit:
        n += 1
    return xoauth2_line(ALICE, n)


def token_error(reply):
    expect(reply, 334)
    return json.loads(base64.b64decode(reply.lines[0], validate=True))


def test_thunderbird_xoauth2_with_a_12k_token_line_gets_the_error_challenge_and_then_535(
        relay, sink):
    # Microsoft 365 and Google access tokens make AUTH XOAUTH2 lines of several KiB;
    # RFC 4954 section 4 lets AUTH lines reach 12288 octets. No token backend is
    # configured, so the token is refused the XOAUTH2 way: a 334 with a base64 JSON
    # error, to which Thunderbird (and K-9) answer with an empty line, then 535.
    line = longest_xoauth2_line()
    assert 12284 < len(line) <= 12288
    w = open_client(relay, '465', b'[127.0.0.1]')
    w.send(line)
    err = token_error(w.reply())
    assert err['status'] == '400' and err['schemes'].lower() == 'bearer', err
    w.send(b'\r\n')
    expect(w.reply(), 535, '5.7.8')
    # One base64 quantum more is over the limit: refused as a line, and the session
    # resynchronises at its end instead of reading the rest as commands.
    w.send(xoauth2_line(ALICE, 9300)[:13] + b'A' * (12288 - 13 + 4 - 2) + b'\r\n')
    expect(w.reply(), 500, '5.5.2')
    w.cmd(b'NOOP', 250, '2.0.0')
    # The user then picks a password instead: the session is still good.
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    quit_(w)
    fails = relay.logs('auth.fail')
    assert [(e['mech'], e['user'], e['code']) for e in fails] == [('XOAUTH2', ALICE, 535)]
    assert [e['mech'] for e in relay.logs('auth.ok')] == ['PLAIN']
    assert sink.messages() == []


def k9_send(w, message, rcpts, mail_from=ALICE):
    """K-9 Mail / Thunderbird for Android (SmtpTransport.kt): with PIPELINING it writes
    "MAIL FROM:<a> BODY=8BITMIME" and every RCPT (one write and flush each, no wait),
    reads all the replies, then DATA alone, the body, and "." in a write of its own."""
    cmds = [b'MAIL FROM:<%s> BODY=8BITMIME' % mail_from.encode()]
    cmds += [b'RCPT TO:<%s>' % r.encode() for r in rcpts]
    for c in cmds:
        w.send(c + b'\r\n')
    replies = w.replies(len(cmds))
    expect(replies[0], 250, '2.1.0')
    for r in replies[1:]:
        expect(r, 250, '2.1.5')
    w.cmd(b'DATA', 354)
    w.send(stuff(message))
    w.send(b'.\r\n')
    return w.reply()


@pytest.mark.parametrize('listener', ['465', '587'])
def test_k9_mail_pipelines_mail_and_every_rcpt_then_sends_data_alone(relay, sink, listener):
    # K-9 always says EHLO [127.0.0.1] (a fixed literal, for privacy), AUTH PLAIN with an
    # initial response, and opens a new connection for each message.
    rcpts = ['bob@example.net', 'someone@example.com', 'third@example.com']
    w = open_client(relay, listener, b'[127.0.0.1]')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    queued(k9_send(w, K9_MESSAGE, rcpts))
    quit_(w)
    assert_delivered(sink, [K9_MESSAGE], b'[127.0.0.1]', rcpts)
    assert max(len(l) for l in K9_MESSAGE.split(b'\r\n')) == 998
    assert_logged(relay, 'PLAIN')


def test_k9_mail_retries_a_refused_xoauth2_token_once_with_a_new_one_on_the_same_connection(
        relay, sink):
    # K-9 reads the 334 JSON: status "400" means "get a new token and retry"
    # (XOAuth2ChallengeParser.shouldRetry); it answers each 334 with an empty line.
    w = open_client(relay, '465', b'[127.0.0.1]')
    for token_len in (1800, 2400):
        w.send(xoauth2_line(ALICE, token_len))
        assert token_error(w.reply())['status'] == '400'
        w.send(b'\r\n')
        expect(w.reply(), 535, '5.7.8')
    quit_(w)  # two failures are under limits.max_auth_failures (3): no 421
    assert [e['mech'] for e in relay.logs('auth.fail')] == ['XOAUTH2', 'XOAUTH2']
    assert sink.messages() == []


def test_apple_mail_pipelines_mail_and_rcpt_and_sends_rset_before_reusing_the_connection(
        relay, sink):
    # Apple Mail (macOS): EHLO with the Mac's address literal (behind NAT it is not the
    # address we see), STARTTLS on 587, AUTH PLAIN with an initial response, MAIL and RCPT
    # pipelined in one write, DATA after their replies, and RSET before the next message.
    w = open_client(relay, '587', b'[192.168.1.23]')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    for i, msg in enumerate(APPLE_MESSAGES):
        if i > 0:
            w.cmd(b'RSET', 250, '2.0.0')
        w.send(b'MAIL FROM:<alice@example.org> SIZE=%d\r\nRCPT TO:<bob@example.net>\r\n'
               % len(msg))
        r_mail, r_rcpt = w.replies(2)
        expect(r_mail, 250, '2.1.0')
        expect(r_rcpt, 250, '2.1.5')
        w.cmd(b'DATA', 354)
        w.send(stuff(msg) + b'.\r\n')
        queued(w.reply())
    quit_(w)
    got = assert_delivered(sink, APPLE_MESSAGES, b'[192.168.1.23]', ['bob@example.net'])
    assert got[0][0]['id'].split(b'.')[0] == got[1][0]['id'].split(b'.')[0]  # one session
    assert [g[0]['id'].split(b'.')[1] for g in got] == [b'1', b'2']
    assert_logged(relay, 'PLAIN', relayed=2)


def test_ios_mail_on_465_pipelines_mail_and_rcpt_with_auth_plain(relay, sink):
    # iOS Mail: implicit TLS on 465, EHLO smtpclient.apple (what servers log for current
    # iOS and macOS Mail), AUTH PLAIN with an initial response, MAIL+RCPT pipelined.
    msg = APPLE_MESSAGES[0].replace(b'Apple Mail (2.3774.600.62)', b'iPhone Mail (21E236)')
    w = open_client(relay, '465', b'smtpclient.apple')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    w.send(b'MAIL FROM:<alice@example.org> SIZE=%d\r\nRCPT TO:<bob@example.net>\r\n'
           % len(msg))
    expect(w.replies(2)[1], 250, '2.1.5')
    w.cmd(b'DATA', 354)
    w.send(stuff(msg) + b'.\r\n')
    queued(w.reply())
    quit_(w)
    assert_delivered(sink, [msg], b'smtpclient.apple', ['bob@example.net'])
    assert_logged(relay, 'PLAIN')


def test_a_client_that_starts_tls_on_the_starttls_port_fails_at_once_and_the_relay_serves_on(
        relay, sink):
    # iOS account setup has been seen probing port 587 with a TLS ClientHello (implicit
    # TLS) before trying STARTTLS. The probe must fail fast (our 220 is not a TLS record),
    # not hang until a timeout, and must not disturb the next session.
    raw = socket.create_connection(('127.0.0.1', relay.submission_port), timeout=TIMEOUT)
    start = time.monotonic()
    with pytest.raises(ssl.SSLError):
        relay.tls_context().wrap_socket(raw, server_hostname=SERVER_NAME)
    assert time.monotonic() - start < 2
    raw.close()
    w = open_client(relay, '587', b'[127.0.0.1]')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    queued(k9_send(w, K9_MESSAGE, ['bob@example.net']))
    quit_(w)
    assert_delivered(sink, [K9_MESSAGE], b'[127.0.0.1]', ['bob@example.net'])


@pytest.mark.parametrize('listener', ['465', '587'])
def test_gmail_send_mail_as_relays_through_us_with_auth_plain_size_and_8bitmime(
        relay, sink, listener):
    # Gmail's "Send mail as" through another SMTP server: EHLO with a Google host name,
    # TLS (587 STARTTLS or 465), AUTH PLAIN with an initial response, then
    # "MAIL FROM:<addr> SIZE=n BODY=8BITMIME" for the address configured in Gmail, which
    # must be in the authenticated user's domain.
    name = b'mail-ej1-f41.google.com'
    w = open_client(relay, listener, name)
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    w.cmd(b'MAIL FROM:<alice@example.org> SIZE=%d BODY=8BITMIME' % len(GMAIL_MESSAGE),
          250, '2.1.0')
    w.cmd(b'RCPT TO:<someone@example.com>', 250, '2.1.5')
    w.cmd(b'DATA', 354)
    w.send(stuff(GMAIL_MESSAGE) + b'.\r\n')
    queued(w.reply())
    quit_(w)
    assert_delivered(sink, [GMAIL_MESSAGE], name, ['someone@example.com'])
    [mail] = upstream_mail_lines(sink)
    assert b' BODY=8BITMIME' in mail, mail
    assert_logged(relay, 'PLAIN')


def test_gmail_send_mail_as_with_an_address_outside_the_users_domain_is_refused_at_mail(
        relay, sink):
    # The commonest "Send mail as" mistake: the Gmail alias is not in the domain of the
    # account used to log in. Gmail shows the server's text; nothing may be relayed.
    w = open_client(relay, '587', b'mail-ej1-f41.google.com')
    w.cmd(b'AUTH PLAIN ' + plain_ir(CAROL, PASSWORDS[CAROL]), 235, '2.7.0')
    w.cmd(b'MAIL FROM:<alice@example.org> SIZE=%d BODY=8BITMIME' % len(GMAIL_MESSAGE),
          550, '5.7.1')
    w.cmd(b'RCPT TO:<someone@example.com>', 503, '5.5.1')
    w.cmd(b'RSET', 250, '2.0.0')
    quit_(w)
    assert sink.messages() == [] and relay.logs('relay.done') == []
    rejects = relay.logs('smtp.reject')
    assert [(e['code'], e['enhanced']) for e in rejects][:1] == [(550, '5.7.1')]


@pytest.mark.parametrize('name', [
    b'[127.0.0.1]',            # Thunderbird, K-9, Apple Mail: IPv4 address literal
    b'[IPv6:::1]',             # K-9 on an IPv6 connection
    b'[IPV6:2001:db8::1]',     # Thunderbird's spelling for IPv6
    b'DESKTOP-7Q2M4KD',        # Outlook: NetBIOS name, no dot
    b'Alices-MacBook-Pro.local',
    b'smtpclient.apple',
])
def test_every_ehlo_form_clients_send_is_accepted_and_written_into_received(relay, sink, name):
    # RFC 5321 4.1.4: a server must not refuse a message because the EHLO argument does
    # not match the client's address; sluice records it as given.
    w = open_client(relay, '465', name)
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    queued(k9_send(w, APPLE_MESSAGES[1], ['bob@example.net']))
    quit_(w)
    assert_delivered(sink, [APPLE_MESSAGES[1]], name, ['bob@example.net'])


# ======================================================================= real binaries

def run(cmd, **kw):
    kw.setdefault('timeout', 30)
    return subprocess.run(cmd, capture_output=True, **kw)


def tool(name):
    path = shutil.which(name)
    assert path, '%s is not installed (Makefile DEB_PACKAGES installs it)' % name
    return path


# The message as a user's file: LF line ends (msmtp and swaks convert to CRLF), lines that
# start with dots (the client stuffs them, we unstuff them), a lone dot, 8-bit text.
FILE_MESSAGE = '''\
From: Alice <alice@example.org>
To: someone@example.com, other@example.com
Subject: Sent with a real client
Date: Tue, 3 Mar 2026 14:00:00 +0100
Message-ID: <real-client-1@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

.a line that starts with a dot
..and one with two
.
Grüße, trailing space here: 
end'''


def msmtp_config(tmp_path, relay, port, starttls, auth):
    conf = tmp_path / 'msmtprc'
    conf.write_text('\n'.join([
        'account default',
        'host 127.0.0.1',
        'port %d' % port,
        'tls on',
        'tls_starttls %s' % ('on' if starttls else 'off'),
        'tls_trust_file %s' % relay.cafile,
        'auth %s' % auth,
        'user %s' % ALICE,
        'password %s' % PASSWORDS[ALICE],
        'from %s' % ALICE,
        'domain client.example',
    ]) + '\n')
    conf.chmod(0o600)  # msmtp refuses a password in a file others can read
    return conf


def debug_lines(out, prefix):
    return [l[len(prefix):] for l in out.decode('utf-8', 'replace').splitlines()
            if l.startswith(prefix)]


def test_msmtp_with_starttls_and_auth_plain_pipelines_mail_rcpt_and_data(tmp_path, relay, sink):
    conf = msmtp_config(tmp_path, relay, relay.submission_port, starttls=True, auth='plain')
    rcpts = ['someone@example.com', 'other@example.com']
    p = run([tool('msmtp'), '-C', str(conf), '--debug'] + rcpts,
            input=FILE_MESSAGE.encode() + b'\n')
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    sent = debug_lines(p.stdout, '--> ')
    got = debug_lines(p.stdout, '<-- ')
    # msmtp uses PIPELINING: MAIL, every RCPT and DATA go out before any of their replies
    i = sent.index('MAIL FROM:<alice@example.org>')
    assert sent[i:i + 4] == ['MAIL FROM:<alice@example.org>', 'RCPT TO:<someone@example.com>',
                             'RCPT TO:<other@example.com>', 'DATA'], sent
    j = got.index('235 2.7.0 Authentication successful')
    assert got[j + 1:j + 5] == ['250 2.1.0 Sender ok', '250 2.1.5 Recipient ok',
                                '250 2.1.5 Recipient ok',
                                '354 End data with <CR><LF>.<CR><LF>'], got
    assert got[-1] == '221 2.0.0 Bye' and got[-2].startswith('250 2.0.0 Ok: queued as ')
    assert_delivered(sink, [crlf(FILE_MESSAGE + '\n')], b'client.example', rcpts)
    assert_logged(relay, 'PLAIN')


def test_msmtp_with_implicit_tls_and_auth_login_answers_the_login_prompts(tmp_path, relay, sink):
    conf = msmtp_config(tmp_path, relay, relay.smtps_port, starttls=False, auth='login')
    p = run([tool('msmtp'), '-C', str(conf), '--debug', 'someone@example.com'],
            input=FILE_MESSAGE.encode() + b'\n')
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    got = debug_lines(p.stdout, '<-- ')
    sent = debug_lines(p.stdout, '--> ')
    assert sent[:2] == ['EHLO client.example', 'AUTH LOGIN'], sent  # no STARTTLS on 465
    assert got[got.index('334 VXNlcm5hbWU6') + 1] == '334 UGFzc3dvcmQ6', got
    i = sent.index('MAIL FROM:<alice@example.org>')
    assert sent[i:i + 3] == ['MAIL FROM:<alice@example.org>', 'RCPT TO:<someone@example.com>',
                             'DATA'], sent
    assert_delivered(sink, [crlf(FILE_MESSAGE + '\n')], b'client.example',
                     ['someone@example.com'])
    assert_logged(relay, 'LOGIN')


def curl_smtp(relay, url, upload, *extra, rcpts=('someone@example.com',)):
    cmd = [tool('curl'), '-sS', '-v', '--url', url, '--cacert', relay.cafile,
           '--mail-from', ALICE, '--upload-file', str(upload),
           '--user', '%s:%s' % (ALICE, PASSWORDS[ALICE])]
    for r in rcpts:
        cmd += ['--mail-rcpt', r]
    p = run(cmd + list(extra))
    return p, debug_lines(p.stderr, '> '), debug_lines(p.stderr, '< ')


def test_curl_over_starttls_sends_auth_plain_without_an_initial_response(tmp_path, relay, sink):
    # curl's default is no SASL-IR: "AUTH PLAIN", an empty "334 " challenge, then the
    # credentials on their own line (RFC 4954 section 4).
    upload = tmp_path / 'msg.eml'
    message = crlf(FILE_MESSAGE + '\n')
    upload.write_bytes(message)
    rcpts = ('someone@example.com', 'other@example.com')
    p, sent, got = curl_smtp(relay, 'smtp://127.0.0.1:%d/client.example' % relay.submission_port,
                             upload, '--ssl-reqd', rcpts=rcpts)
    assert p.returncode == 0, p.stderr.decode()
    assert sent[:2] == ['EHLO client.example', 'STARTTLS'], sent
    i = sent.index('AUTH PLAIN')
    assert '334 ' in got and '235 2.7.0 Authentication successful' in got, got
    assert sent[i + 1] == b64(b'\0%s\0%s' % (ALICE.encode(), PASSWORDS[ALICE].encode())) \
        .decode()
    assert 'MAIL FROM:<alice@example.org> SIZE=%d' % len(message) in sent, sent
    assert_delivered(sink, [message], b'client.example', list(rcpts))
    assert_logged(relay, 'PLAIN')


def test_curl_over_implicit_tls_sends_auth_login_with_the_user_as_initial_response(
        tmp_path, relay, sink):
    # With --sasl-ir, curl sends "AUTH LOGIN <base64 user>": only the password prompt
    # follows (a form Outlook never uses, and RFC 4954 allows for any mechanism).
    upload = tmp_path / 'msg.eml'
    message = crlf(FILE_MESSAGE + '\n')
    upload.write_bytes(message)
    p, sent, got = curl_smtp(relay, 'smtps://127.0.0.1:%d/client.example' % relay.smtps_port,
                             upload, '--sasl-ir', '--login-options', 'AUTH=LOGIN')
    assert p.returncode == 0, p.stderr.decode()
    assert 'AUTH LOGIN %s' % b64(ALICE).decode() in sent, sent
    assert '334 UGFzc3dvcmQ6' in got and '334 VXNlcm5hbWU6' not in got, got
    assert_delivered(sink, [message], b'client.example', ['someone@example.com'])
    assert_logged(relay, 'LOGIN')


def test_curl_uploading_a_file_with_bare_lf_line_ends_is_refused_and_crlf_fixes_it(
        tmp_path, relay, sink):
    # curl sends the file as it is. A file with LF line ends has bare LFs, which sluice
    # refuses in content (SMTP smuggling defence, docs/smtp.md) with 550 5.6.0 at its end;
    # curl's --crlf converts them. Users of `curl --upload-file` must know this.
    upload = tmp_path / 'msg.eml'
    upload.write_bytes(FILE_MESSAGE.encode() + b'\n')
    url = 'smtps://127.0.0.1:%d/client.example' % relay.smtps_port
    p, sent, got = curl_smtp(relay, url, upload)
    assert p.returncode != 0
    assert '550 5.6.0 Bare CR or LF in message; lines must end with CRLF' in got, got
    assert sink.messages() == []
    p, sent, got = curl_smtp(relay, url, upload, '--crlf')
    assert p.returncode == 0, p.stderr.decode()
    assert_delivered(sink, [crlf(FILE_MESSAGE + '\n')], b'client.example',
                     ['someone@example.com'])


def swaks(relay, tmp_path, *args):
    data = tmp_path / 'data.eml'
    data.write_bytes(FILE_MESSAGE.encode())  # no final newline: swaks adds the CRLF
    p = run([tool('swaks'), '--server'] + list(args) + [
        '--tls-ca-path', relay.cafile, '--tls-verify',
        '--auth-user', ALICE, '--auth-password', PASSWORDS[ALICE],
        '--from', ALICE, '--helo', 'client.example', '--data', '@%s' % data])
    return p, p.stdout.decode('utf-8', 'replace')


def test_swaks_with_implicit_tls_auth_plain_and_pipelining_delivers_to_two_recipients(
        tmp_path, relay, sink):
    rcpts = ['someone@example.com', 'other@example.com']
    p, out = swaks(relay, tmp_path, '127.0.0.1:%d' % relay.smtps_port, '--tlsc',
                   '--auth', 'PLAIN', '--pipeline', '--to', ','.join(rcpts))
    assert p.returncode == 0, out + p.stderr.decode()
    assert ' ~> AUTH PLAIN ' in out and '<~  235 2.7.0' in out, out
    assert re.search(r' ~> MAIL FROM:<alice@example\.org>\n ~> RCPT TO:<someone@example\.com>\n'
                     r' ~> RCPT TO:<other@example\.com>\n ~> DATA\n<~  250 2\.1\.0', out), out
    assert '<~  250 2.0.0 Ok: queued as ' in out and '<~  221 2.0.0 Bye' in out, out
    assert_delivered(sink, [crlf(FILE_MESSAGE + '\n')], b'client.example', rcpts)
    assert_logged(relay, 'PLAIN')


def test_swaks_with_starttls_and_auth_login_delivers_the_file_byte_exact(tmp_path, relay, sink):
    p, out = swaks(relay, tmp_path, '127.0.0.1:%d' % relay.submission_port, '--tls',
                   '--auth', 'LOGIN', '--to', 'someone@example.com')
    assert p.returncode == 0, out + p.stderr.decode()
    assert '<~  334 VXNlcm5hbWU6' in out and '<~  334 UGFzc3dvcmQ6' in out, out
    assert_delivered(sink, [crlf(FILE_MESSAGE + '\n')], b'client.example',
                     ['someone@example.com'])
    assert_logged(relay, 'LOGIN')


def smtplib_message(to, text):
    msg = EmailMessage()
    msg['From'] = 'Alice <%s>' % ALICE
    msg['To'] = to
    msg['Bcc'] = 'hidden@example.com'
    msg['Subject'] = 'smtplib send_message'
    msg['Date'] = 'Tue, 03 Mar 2026 15:00:00 +0100'
    msg['Message-ID'] = '<smtplib-1@example.org>'
    msg.set_content(text)
    return msg


def test_python_smtplib_send_message_over_implicit_tls_drops_bcc_and_arrives_byte_exact(
        relay, sink):
    msg = smtplib_message('someone@example.com', '.starts with a dot\n.\nend\n')
    with smtplib.SMTP_SSL('127.0.0.1', relay.smtps_port, local_hostname='client.example',
                          context=relay.tls_context(), timeout=TIMEOUT) as s:
        code, _ = s.login(ALICE, PASSWORDS[ALICE])
        assert code == 235
        assert s.send_message(msg) == {}
    del msg['Bcc']
    expected = io.BytesIO()
    BytesGenerator(expected).flatten(msg, linesep='\r\n')
    assert b'hidden@example.com' not in expected.getvalue()
    assert_delivered(sink, [expected.getvalue()], b'client.example',
                     ['someone@example.com', 'hidden@example.com'])
    assert_logged(relay, 'PLAIN')


def test_python_smtplib_send_message_to_a_utf8_address_uses_smtputf8_over_starttls(relay, sink):
    # send_message sees a non-ASCII address and adds SMTPUTF8 and BODY=8BITMIME (RFC 6531).
    msg = smtplib_message('Jörg <jörg@example.com>', 'Grüße\n')
    with smtplib.SMTP('127.0.0.1', relay.submission_port, local_hostname='client.example',
                      timeout=TIMEOUT) as s:
        s.starttls(context=relay.tls_context())
        s.login(ALICE, PASSWORDS[ALICE])
        assert s.send_message(msg) == {}
    del msg['Bcc']
    expected = io.BytesIO()
    BytesGenerator(expected, policy=msg.policy.clone(utf8=True)).flatten(msg, linesep='\r\n')
    assert 'jörg@example.com'.encode() in expected.getvalue()
    assert_delivered(sink, [expected.getvalue()], b'client.example',
                     ['jörg@example.com', 'hidden@example.com'], with_kw=b'UTF8SMTPSA')
    [mail] = upstream_mail_lines(sink)
    assert b' SMTPUTF8' in mail and b' BODY=8BITMIME' in mail, mail
    assert_logged(relay, 'PLAIN')


# ======================================================== what every client relies on

def big_gmail_message(octets):
    att = base64.encodebytes(os.urandom(octets * 3 // 4)).replace(b'\n', b'\r\n')
    end = b'\r\n--000000000000a1b2c3d4e5f60718--\r\n'
    assert GMAIL_MESSAGE.endswith(end)
    return GMAIL_MESSAGE[:-len(end)] + b'\r\n' + att + end[2:]


def test_a_gmail_message_with_a_5_mib_attachment_sent_in_16_kib_writes_arrives_byte_exact(
        relay, sink):
    msg = big_gmail_message(5 * 1024 * 1024)
    w = open_client(relay, '587', b'mail-ej1-f41.google.com')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    w.cmd(b'MAIL FROM:<alice@example.org> SIZE=%d BODY=8BITMIME' % len(msg), 250, '2.1.0')
    w.cmd(b'RCPT TO:<someone@example.com>', 250, '2.1.5')
    w.cmd(b'DATA', 354)
    data = stuff(msg) + b'.\r\n'
    for i in range(0, len(data), 16384):
        w.send(data[i:i + 16384])
    queued(w.reply())
    quit_(w)
    assert_delivered(sink, [msg], b'mail-ej1-f41.google.com', ['someone@example.com'])
    [done] = relay.logs('relay.done')
    assert done['size'] == len(msg), done


def test_a_client_that_pipelines_the_next_transaction_and_quit_behind_the_final_dot_is_served(
        relay, sink):
    # RFC 2920 section 3.1 lets a client send the next MAIL, RCPT, DATA (and QUIT) right
    # behind the end of data. The 250 for the first message waits for the upstream; the
    # commands behind it must neither be lost nor be read as message content.
    w = open_client(relay, '465', b'client.example')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    w.send(b'MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n')
    assert [r.code for r in w.replies(3)] == [250, 250, 354]
    w.send(stuff(APPLE_MESSAGES[0]) + b'.\r\nMAIL FROM:<alice@example.org>\r\n'
           b'RCPT TO:<bob@example.net>\r\nDATA\r\n')
    first, mail, rcpt, data = w.replies(4)
    queued(first)
    assert (mail.code, rcpt.code, data.code) == (250, 250, 354)
    w.send(stuff(APPLE_MESSAGES[1]) + b'.\r\nQUIT\r\n')
    second, bye = w.replies(2)
    queued(second)
    expect(bye, 221, '2.0.0')
    assert w.at_eof()
    assert_delivered(sink, APPLE_MESSAGES, b'client.example', ['bob@example.net'])


@pytest.mark.parametrize('ciphers', ['ECDHE-RSA-AES256-GCM-SHA384',
                                     'ECDHE-ECDSA-AES128-GCM-SHA256'])
def test_a_client_whose_tls_stops_at_1_2_gets_the_matching_certificate_and_received_says_so(
        relay, sink, ciphers):
    # Outlook on Windows 7/8.1 (Schannel) and older Android stop at TLS 1.2, some with RSA
    # suites only: sluice holds an RSA and an ECDSA certificate and must pick the one the
    # client's suites can use.
    ctx = relay.tls_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    w = Wire(relay, relay.smtps_port, False)
    w.sock = ctx.wrap_socket(w.sock, server_hostname=SERVER_NAME)
    greet(w)
    assert w.sock.version() == 'TLSv1.2' and w.sock.cipher()[0] == ciphers
    ehlo(w, b'DESKTOP-7Q2M4KD', tls=True)
    w.cmd(b'AUTH LOGIN', 334)
    w.cmd(b64(ALICE), 334)
    w.cmd(b64(PASSWORDS[ALICE]), 235, '2.7.0')
    w.cmd(b'MAIL FROM:<alice@example.org> SIZE=%d' % len(OUTLOOK_MESSAGE), 250, '2.1.0')
    w.cmd(b'RCPT TO:<someone@example.com>', 250, '2.1.5')
    w.cmd(b'DATA', 354)
    w.send(stuff(OUTLOOK_MESSAGE) + b'.\r\n')
    queued(w.reply())
    quit_(w)
    [(fields, _)] = assert_delivered(sink, [OUTLOOK_MESSAGE], b'DESKTOP-7Q2M4KD',
                                     ['someone@example.com'])
    assert (fields['tls'], fields['cipher']) == (b'TLSv1.2', ciphers.encode())


def reset_close(w):
    """Close as a client that does not linger: RST, unread bytes dropped."""
    w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    w.sock.close()


def test_clients_that_send_quit_and_close_without_reading_the_221_leave_the_relay_serving(
        relay, sink):
    # Mail clients commonly send QUIT and drop the connection at once; the 221 then meets
    # a reset socket. Each message was acknowledged first, so each must have been relayed.
    for i in range(3):
        w = open_client(relay, '465', b'[127.0.0.1]')
        w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
        queued(k9_send(w, APPLE_MESSAGES[0], ['bob@example.net']))
        w.send(b'QUIT\r\n')
        reset_close(w)
    w = open_client(relay, '587', b'[127.0.0.1]')
    w.cmd(b'NOOP', 250, '2.0.0')
    quit_(w)
    assert_delivered(sink, APPLE_MESSAGES[:1] * 3, b'[127.0.0.1]', ['bob@example.net'])


def test_a_phone_that_loses_its_connection_in_the_middle_of_data_gets_nothing_relayed(
        relay, sink):
    # Mobile clients (iOS Mail, K-9) lose connections mid-message; they retry later. Half
    # a message must never reach the upstream, and the next attempt goes through whole.
    w = open_client(relay, '465', b'smtpclient.apple')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    w.send(b'MAIL FROM:<alice@example.org> SIZE=%d\r\nRCPT TO:<bob@example.net>\r\n'
           % len(K9_MESSAGE))
    assert [r.code for r in w.replies(2)] == [250, 250]
    w.cmd(b'DATA', 354)
    data = stuff(K9_MESSAGE)
    w.send(data[:len(data) // 2])
    wait_read_by_peer(w.sock)  # the relay has read the first half
    reset_close(w)
    w = open_client(relay, '465', b'smtpclient.apple')
    w.cmd(b'AUTH PLAIN ' + plain_ir(ALICE, PASSWORDS[ALICE]), 235, '2.7.0')
    queued(k9_send(w, K9_MESSAGE, ['bob@example.net']))
    quit_(w)
    assert_delivered(sink, [K9_MESSAGE], b'smtpclient.apple', ['bob@example.net'])
    closes = relay.logs('session.close')
    assert [c['messages'] for c in closes] == [0, 1], closes
