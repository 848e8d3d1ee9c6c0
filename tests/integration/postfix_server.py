"""A real Postfix (Debian's postfix 3.7) as an upstream for the tests: the package that
`make deps` fetched (`apt-get download postfix` into tests/integration/.debs/) unpacked
into the test's own directory, never installed: its own config_directory, queue,
data directory and maillog, smtpd on a free loopback port, mail relayed on to a
`sluice sink` (relayhost) so that a test reads what Postfix delivered. Started and
stopped by PID: the master runs in the foreground (-d) in its own session and takes its
children along on TERM. Postfix's master runs only as root (its daemons drop to nobody),
as bench/compare.sh, which this follows, explains.

    pf = PostfixServer(tmp_path / 'postfix', relay_port=sink.port,
                       xclient_hosts='127.0.0.0/8', xforward_hosts='')
    pf.port                       # smtpd's port on 127.0.0.1
    pf.wait_log(r'sasl_username=alice')   # a line of its maillog
    pf.stop()
"""
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from conftest import ROOT, free_port, wait_until

# Where `make deps` puts the package (tests/integration/.debs/postfix_*.deb); POSTFIX_DEB
# names another file.
DEBS = ROOT / 'tests' / 'integration' / '.debs'


def postfix_deb():
    given = os.environ.get('POSTFIX_DEB')
    if given:
        return pathlib.Path(given)
    found = sorted(DEBS.glob('postfix_*.deb'))
    if not found:
        pytest.fail('no postfix .deb in %s: run `make deps` (it runs apt-get download '
                    'postfix there)' % DEBS, pytrace=False)
    return found[-1]


MASTER_CF = """# written by tests/integration/postfix_server.py: no chroot, smtpd on one loopback port
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
"""


class PostfixServer:
    """Postfix's smtpd on 127.0.0.1:port relaying to 127.0.0.1:relay_port.
    xclient_hosts / xforward_hosts: smtpd_authorized_xclient_hosts and
    smtpd_authorized_xforward_hosts ('' = nobody); mynetworks; extra: more main.cf text.
    SASL is enabled (Cyrus, no users) so that Postfix logs sasl_username= and writes
    "(Authenticated sender: ...)" for a login XCLIENT gave."""

    def __init__(self, tmp, relay_port, xclient_hosts='127.0.0.0/8',
                 xforward_hosts='127.0.0.0/8', mynetworks='127.0.0.0/8', extra=''):
        if os.geteuid() != 0:
            pytest.fail('Postfix\'s master runs only as root: run the tests as root',
                        pytrace=False)
        # Postfix's daemons run as nobody and must reach data_directory and the queue:
        # pytest's directories are root's alone (0700), so Postfix gets one of its own in
        # /tmp, traversable (0711), removed by stop(); tmp only names it in the test's logs.
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix='sluice-postfix-'))
        os.chmod(self.dir, 0o711)
        pathlib.Path(tmp).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(tmp) / 'postfix-dir').write_text(str(self.dir) + '\n')
        self.root = self.dir / 'root'
        self.conf = self.dir / 'conf'
        self.queue = self.dir / 'queue'
        self.data = self.dir / 'data'
        self.maillog = self.dir / 'maillog'
        self.port = free_port()
        self.proc = None
        subprocess.run(['dpkg-deb', '-x', str(postfix_deb()), str(self.root)], check=True)
        for d in (self.conf / 'sasl', self.queue, self.data):
            d.mkdir(parents=True, exist_ok=True)
        # Postfix's daemons run as nobody: the paths must be traversable
        for d in (self.conf, self.conf / 'sasl'):
            os.chmod(d, 0o755)
        shutil.chown(self.data, 'nobody')
        r = self.root
        (self.conf / 'main.cf').write_text(f"""# written by tests/integration/postfix_server.py
compatibility_level = 3.6
config_directory = {self.conf}
queue_directory = {self.queue}
data_directory = {self.data}
meta_directory = {self.conf}
daemon_directory = {r}/usr/lib/postfix/sbin
command_directory = {r}/usr/sbin
shlib_directory = {r}/usr/lib/postfix
manpage_directory = {r}/usr/share/man
sendmail_path = {r}/usr/sbin/sendmail
newaliases_path = {r}/usr/bin/newaliases
mailq_path = {r}/usr/bin/mailq
html_directory = no
readme_directory = no
sample_directory = no
mail_owner = nobody
default_privs = daemon
setgid_group = mail
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH
export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH
maillog_file = {self.maillog}
maillog_file_prefixes = {self.dir}
myhostname = postfix.test
mydomain = postfix.test
mydestination =
mynetworks = {mynetworks}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps =
alias_database =
local_transport = error:local delivery is disabled
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_authorized_xclient_hosts = {xclient_hosts}
smtpd_authorized_xforward_hosts = {xforward_hosts}
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {self.conf}/sasl
smtpd_sasl_authenticated_header = yes
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
{extra}
""")
        (self.conf / 'master.cf').write_text(MASTER_CF.format(port=self.port))
        (self.conf / 'sasl' / 'smtpd.conf').write_text(
            'pwcheck_method: auxprop\nauxprop_plugin: sasldb\n'
            'sasldb_path: %s/sasl/sasldb2\nmech_list: PLAIN LOGIN\n' % self.conf)
        (self.conf / 'dynamicmaps.cf').write_text('')
        (self.conf / 'dynamicmaps.cf.d').mkdir(exist_ok=True)
        (self.conf / 'postfix-files.d').mkdir(exist_ok=True)
        shutil.copy(r / 'etc' / 'postfix' / 'postfix-files', self.conf)
        self.env = dict(os.environ, LD_LIBRARY_PATH=str(r / 'usr' / 'lib' / 'postfix'))
        # `postfix check` makes the queue directories (post-install create-missing)
        chk = subprocess.run([str(r / 'usr' / 'sbin' / 'postfix'), '-c', str(self.conf),
                              'check'], env=self.env, capture_output=True, text=True,
                             timeout=60)
        assert chk.returncode == 0, 'postfix check: %s%s' % (chk.stdout, chk.stderr)
        self.start()

    def start(self):
        self.out = open(self.dir / 'master.out', 'wb')
        self.proc = subprocess.Popen(
            [str(self.root / 'usr' / 'lib' / 'postfix' / 'sbin' / 'master'), '-c',
             str(self.conf), '-d'], env=self.env, stdout=self.out, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until(self._greets, 'Postfix greets on 127.0.0.1:%d (%s)' % (
            self.port, self.maillog), timeout=30)

    def _greets(self):
        if self.proc.poll() is not None:
            raise AssertionError('postfix master exited %s: %s\n%s' % (
                self.proc.returncode, (self.dir / 'master.out').read_text(errors='replace'),
                self.log_text()[-3000:]))
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=5) as s:
                return s.recv(512).startswith(b'220 ')
        except OSError:
            return False

    def log_text(self):
        return self.maillog.read_text(errors='replace') if self.maillog.exists() else ''

    def wait_log(self, pattern, timeout=15):
        """The first match of pattern in the maillog, waiting for it (bounded)."""
        rx = re.compile(pattern)
        found = []
        wait_until(lambda: found.append(rx.search(self.log_text())) or found[-1],
                   'maillog line %r' % pattern, timeout=timeout)
        return found[-1]

    def stop(self, keep=False):
        """TERM to the master (it stops its children), then remove the directory unless
        keep (a restart with start())."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.out.close()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
