"""The real engine and the test double agree (docs/policies.md, "Testing with busted"):
the same policy files, given the same SMTP steps, get the same answer from a real
`sluice run` and from lua/sluice/testing.lua, step by step: the same reply code, the
same enhanced code and the same text.

Each scenario is replayed twice:
 * through the double, by tests/integration/agreement/run_double.lua: the policy chain
   loaded with sluice.testing exactly as a user's busted spec would, each step run as
   the core runs its hook (h:run, h:auth), the verdicts printed as JSON;
 * through a real daemon (one per configuration, workers = 1) with a RawClient over
   implicit TLS, the replies recorded.

An accept from the double is the core's own success reply (docs/lua-api.md, "What the
core does with a verdict"): 235 2.7.0 for AUTH, 250 2.1.0 for MAIL, and so on; a reject
or tempfail is the verdict's code, enhanced code and text. Each step also names the
reply it must get, so a scenario that should refuse fails if both sides accept. Besides
the replies, both sides must relay the same messages, log the same policy errors and
write the same audit events; agreement/probe.lua turns what hooks see (session, tx,
message, domain settings, on_auth_result's verdict) into reply texts, to compare inputs.

What the double does not model is kept out of the comparison, and asserted against the
daemon alone:
 * the greeting's and EHLO's text (host name, extension list): the core's, not a hook's;
 * the 354 that DATA gets before the message: no hook runs there;
 * replies the core gives before any hook runs (530 Authentication required...), which
   a step marks with `core=`;
 * the core's own session limits (limits.max_auth_failures: the third refused AUTH of a
   session also gets 421; limits.max_errors): the scenarios stay under them, e.g. the
   rate-limit one spreads its five failures over three connections.
Each scenario connects from its own loopback address (127.0.0.N), so the daemon's shared
dictionary, which lives as long as the daemon, starts empty for it as the double's does.
"""
import json
import re
import socket
import subprocess
import time

import pytest

from conftest import (ROOT, SHIPPED_POLICIES, SLUICE, RawClient, Relay, Sink, b64,
                      upstream_conf)

DRIVER = ROOT / 'tests' / 'integration' / 'agreement' / 'run_double.lua'
PROBE = str(ROOT / 'tests' / 'integration' / 'agreement' / 'probe.lua')
FILL_ZONE = str(ROOT / 'tests' / 'integration' / 'agreement' / 'fill_zone.lua')
EXAMPLES = [str(ROOT / 'policies' / 'examples' / n)
            for n in ('recipient_domains.lua', 'max_recipients.lua')]

# Users files are named by the A-label (docs/lua-api.md); the double's passwd.verify is
# asked for the same identities, so one table serves both sides.
PASSWORDS = {
    'alice@example.org': 'alice-pw', 'bob@example.org': 'bob-pw',
    'carol@example.net': 'carol-pw', 'hank@strict.example': 'hank-pw',
    'dora@xn--bcher-kva.example': 'dora-pw', 'erin@disabled.example': 'erin-pw',
    'bill@billing.example': 'bill-pw', 'news@newsletter.example': 'news-pw',
    'sam@small.example': 'sam-pw', 'lou@loose.example': 'lou-pw',
}

DOMAINS = {
    'example.org': {'senders': {'alice@example.org': ['alice@partner.example',
                                                      'Team@Example.NET']}},
    'example.net': {'allow_subdomains': True, 'allow_null_sender': True},
    'strict.example': {},                       # the header From: check at its default
    'loose.example': {'check_header_from': False},
    'bücher.example': {},
    'disabled.example': {'enabled': False},
    'billing.example': {},
    'newsletter.example': {},
    'small.example': {'limits': {'user_messages_per_hour': 1}},
}

# The loader lowercases domain names and senders keys (docs/lua-api.md, Configuration);
# a spec handing the same table to testing.new() must see the same policy decisions.
MIXED_CASE_DOMAINS = {
    'Example.ORG': {},
    'example.net': {'senders': {'Carol@Example.NET': ['carol@partner.example']}},
}

