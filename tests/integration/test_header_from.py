"""The header From: check (policies/sender_domain.lua; docs/security.md "Header From"),
from the outside, with the domains at their defaults: a user of one hosted domain cannot
make a message that a mail reader shows as from another address, however the From:
(or Sender:) field is spelt, over DATA or CHUNKING, and whatever headers other policies
add. Every test asserts the reply the client got, what the upstream (`sluice sink`)
stored (nothing for a refused message: each test ends with one message that passes, and
the sink holds exactly that one) and the log line of the refusal."""
import re
import smtplib
import subprocess

import pytest

from conftest import (ALICE, DEFAULT_DOMAINS, PASSWORDS, SHIPPED_POLICIES, client_bytes,
                      upstream_conf)

SPOOF = (550, b'5.7.1 Header From: address is not in your domain')
SENDER_SPOOF = (550, b'5.7.1 Header Sender: address is not in your domain')
NO_FROM = (550, b'5.6.0 The message has no From: header')
TWO_FROM = (550, b'5.6.0 The message has more than one From: header')
UNREADABLE = (550, b'5.6.0 The From: header is not a valid address list')
NEEDS_SENDER = (550, b'5.6.0 A From: header with several addresses needs a Sender: header')
TWO_SENDER = (550, b'5.6.0 The message has more than one Sender: header')

# What a client can write to pass for someone else, and what it gets. alice@example.org
# is logged in; example.net is another domain of the same relay.
REFUSED = [
    (b'From: CEO <ceo@example.net>\r\n', SPOOF),
    (b'from: ceo@example.net\r\n', SPOOF),
    (b'FROM:ceo@example.net\r\n', SPOOF),
    (b'From : ceo@example.net\r\n', SPOOF),                     # RFC 5322 4.5.8
    (b'From\t:\t"Alice" <ceo@example.net>\r\n', SPOOF),
    (b'From:\r\n "Alice Liddell"\r\n\t<ceo@example.net>\r\n', SPOOF),  # folded
    (b'From: "alice@example.org" <ceo@example.net>\r\n', SPOOF),
    (b'From: =?UTF-8?B?QWxpY2U=?= <ceo@example.net>\r\n', SPOOF),
    (b'From: Alice (alice@example.org) <ceo (x) @ example . net>\r\n', SPOOF),
    (b'From: <@example.org:ceo@example.net>\r\n', SPOOF),
    (b'From: ceo@EXAMPLE.NET\r\n', SPOOF),
    (b'From: ceo@example.org.example.net\r\n', SPOOF),
    (b'From: alice@example.org, ceo@example.net\r\nSender: alice@example.org\r\n', SPOOF),
    (b'From: Board: alice@example.org, ceo@example.net;\r\nSender: alice@example.org\r\n',
     SPOOF),
    (b'From: alice@example.org\r\nSender: CEO <ceo@example.net>\r\n', SENDER_SPOOF),
    (b'From: alice@example.org\r\nFrom: ceo@example.net\r\n', TWO_FROM),
    (b'From: alice@example.org\r\nFrom : ceo@example.net\r\n', TWO_FROM),
    (b'From: alice@example.org\r\nX-A: 1\r\nfrom\t:ceo@example.net\r\n', TWO_FROM),
    (b'From: alice@example.org\r\nFROM:\r\n ceo@example.net\r\n', TWO_FROM),
    (b'From: alice@example.org\r\nFrom: alice@example.org\r\n', TWO_FROM),
    (b'Subject: no From\r\n', NO_FROM),
    (b'Resent-From: alice@example.org\r\nFrom alice@example.org\r\n', NO_FROM),
    (b'From: alice@example.org, bob@example.org\r\n', NEEDS_SENDER),
    (b'From: alice@example.org\r\nSender: alice@example.org\r\nSender: bob@example.org\r\n',
     TWO_SENDER),
    (b'From: ceo@example.net <alice@example.org>\r\n', UNREADABLE),
    (b'From: =?utf-8?q?<ceo@example.net>?= <alice@example.org>\r\n', UNREADABLE),
    (b'From: <alice@example.org> <ceo@example.net>\r\n', UNREADABLE),
    (b'From: alice@example.org; ceo@example.net\r\n', UNREADABLE),
    (b'From: "Alice <alice@example.org>\r\n', UNREADABLE),
    (b'From: alice@example.org (Alice\r\n', UNREADABLE),
    (b'From: undisclosed-senders:;\r\n', UNREADABLE),
    (b'From: \r\n', UNREADABLE),
]

# What real mail readers write for alice's own address: all relayed as they are.
ACCEPTED = [
    b'From: alice@example.org\r\n',
    b'From: Alice Liddell <alice@example.org>\r\n',
    b'From: "Liddell, Alice" <Alice@Example.ORG>\r\n',
    b'From: =?UTF-8?Q?Alice_L=C3=BCddell?= <alice@example.org>\r\n',
    b'from :\r\n Alice (work)\r\n\t<alice@example.org>\r\n',
    b'From: alice@example.org, bob@example.org\r\nSender: alice@example.org\r\n',
    b'From: "ceo@example.net" <alice@example.org>\r\n',  # a name is only a name
]


@pytest.fixture
def relay(make_relay, sink):
    return make_relay(upstream_conf(sink.port), domains=DEFAULT_DOMAINS)


def data(relay, header, body=b'\r\nhi\r\n', user=ALICE):
    """One message over DATA on a fresh implicit-TLS session: the reply to its end."""
    with relay.raw_authed(user) as c:
        assert c.cmd(b'MAIL FROM:<%s>' % user.encode())[0] == 250
        assert c.cmd(b'RCPT TO:<rcpt@example.com>')[0] == 250
        assert c.cmd(b'DATA')[0] == 354
        return c.cmd(header + body + b'.')


def only_stored(sink, message):
    """The sink holds exactly one message, and it is `message`."""
    stored = sink.wait_messages(1)
    assert [client_bytes(m) for m in stored] == [message]


def test_no_spelling_of_another_address_reaches_the_upstream(relay, sink):
    got = [(header, data(relay, header)) for header, _ in REFUSED]
    wrong = [(h, g) for (h, g), (_, want) in zip(got, REFUSED) if g != want]
    assert not wrong, wrong
    rejects = relay.wait_logs('smtp.reject', len(REFUSED))
    assert [(r['code'], r['enhanced'], r['text']) for r in rejects] == [
        (c, t[:5].decode(), t[6:].decode()) for _, (c, t) in REFUSED]
    audits = relay.audit('domain_mismatch', n=15)
    assert {(a['email'], a['source']) for a in audits} == {
        (ALICE, 'header_from'), (ALICE, 'header_sender')}
    assert {a['sender'] for a in audits} == {'ceo@example.net', 'ceo@EXAMPLE.NET',
                                             'ceo@example.org.example.net'}
    last = b'From: alice@example.org\r\n'
    assert data(relay, last)[0] == 250
    only_stored(sink, last + b'\r\nhi\r\n')


def test_the_forms_a_mail_reader_writes_for_the_users_own_address_pass(relay, sink):
    for header in ACCEPTED:
        reply = data(relay, header)
        assert reply[0] == 250, (header, reply)
    stored = sink.wait_messages(len(ACCEPTED))
    assert [client_bytes(m) for m in stored] == [h + b'\r\nhi\r\n' for h in ACCEPTED]


def test_smtplib_over_both_tls_listeners_gets_550_5_7_1_for_a_spoofed_from(relay, sink):
    spoof = b'From: CEO <ceo@example.net>\r\nSubject: wire the money\r\n\r\nnow\r\n'
    for client in (relay.smtps(), relay.submission()):
        with client as c:
            with pytest.raises(smtplib.SMTPDataError) as e:
                c.sendmail(ALICE, ['victim@example.com'], spoof)
            assert (e.value.smtp_code, e.value.smtp_error) == SPOOF
            # the session goes on: the user's own From: is relayed
            own = b'From: Alice <alice@example.org>\r\n\r\nhi\r\n'
            assert c.sendmail(ALICE, ['victim@example.com'], own) == {}
    stored = sink.wait_messages(2)
    assert [client_bytes(m) for m in stored] == [own, own]
    [bad, _] = relay.audit('domain_mismatch', n=2)
    assert (bad['sender'], bad['sender_domain'], bad['source']) == (
        'ceo@example.net', 'example.net', 'header_from')