CONFIGS = {
    'shipped': {'policies': SHIPPED_POLICIES, 'domains': DOMAINS},
    'examples': {'policies': SHIPPED_POLICIES + EXAMPLES, 'domains': DOMAINS},
    'probe': {'policies': SHIPPED_POLICIES + [PROBE], 'domains': DOMAINS},
    'mixed_case': {'policies': SHIPPED_POLICIES, 'domains': MIXED_CASE_DOMAINS},
    # a zone blocks small enough for agreement/fill_zone.lua to fill (EHLO fill-blocks.test)
    'full_blocks': {'policies': SHIPPED_POLICIES + [FILL_ZONE], 'domains': DOMAINS,
                    'zones': {'blocks': {'size': '32k'}}},
}

# The core's reply when the chain accepts: (code, enhanced, text). None: the text is the
# core's own (host name, EHLO keywords) and not compared; a pattern: it carries an id.
CORE_ACCEPT = {
    'connect': (220, None, None),
    'ehlo': (250, None, None),
    'auth': (235, '2.7.0', 'Authentication successful'),
    'mail': (250, '2.1.0', 'Sender ok'),
    'rcpt': (250, '2.1.5', 'Recipient ok'),
    'data': (250, '2.0.0', re.compile(r'Ok: queued as [0-9a-f]{8,16}\.\d+( upstream \S+)?')),
}

OK = {op: reply[:2] for op, reply in CORE_ACCEPT.items()}
INVALID = (535, '5.7.8')
NOT_AUTHORIZED = (550, '5.7.1')
POLICY_FAILED = (451, '4.3.0')
# ratelimit.lua's refusals: their scenarios must count within one window (see below)
RATE_LIMITED = {(454, '4.7.0'), (421, '4.7.0'), (451, '4.7.1')}


# ---- scenario steps: each says what it sends and the (code, enhanced) it must get ----

def connect(expect=OK['connect']):
    return {'op': 'connect', 'expect': expect}


def ehlo(name='client.test', expect=OK['ehlo']):
    return {'op': 'ehlo', 'name': name, 'expect': expect}


def auth(user, password, expect, mechanism='PLAIN'):
    return {'op': 'auth', 'user': user, 'password': password, 'mechanism': mechanism,
            'expect': expect}


def mail(sender, expect=OK['mail'], smtputf8=False, size=None, core=None):
    return {'op': 'mail', 'sender': sender, 'smtputf8': smtputf8, 'size': size,
            'expect': expect, 'core': core}


def rcpt(recipient, expect=OK['rcpt']):
    return {'op': 'rcpt', 'recipient': recipient, 'expect': expect}


def data(message, expect=OK['data']):
    return {'op': 'data', 'message': message, 'expect': expect}


def login(user, password=None, mechanism='PLAIN'):
    return [connect(), ehlo(),
            auth(user, PASSWORDS[user] if password is None else password, OK['auth'],
                 mechanism)]


def send(sender, recipients=('rcpt@example.com',), message=None, smtputf8=False,
         header_from=None):
    """One whole transaction that every policy lets through: its header From: is the
    sender (header_from for the null sender) unless a message is given."""
    if message is None:
        message = 'From: <%s>\nSubject: hi\n\nhello\n' % (header_from or sender)
    return ([mail(sender, smtputf8=smtputf8)] + [rcpt(r) for r in recipients]
            + [data(message)])


def scenario(name, config, *connections):
    return pytest.param({'name': name, 'config': config, 'connections': list(connections)},
                        id=name)