def swaks(relay, *args):
    p = subprocess.run(
        ['swaks', '--server', '127.0.0.1:%d' % relay.smtps_port, '--tlsc',
         '--tls-ca-path', relay.cafile, '--tls-verify', '--auth', 'PLAIN',
         '--auth-user', ALICE, '--auth-password', PASSWORDS[ALICE], '--from', ALICE,
         '--to', 'victim@example.com', '--helo', 'client.example'] + list(args),
        capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode('utf-8', 'replace')


def test_swaks_with_a_spoofed_header_from_is_refused_and_its_own_passes(relay, sink):
    # swaks marks an error reply over TLS '<~*'
    code, out = swaks(relay, '--header', 'From: "The CEO" <ceo@example.net>')
    assert code != 0 and '<~* 550 5.7.1 Header From: address is not in your domain' in out, out
    # its own From: stays, and the second one, in the obsolete syntax, is seen
    code, out = swaks(relay, '--header', 'From : ceo@example.net')
    assert code != 0 and '<~* 550 5.6.0 The message has more than one From: header' in out, out
    code, out = swaks(relay)                  # swaks writes From: <the --from address>
    assert code == 0 and '<~  250 2.0.0 Ok: queued as ' in out, out
    [stored] = sink.wait_messages(1)
    assert re.search(rb'\r\nFrom: alice@example\.org\r\n', b'\r\n' + client_bytes(stored))


def bdat(relay, chunks):
    """One message in BDAT chunks (the last one sent as LAST): the replies."""
    with relay.raw_authed() as c:
        assert c.cmd(b'MAIL FROM:<%s>' % ALICE.encode())[0] == 250
        assert c.cmd(b'RCPT TO:<rcpt@example.com>')[0] == 250
        replies = []
        for i, chunk in enumerate(chunks):
            last = b' LAST' if i == len(chunks) - 1 else b''
            c.send(b'BDAT %d%s\r\n' % (len(chunk), last) + chunk)
            replies.append(c.reply())
        return replies


def test_chunking_is_held_to_the_same_rule_across_chunk_boundaries(relay, sink):
    cases = [
        ([b'From: alice@example.org\r\nFr', b'om : ceo@example.net\r\n\r\nhi\r\n'], TWO_FROM),
        ([b'From', b': ceo@exa', b'mple.net\r\n\r\nhi\r\n'], SPOOF),
        ([b'From: alice@example.org\r\n\r\nhi\r\n', b''], None),
        # no blank line and no final CRLF: the relay adds the CRLF, a reader shows it
        ([b'From: alice@example.org\r\nSubject: x\r\nFrom: ceo@example.net'], TWO_FROM),
        ([b'Subject: x\r\n', b'From:\r\n', b' ceo@example.net\r\n\r\nhi\r\n'], SPOOF),
    ]
    for chunks, want in cases:
        replies = bdat(relay, chunks)
        assert all(r.code == 250 for r in replies[:-1]), (chunks, replies)
        if want is None:
            assert replies[-1].code == 250, (chunks, replies)
        else:
            assert replies[-1] == want, (chunks, replies)
    only_stored(sink, b'From: alice@example.org\r\n\r\nhi\r\n')
    assert len(relay.wait_logs('smtp.reject', 4)) == 4


# A policy that edits the header block (docs/lua-api.md "The transaction"): a tag on every
# message, and a From: for a message that has none (as Postfix's always_add_missing_headers).
TAG = """
return {
  on_data = function(session, tx)
    tx:add_header('X-Scanned', 'yes')
    if #tx:headers('From') == 0 then tx:add_header('From', '<' .. session.user .. '>') end
  end,
}
"""


@pytest.mark.parametrize('where', ['before', 'after'])
def test_headers_other_policies_add_do_not_open_a_way_past_the_check(make_relay, sink,
                                                                      tmp_path, where):
    tag = tmp_path / 'tag.lua'
    tag.write_text(TAG)
    at = SHIPPED_POLICIES.index(next(p for p in SHIPPED_POLICIES
                                     if p.endswith('sender_domain.lua')))
    policies = list(SHIPPED_POLICIES)
    policies.insert(at if where == 'before' else at + 1, str(tag))
    relay = make_relay(upstream_conf(sink.port), policies=policies, domains=DEFAULT_DOMAINS)
    assert data(relay, b'From: ceo@example.net\r\n') == SPOOF
    assert data(relay, b'From: alice@example.org\r\nFrom : ceo@example.net\r\n') == TWO_FROM
    assert data(relay, b'From: alice@example.org\r\nSender: ceo@example.net\r\n') == \
        SENDER_SPOOF
    if where == 'before':   # the From: it adds is the user's, and checked as any other
        assert data(relay, b'Subject: none\r\n')[0] == 250
        sent = b'X-Scanned: yes\r\nFrom: <alice@example.org>\r\nSubject: none\r\n\r\nhi\r\n'
    else:                   # sender_domain refused first; nothing after it ran
        assert data(relay, b'Subject: none\r\n') == NO_FROM
        assert data(relay, b'From: alice@example.org\r\n')[0] == 250
        sent = b'X-Scanned: yes\r\nFrom: alice@example.org\r\n\r\nhi\r\n'
    only_stored(sink, sent)


def test_a_domain_that_opts_out_is_not_checked(make_relay, sink):
    relay = make_relay(upstream_conf(sink.port),
                       domains="{ ['example.org'] = {},"
                               " ['example.net'] = { check_header_from = false } }")
    assert data(relay, b'From: ceo@example.net\r\n') == SPOOF      # alice: checked
    carol = 'carol@example.net'
    assert data(relay, b'From: boss@example.org\r\n', user=carol)[0] == 250
    only_stored(sink, b'From: boss@example.org\r\n\r\nhi\r\n')