SCENARIOS = [
    # -- the four shipped policies, in the default order (conf/sluice.lua) --
    scenario('good_login_and_own_sender_are_accepted', 'shipped',
             login('alice@example.org') + send('alice@example.org')),
    scenario('wrong_password_gets_535_and_the_right_one_235', 'shipped',
             [connect(), ehlo(), auth('alice@example.org', 'guess', INVALID),
              # the core refuses MAIL before AUTH itself: no hook runs, no double step
              mail('alice@example.org', (530, '5.7.0'),
                   core=(530, '5.7.0', 'Authentication required')),
              auth('alice@example.org', 'alice-pw', OK['auth'])]
             + send('alice@example.org')),
    scenario('undeclared_domain_and_unknown_user_get_535', 'shipped',
             [connect(), ehlo(), auth('eve@nowhere.example', 'eve-pw', INVALID),
              auth('mallory@example.org', 'x', INVALID)]),
    scenario('sender_of_another_domain_gets_550', 'shipped',
             login('alice@example.org')
             + [mail('alice@other.example', NOT_AUTHORIZED),
                mail('ALICE@EXAMPLE.ORG'), rcpt('rcpt@example.com')]),
    scenario('null_sender_is_refused_by_default', 'shipped',
             login('alice@example.org') + [mail('', NOT_AUTHORIZED)]),
    scenario('null_sender_is_allowed_with_allow_null_sender', 'shipped',
             login('carol@example.net') + send('', header_from='carol@example.net')),
    scenario('a_label_login_sends_as_the_u_label', 'shipped',
             login('dora@xn--bcher-kva.example')
             + send('dora@bücher.example', smtputf8=True)
             + [mail('dora@other.example', NOT_AUTHORIZED)]),
    scenario('upper_case_u_label_login_is_the_same_domain', 'shipped',
             login('dora@BÜCHER.example', 'dora-pw')
             + send('dora@bücher.example', smtputf8=True)),
    scenario('u_label_login_sends_as_the_a_label', 'shipped',
             login('dora@bücher.example', 'dora-pw', mechanism='LOGIN')
             + send('Dora@XN--BCHER-KVA.example')),
    scenario('subdomain_sender_is_refused_without_allow_subdomains', 'shipped',
             login('alice@example.org') + [mail('alice@sub.example.org', NOT_AUTHORIZED)]),
    scenario('subdomain_sender_is_allowed_with_allow_subdomains', 'shipped',
             login('carol@example.net')
             + [mail('carol@notexample.net', NOT_AUTHORIZED)]
             + send('carol@mail.example.net')),
    scenario('alias_senders_of_the_user_are_allowed', 'shipped',
             login('alice@example.org')
             + send('alice@partner.example') + send('team@example.net')),
    scenario('mixed_case_login_is_the_same_user_for_its_aliases', 'shipped',
             login('Alice@Example.ORG', 'alice-pw') + send('alice@partner.example')),
    scenario('alias_senders_are_the_listed_users_only', 'shipped',
             login('bob@example.org') + [mail('alice@partner.example', NOT_AUTHORIZED)]),
    scenario('header_from_is_held_to_the_domain_by_default', 'shipped',
             login('hank@strict.example')
             + [mail('hank@strict.example'), rcpt('rcpt@example.com'),
                data('From: Mallory <mallory@example.org>\nSubject: x\n\nhi\n',
                     NOT_AUTHORIZED)]
             + [mail('hank@strict.example'), rcpt('rcpt@example.com'),
                data('Subject: no From\n\nhi\n', (550, '5.6.0'))]
             + [mail('hank@strict.example'), rcpt('rcpt@example.com'),
                data('From: a@strict.example\nFrom: b@strict.example\n\nhi\n',
                     (550, '5.6.0'))]
             + send('hank@strict.example',
                    message='From: "Hank, H." <hank@strict.example>\n\nhi\n')),
    # What core/proto/message.c and the double must read alike: obsolete blanks before the
    # colon, case, folding, a Sender:, an address list, a name that is no phrase.
    scenario('header_from_is_read_alike_in_every_spelling', 'shipped',
             login('hank@strict.example')
             + [mail('hank@strict.example'), rcpt('rcpt@example.com'),
                data('From: hank@strict.example\nFrom : mallory@example.org\n\nhi\n',
                     (550, '5.6.0'))]
             + [mail('hank@strict.example'), rcpt('rcpt@example.com'),
                data('X-A: 1\nfrom\t:\n Mallory\n\t<mallory@example.org>\n\nhi\n',
                     NOT_AUTHORIZED)]
             + [mail('hank@strict.example'), rcpt('rcpt@example.com'),
                data('From: hank@strict.example\nno colon\n From: x@y.test\n\nhi\n')]
             + [mail('hank@strict.example'), rcpt('rcpt@example.com'),
                data('From: hank@strict.example\nSender: <mallory@example.org>\n\nhi\n',
                     NOT_AUTHORIZED)]
             + [mail('hank@strict.example'), rcpt('rcpt@example.com'),
                data('From: hank@strict.example, h2@strict.example\n\nhi\n',
                     (550, '5.6.0'))]
             + [mail('hank@strict.example'), rcpt('rcpt@example.com'),
                data('From: mallory@example.org <hank@strict.example>\n\nhi\n',
                     (550, '5.6.0'))]
             + send('hank@strict.example',
                    message='FROM :\n =?utf-8?q?Hank?= (H.)\n <hank@strict.example>\n'
                            'Sender: hank@strict.example\n\nhi\n')),
    scenario('header_from_is_not_checked_where_the_domain_opts_out', 'shipped',
             login('lou@loose.example')
             + send('lou@loose.example',
                    message='From: Mallory <mallory@example.net>\n\nhi\n')
             + send('lou@loose.example', message='Subject: no From\n\nhi\n')),
    # Five refused passwords from one address within a minute block it (ratelimit.lua):
    # 454 at AUTH, even with the right password, then 421 at connect. Spread over three
    # connections: limits.max_auth_failures (3) would otherwise close the session.
    scenario('five_failed_logins_block_the_address', 'shipped',
             [connect(), ehlo(), auth('bob@example.org', 'x1', INVALID),
              auth('bob@example.org', 'x2', INVALID)],
             [connect(), ehlo(), auth('bob@example.org', 'x3', INVALID),
              auth('bob@example.org', 'x4', INVALID)],
             [connect(), ehlo(), auth('bob@example.org', 'x5', INVALID),
              auth('bob@example.org', 'bob-pw', (454, '4.7.0'))],
             [connect((421, '4.7.0'))]),
    # (Failures per user add up across scenarios in the daemon, not in the double: each
    # user stays under the 10 a minute that would slow its AUTH down, ratelimit.lua.)
    # The zone blocks is full and never evicts: the fifth failure's block does not fit, and
    # is enforced all the same (kept in limits, lua/sluice/ratelimit.lua), on both sides.
    scenario('a_block_that_does_not_fit_the_full_zone_still_blocks', 'full_blocks',
             [connect(), ehlo('fill-blocks.test'), auth('bob@example.org', 'x1', INVALID),
              auth('bob@example.org', 'x2', INVALID)],
             [connect(), ehlo(), auth('bob@example.org', 'x3', INVALID),
              auth('bob@example.org', 'x4', INVALID)],
             [connect(), ehlo(), auth('bob@example.org', 'x5', INVALID),
              auth('bob@example.org', 'bob-pw', (454, '4.7.0'))],
             [connect((421, '4.7.0'))]),
    scenario('four_failed_logins_do_not_block', 'shipped',
             [connect(), ehlo(), auth('alice@example.org', 'y1', INVALID),
              auth('alice@example.org', 'y2', INVALID)],
             [connect(), ehlo(), auth('alice@example.org', 'y3', INVALID),
              auth('alice@example.org', 'y4', INVALID)],
             login('alice@example.org') + send('alice@example.org')),
    scenario('message_rate_limit_tempfails_mail_from', 'shipped',
             login('sam@small.example') + send('sam@small.example')
             + [mail('sam@small.example', (451, '4.7.1'))]),
    scenario('disabled_domain_is_refused_at_auth', 'shipped',
             [connect(), ehlo(), auth('erin@disabled.example', 'wrong', INVALID),
              auth('erin@disabled.example', 'erin-pw', (525, '5.7.13'))]),

    # -- the worked examples (policies/examples/, specs in tests/lua/policies/examples/),
    #    after the shipped four --
    scenario('recipient_domains_accepts_the_listed_domains', 'examples',
             login('bill@billing.example')
             + send('bill@billing.example', ['c@Example.COM', 'd@bücher.example',
                                             'e@xn--bcher-kva.example'], smtputf8=True)),
    scenario('recipient_domains_rejects_other_domains', 'examples',
             login('bill@billing.example')
             + [mail('bill@billing.example'), rcpt('c@example.net', NOT_AUTHORIZED),
                rcpt('c@sub.example.com', NOT_AUTHORIZED), rcpt('c@example.com'),
                data('From: bill@billing.example\nSubject: bill\n\nhi\n')]),
    scenario('recipient_domains_leaves_other_senders_alone', 'examples',
             login('alice@example.org') + send('alice@example.org', ['c@example.net'])),
    scenario('max_recipients_accepts_up_to_the_cap_and_tempfails_past_it', 'examples',
             login('news@newsletter.example')
             + [mail('news@newsletter.example')]
             + [rcpt('r%d@example.com' % i) for i in range(1, 11)]
             + [rcpt('r11@example.com', (452, '4.5.3')),
                rcpt('r12@example.com', (452, '4.5.3')),
                data('From: news@newsletter.example\nSubject: news\n\nhi\n')]),
    scenario('max_recipients_does_not_cap_other_domains', 'examples',
             login('alice@example.org')
             + send('alice@example.org', ['r%d@example.com' % i for i in range(1, 13)])),

    # -- what hooks see: agreement/probe.lua refuses with a description of its inputs --
    scenario('hooks_see_the_same_session_and_transaction', 'probe',
             login('alice@example.org')
             + [mail('alice@example.org', smtputf8=True, size=1234), rcpt('a@example.com'),
                rcpt('probe-session@probe.test', NOT_AUTHORIZED),
                rcpt('probe-tx@probe.test', NOT_AUTHORIZED)]),
    scenario('hooks_see_the_same_message', 'probe',
             login('alice@example.org')
             + [mail('alice@example.org'), rcpt('a@example.com'), rcpt('b@example.com'),
                data('Subject: probe\nFrom: Alice <alice@example.org>\nX-Twice: 1\n'
                     'X-Folded: a\n\tb\n c\nx-twice:2\nX-Empty:\n'
                     '\n.leading dot\nline two\n', NOT_AUTHORIZED)]),
    scenario('hooks_see_the_previous_helo', 'probe',
             [connect(), ehlo('first.test'), ehlo('probe-helo.test', NOT_AUTHORIZED),
              ehlo('second.test'), ehlo('probe-helo.test', NOT_AUTHORIZED)]),
    scenario('a_failing_hook_gives_451_on_both_sides', 'probe',
             login('alice@example.org')
             + [mail('alice@example.org'), rcpt('probe-error@probe.test', POLICY_FAILED),
                rcpt('probe-bogus@probe.test', POLICY_FAILED), rcpt('a@example.com')]),
    scenario('on_auth_result_sees_the_same_verdicts', 'probe',
             [connect(), ehlo(), auth('alice@example.org', 'guess', INVALID),
              auth('alice@example.org', 'alice-pw', OK['auth']),
              mail('alice@example.org'), rcpt('probe-auth@probe.test', NOT_AUTHORIZED)]),
    scenario('hooks_see_the_same_domain_settings', 'probe',
             login('carol@example.net')
             + [mail('carol@example.net'), rcpt('probe-domain@probe.test', NOT_AUTHORIZED)]),

    # -- the loader's normalisation of `domains` (docs/lua-api.md, Configuration) --
    scenario('mixed_case_domain_key_is_served', 'mixed_case',
             login('alice@example.org') + send('alice@example.org')),
    scenario('mixed_case_senders_key_lists_the_users_aliases', 'mixed_case',
             login('carol@example.net') + send('carol@partner.example')),
]


# ---- rendering one configuration for both sides ----

def lua_string(s):
    """A Lua string literal; non-ASCII bytes as \\ddd, so the file's encoding is moot."""
    out = []
    for byte in s.encode('utf-8'):
        ch = chr(byte)
        if ch in '\\\'':
            out.append('\\' + ch)
        elif 0x20 <= byte < 0x7f:
            out.append(ch)
        else:
            out.append('\\%d' % byte)
    return "'" + ''.join(out) + "'"


def lua_value(v):
    if isinstance(v, bool):
        return 'true' if v else 'false'
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return lua_string(v)
    if isinstance(v, dict):
        return '{ %s }' % ', '.join('[%s] = %s' % (lua_string(k), lua_value(x))
                                    for k, x in v.items())
    return '{ %s }' % ', '.join(lua_value(x) for x in v)


@pytest.fixture(scope='module')
def agreement_users(tmp_path_factory):
    d = tmp_path_factory.mktemp('agreement-users')
    by_domain = {}
    for ident, pw in PASSWORDS.items():
        local, domain = ident.split('@')
        h = subprocess.run([SLUICE, 'passwd', '-s', 'sha512'], input=pw + '\n', text=True,
                           capture_output=True, check=True).stdout.strip()
        by_domain.setdefault(domain, []).append('%s:%s\n' % (local, h))
    for domain, lines in by_domain.items():
        (d / (domain + '.txt')).write_text(''.join(lines))
    return d


@pytest.fixture(scope='module')
def agreement_sink(tmp_path_factory):
    s = Sink(tmp_path_factory.mktemp('agreement-sink'))
    yield s
    s.stop()


@pytest.fixture(scope='module')
def daemon(tmp_path_factory, certs, agreement_users, agreement_sink):
    """daemon(config_name) -> the Relay running that configuration, started on first use
    and shared by every scenario of the module."""
    started = {}

    def get(name):
        if name not in started:
            cfg = CONFIGS[name]
            zones = 'zones = %s,' % lua_value(cfg['zones']) if 'zones' in cfg else ''
            started[name] = Relay(tmp_path_factory.mktemp('agreement-' + name), certs,
                                  agreement_users, upstream_conf(agreement_sink.port),
                                  workers=1, policies=cfg['policies'],
                                  domains=lua_value(cfg['domains']), extra=zones)
        return started[name]
    yield get
    for relay in started.values():
        rc = relay.stop()
        err = relay.err.read_text(errors='replace')
        assert 'AddressSanitizer' not in err and 'runtime error' not in err, err
        assert rc == 0, 'sluice run exited %s on TERM:\n%s' % (rc, err[-3000:])


# ---- the two sides ----

def run_double(tmp_path, sc, address):
    cfg = CONFIGS[sc['config']]
    spec = {'policies': cfg['policies'], 'domains': cfg['domains'], 'users': PASSWORDS,
            'zones': cfg.get('zones'),
            'connections': [{'client_address': address,
                             'steps': [{k: v for k, v in s.items()
                                        if v is not None and k != 'expect'} for s in steps]}
                            for steps in sc['connections']]}
    path = tmp_path / 'scenario.json'
    path.write_text(json.dumps(spec))
    out = subprocess.run(['luajit', str(DRIVER), str(path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, (out.stdout, out.stderr)
    result = json.loads(out.stdout)
    return result['connections'], result['policy_errors'] or [], result['audits'] or []


class SourcedClient(RawClient):
    """RawClient over implicit TLS from a chosen local address."""

    def __init__(self, relay, source, timeout=10):
        self.host = relay.host
        sock = socket.create_connection((relay.host, relay.smtps_port), timeout=timeout,
                                        source_address=(source, 0))
        self.sock = relay.tls_context().wrap_socket(sock, server_hostname=relay.host)
        self.buf = b''
        self.greeting = None


def split_reply(reply):
    """(code, enhanced or None, text of the first line)."""
    first = reply.text.decode('utf-8', 'replace').split('\n')[0]
    m = re.match(r'(\d\.\d{1,3}\.\d{1,3}) (.*)$', first)
    return (reply.code,) + ((m.group(1), m.group(2)) if m else (None, first))


def message_bytes(message):
    text = message.replace('\r\n', '\n').replace('\n', '\r\n').encode('utf-8')
    return re.sub(rb'(?m)^\.', b'..', text)     # RFC 5321 4.5.2 dot-stuffing


def run_step(c, step):
    op = step['op']
    if op == 'connect':
        return c.reply()
    if op == 'ehlo':
        return c.cmd('EHLO ' + step['name'])
    if op == 'auth':
        if step['mechanism'] == 'LOGIN':
            assert c.cmd(b'AUTH LOGIN').code == 334
            assert c.cmd(b64(step['user'])).code == 334
            return c.cmd(b64(step['password']))
        return c.cmd('AUTH PLAIN ' + b64('\0%s\0%s' % (step['user'], step['password'])))
    if op == 'mail':
        params = (' SMTPUTF8' if step['smtputf8'] else '') + (
            ' SIZE=%d' % step['size'] if step['size'] is not None else '')
        return c.cmd(('MAIL FROM:<%s>%s' % (step['sender'], params)).encode('utf-8'))
    if op == 'rcpt':
        return c.cmd(('RCPT TO:<%s>' % step['recipient']).encode('utf-8'))
    assert op == 'data'
    assert c.cmd(b'DATA') == (354, b'End data with <CR><LF>.<CR><LF>')  # no hook here
    return c.cmd(message_bytes(step['message']) + b'.')


def run_daemon(relay, sc, address):
    results = []
    for steps in sc['connections']:
        c = SourcedClient(relay, address)
        got = []
        try:
            for step in steps:
                reply = run_step(c, step)
                got.append(split_reply(reply))
                if reply.code == 421:   # RFC 5321 3.8: the core closes after any 421
                    assert step is steps[-1], 'steps after a 421 in %s' % sc['name']
                    assert c.at_eof()
        finally:
            c.close()
        results.append(got)
    return results


def wait_for_a_fresh_minute(margin=5):
    """ratelimit.lua counts in fixed windows (a minute, an hour), the previous one weighted
    by its overlap: five failures split across a boundary may weigh less than 5. The
    double's clock stands still; give the daemon one window too (an hour's boundaries are
    minutes' boundaries)."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def daemon_audits(relay, address, n, timeout=5):
    """The audit lines of this scenario's sessions (those from its address), once there
    are n of them: one writer thread appends them a moment after they are raised."""
    deadline = time.monotonic() + timeout
    while True:
        sids = {e['sid'] for e in relay.logs('session.open') if e.get('ip') == address}
        lines = [json.loads(l) for l in relay.audit_log.read_text().splitlines() if l]
        mine = [a for a in lines if a.get('session_id') in sids]
        if len(mine) >= n or time.monotonic() > deadline:
            return mine
        time.sleep(0.02)


# ---- comparison ----

# Audit fields that differ by nature: times and ids, and what the upstream said (the
# double has no upstream: run_double.lua makes up the sink's 250 for on_relayed).
AUDIT_IGNORED = {'timestamp', 'session_id', 'message_id', 'queue_id', 'upstream',
                 'upstream_reply', 'tls_cipher'}


def comparable(audit):
    """The audit line without the fields that differ by nature."""
    return {k: v for k, v in audit.items() if k not in AUDIT_IGNORED}


def expected_from_double(op, verdict):
    if verdict['kind'] == 'core':       # the double never reached a hook: see its text
        return (None, None, verdict['text'])
    if verdict['kind'] == 'accept':
        return CORE_ACCEPT[op]
    return (verdict['code'], verdict['enhanced'], verdict['text'])


def same(want, got):
    code, enhanced, text = want
    if code != got[0] or (enhanced is not None and enhanced != got[1]):
        return False
    if text is None:
        return True
    if isinstance(text, re.Pattern):
        return text.fullmatch(got[2]) is not None
    return text == got[2]


def show(reply):
    code, enhanced, text = reply
    code = '---' if code is None else code
    if isinstance(text, re.Pattern):
        text = '/%s/' % text.pattern
    return ' '.join(str(x) for x in (code, enhanced or '', text or '<core text>'))


def compare(sc, double, real):
    """Rows of the transcript, the steps where the sides differ, and the steps where
    either side did not give the reply the scenario expects."""
    rows, disagree, unexpected = [], [], []
    for n, steps in enumerate(sc['connections']):
        assert len(double[n]) == len(steps) == len(real[n])
        for step, d, r in zip(steps, double[n], real[n]):
            label = 'conn %d %s %s' % (n + 1, step['op'], step.get('sender') or
                                       step.get('recipient') or step.get('user') or '')
            if step.get('core'):        # the core's own reply: nothing to compare with
                assert d.get('skipped')
                want = tuple(step['core'])
                rows.append('%-44s double: (not modelled)  daemon: %s' % (label, show(r)))
            else:
                want = expected_from_double(step['op'], d)
                rows.append('%-44s double: %s  daemon: %s' % (label, show(want), show(r)))
            if not same(want, r):
                disagree.append(rows[-1])
            if tuple(r[:2]) != tuple(step['expect']) or tuple(want[:2]) != tuple(
                    step['expect']):
                unexpected.append('%s  expected %s %s' % (rows[-1], *step['expect']))
    return rows, disagree, unexpected


@pytest.mark.parametrize('sc', SCENARIOS)
def test_the_double_and_the_daemon_give_the_same_replies(sc, daemon, agreement_sink,
                                                         tmp_path):
    index = [p.values[0]['name'] for p in SCENARIOS].index(sc['name'])
    address = '127.0.0.%d' % (10 + index)   # its own client: its own rate-limit keys
    relay = daemon(sc['config'])
    double, double_errors, double_audits = run_double(tmp_path, sc, address)
    if any(s['expect'] in RATE_LIMITED for c in sc['connections'] for s in c):
        wait_for_a_fresh_minute()
    stored, errors = len(agreement_sink.messages()), len(relay.logs('policy.error'))
    real = run_daemon(relay, sc, address)

    rows, disagree, unexpected = compare(sc, double, real)
    transcript = '\n'.join(rows)
    assert not disagree, 'the double and the daemon disagree:\n%s\n\nwhole scenario:\n%s' % (
        '\n'.join(disagree), transcript)
    assert not unexpected, 'not the replies the scenario is about:\n%s\n\nwhole:\n%s' % (
        '\n'.join(unexpected), transcript)
    # Tests run one at a time against a one-worker daemon: what changed is this scenario's.
    # The sink replied 250 before the daemon did, so the messages are stored already.
    relayed = sum(1 for c in sc['connections'] for s in c
                  if s['op'] == 'data' and s['expect'][0] == 250)
    assert len(agreement_sink.messages()) - stored == relayed
    # a policy error is logged the same way: file:line and message
    assert [e['error'] for e in relay.logs('policy.error')[errors:]] == double_errors
    # and the policies raise the same audit events (docs/audit.md)
    real_audits = daemon_audits(relay, address, len(double_audits))
    mine, theirs = [comparable(a) for a in double_audits], [comparable(a) for a in real_audits]
    assert mine == theirs, 'audit events differ\ndouble:\n%s\ndaemon:\n%s' % (
        '\n'.join(map(json.dumps, mine)), '\n'.join(map(json.dumps, theirs)))


def test_the_scenarios_cover_every_kind_of_reply_they_claim_to():
    """A table of scenarios that all just accept proves little: each one must either be
    refused somewhere or get a message relayed, and refusals of every kind must be in."""
    codes = set()
    for p in SCENARIOS:
        sc = p.values[0]
        mine = [s['expect'][0] for c in sc['connections'] for s in c]
        assert any(code >= 400 for code in mine) or any(
            s['op'] == 'data' for c in sc['connections'] for s in c), sc['name']
        codes.update(mine)
    assert {535, 550, 525, 454, 421, 452, 451}.issubset(codes), codes
    assert any(s['expect'] == POLICY_FAILED for p in SCENARIOS
               for c in p.values[0]['connections'] for s in c)
