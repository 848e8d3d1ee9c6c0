"""The Debian package (debian/, docs/deployment.md "Debian package"): dpkg-buildpackage
builds it from a copy of this working tree, it ships what the docs say (binary, unit,
man pages, /etc/sluice/sluice.lua as a conffile, logrotate file, Lua library, policies),
the packaged unit passes `systemd-analyze verify`, the packaged binary checks the packaged
configuration against the packaged library once the source tree is gone, and the
maintainer scripts make the user and directories, enable and start nothing, and purge
what they made.

Nothing here touches the host outside temporary directories: the maintainer scripts run
with DPKG_ROOT set to an extracted copy of the package, with the real deb-systemd-helper
(which honours DPKG_ROOT) and stand-ins for the commands that would change the host's
accounts or ownership (adduser, chown) or its services (deb-systemd-invoke, systemctl).
Installing for real, in a throwaway Debian 12 root, is .ci/package_smoke.sh.

Run: /usr/bin/python3 -m pytest tests/integration/test_debian.py (about a minute: the
build is most of it)
"""
import fnmatch
import os
import shutil
import stat
import subprocess

import pytest

from conftest import ROOT

SNAKEOIL_CERT = '/etc/ssl/certs/ssl-cert-snakeoil.pem'
SNAKEOIL_KEY = '/etc/ssl/private/ssl-cert-snakeoil.key'
ECDSA_CERT = '/etc/sluice/tls/snakeoil-ecdsa.pem'  # the postinst's own placeholder
ECDSA_KEY = '/etc/sluice/tls/snakeoil-ecdsa.key'
# What the stand-ins of the maintainer-script test record, one line per call.
STUBBED = ('adduser', 'chown', 'deb-systemd-invoke', 'systemctl')


class Package:
    """The built sluice_VERSION_amd64.deb."""

    def __init__(self, deb, version):
        self.deb = deb
        self.version = version

    def field(self, name):
        return subprocess.run(['dpkg-deb', '-f', str(self.deb), name], capture_output=True,
                              text=True, check=True).stdout.strip()

    def contents(self):
        """{path without the leading '.': (mode string, owner)} of every member."""
        out = subprocess.run(['dpkg-deb', '--contents', str(self.deb)], capture_output=True,
                             text=True, check=True).stdout
        members = {}
        for line in out.splitlines():
            mode, owner, _size, _date, _time, path = line.split(None, 5)
            members[path[1:].split(' -> ')[0].rstrip('/') or '/'] = (mode, owner)
        return members

    def extract(self, where):
        """The files, under where/root; the control files, under where/control."""
        subprocess.run(['dpkg-deb', '-x', str(self.deb), str(where / 'root')], check=True)
        subprocess.run(['dpkg-deb', '-e', str(self.deb), str(where / 'control')], check=True)
        return where / 'root', where / 'control'


# What `make test`, `make run` and a package build leave in a tree that is no source (the
# .gitignore's entries): copied_files() skips them where it cannot ask git.
GENERATED_DIRS = ('.git', 'build', 'build-*', 'obj-*', 'run', 'node_modules', '__pycache__',
                  '.pytest_cache', '*-run', 'debian/.debhelper', 'debian/sluice')
GENERATED_FILES = ('.git', '*.key', '*.pem', 'certs/*.crt', 'certs/*.srl', 'certs/*.jwks',
                   'crash-*', 'leak-*', 'timeout-*', 'debian/files',
                   'debian/debhelper-build-stamp', 'debian/*.substvars', 'debian/*.debhelper')


def generated(rel, patterns):
    return any(fnmatch.fnmatch(rel if '/' in g else os.path.basename(rel), g)
               for g in patterns)


def copied_files():
    """The working tree's files as a commit of it would hold them: tracked, and untracked
    but not ignored (uncommitted work is what is tested). Without git (not in the
    Makefile's DEB_PACKAGES: CI's root has it only as a dependency of another package),
    every file but what builds and tests make."""
    if shutil.which('git') and (ROOT / '.git').exists():
        listed = subprocess.run(['git', '-C', str(ROOT), 'ls-files', '-z', '--cached',
                                 '--others', '--exclude-standard'],
                                capture_output=True, check=True).stdout
        return sorted(set(listed.decode().split('\0')) - {''})
    names = []
    for dirpath, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        dirs[:] = [d for d in dirs
                   if not generated(os.path.normpath(os.path.join(rel, d)), GENERATED_DIRS)]
        names += [n for n in (os.path.normpath(os.path.join(rel, f)) for f in files)
                  if not generated(n, GENERATED_FILES)]
    return sorted(names)


def copy_tree(dest):
    for name in copied_files():
        src = ROOT / name
        if not os.path.lexists(src):       # deleted in the work tree, not yet committed
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name, follow_symlinks=False)


@pytest.fixture(scope='module')
def package(tmp_path_factory):
    """dpkg-buildpackage -b of a copy of the tree; the copy is removed afterwards, so what
    the tests below run cannot reach into a source tree."""
    out = tmp_path_factory.mktemp('debian')
    src = out / 'sluice'
    copy_tree(src)
    version = subprocess.run(['dpkg-parsechangelog', '-S', 'Version'], cwd=src,
                             capture_output=True, text=True, check=True).stdout.strip()
    # as a user builds it: nothing of an outer `make test` (its WERROR=ON, its job server)
    env = {k: v for k, v in os.environ.items()
           if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES', 'WERROR')}
    env['DEB_BUILD_OPTIONS'] = 'nocheck parallel=%d' % (os.cpu_count() or 1)
    done = subprocess.run(['dpkg-buildpackage', '-b', '-us', '-uc'], cwd=src, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    shutil.rmtree(src)
    debs = sorted(p.name for p in out.glob('sluice_*.deb'))
    assert debs == ['sluice_%s_amd64.deb' % version], sorted(p.name for p in out.iterdir())
    return Package(out / debs[0], version)


def test_dpkg_buildpackage_builds_the_changelog_version_for_amd64(package):
    assert package.field('Package') == 'sluice'
    assert package.field('Version') == package.version
    assert package.field('Architecture') == 'amd64'


def test_the_package_ships_the_binary_unit_config_logrotate_man_pages_library_policies(package):
    members = package.contents()
    files = {path for path, (mode, _) in members.items() if mode.startswith('-')}
    lua = {'/usr/share/sluice/lua/sluice/' + p.name
           for p in (ROOT / 'lua' / 'sluice').glob('*.lua')}
    policies = {'/usr/share/sluice/policies/' + str(p.relative_to(ROOT / 'policies'))
                for p in (ROOT / 'policies').rglob('*.lua')}
    assert files == {
        '/usr/sbin/sluice',
        '/lib/systemd/system/sluice.service',
        '/etc/sluice/sluice.lua',
        '/etc/logrotate.d/sluice',
        '/usr/share/man/man8/sluice.8.gz',
        '/usr/share/man/man5/sluice.lua.5.gz',
        '/usr/share/doc/sluice/changelog.gz',
        '/usr/share/doc/sluice/copyright',
    } | lua | policies
    assert len(lua) > 10 and len(policies) >= 6
    assert members['/usr/sbin/sluice'] == ('-rwxr-xr-x', 'root/root')
    assert all(owner == 'root/root' for _, owner in members.values())


def test_the_configuration_and_the_logrotate_file_are_conffiles(package, tmp_path):
    _, control = package.extract(tmp_path)
    assert (control / 'conffiles').read_text().split() == [
        '/etc/logrotate.d/sluice', '/etc/sluice/sluice.lua']


def test_it_depends_on_its_libraries_lua_cjson_adduser_ssl_cert_and_openssl(package):
    depends = [d.strip().split()[0] for d in package.field('Depends').split(',')]
    for name in ('libluajit-5.1-2', 'libev4', 'libssl3', 'libldap-2.5-0', 'libargon2-1',
                 'libcrypt1', 'lua-cjson', 'adduser', 'ssl-cert', 'openssl'):
        assert name in depends, (name, depends)


def test_systemd_analyze_verifies_the_packaged_unit(package, tmp_path):
    root, _ = package.extract(tmp_path)
    unit = (root / 'lib' / 'systemd' / 'system' / 'sluice.service').read_text()
    assert 'ExecStartPre=/usr/sbin/sluice check -c /etc/sluice/sluice.lua\n' in unit
    assert 'ExecStart=/usr/sbin/sluice run -c /etc/sluice/sluice.lua\n' in unit
    # verify wants ExecStart='s program to exist: the packaged one, where it was extracted;
    # Documentation='s man pages are the packaged ones (MANPATH)
    relocated = tmp_path / 'sluice.service'
    relocated.write_text(unit.replace('/usr/sbin/sluice', str(root / 'usr' / 'sbin' / 'sluice')))
    env = dict(os.environ, MANPATH=str(root / 'usr' / 'share' / 'man'))
    done = subprocess.run(['systemd-analyze', 'verify', str(relocated)], capture_output=True,
                          text=True, env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, '', '')
    (root / 'usr' / 'share' / 'man' / 'man5' / 'sluice.lua.5.gz').unlink()
    done = subprocess.run(['systemd-analyze', 'verify', str(relocated)], capture_output=True,
                          text=True, env=env)
    assert 'sluice.lua(5)' in done.stderr  # the check above can fail


def test_the_packaged_binary_checks_the_packaged_configuration_on_its_own_library(
        package, tmp_path, certs):
    root, _ = package.extract(tmp_path)
    sluice = str(root / 'usr' / 'sbin' / 'sluice')
    version = subprocess.run([sluice, '--version'], capture_output=True, text=True)
    assert (version.returncode, version.stdout.strip()) == (0, 'sluice ' + package.version)

    # only what lives outside the package moves: the site's certificates and users, and
    # /var/log; the Lua library and the policies are the packaged ones, where extracted
    users = tmp_path / 'users'
    users.mkdir()
    conf = (root / 'etc' / 'sluice' / 'sluice.lua').read_text()
    for old, new in (('/usr/share/sluice/', str(root / 'usr' / 'share' / 'sluice') + '/'),
                     ('/etc/sluice/users', str(users)),
                     ('/etc/sluice/tls/ecdsa-fullchain.pem', str(certs / 'dev-ecdsa.crt')),
                     ('/etc/sluice/tls/ecdsa-privkey.pem', str(certs / 'dev-ecdsa.key')),
                     ('/etc/sluice/tls/fullchain.pem', str(certs / 'dev-rsa.crt')),
                     ('/etc/sluice/tls/privkey.pem', str(certs / 'dev-rsa.key')),
                     ('/var/log/sluice/', str(tmp_path) + '/')):
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp_path / 'sluice.lua').write_text(conf)
    done = subprocess.run([sluice, 'check', '-c', str(tmp_path / 'sluice.lua')],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'ok (2 listeners, 1 upstream sets, 0 users)' in done.stdout

    (root / 'usr' / 'share' / 'sluice' / 'lua' / 'sluice' / 'init.lua').unlink()
    done = subprocess.run([sluice, 'check', '-c', str(tmp_path / 'sluice.lua')],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78 and 'lua_dir' in done.stdout + done.stderr


# ---- the maintainer scripts, under DPKG_ROOT ------------------------------------------

class Scripts:
    """The package's maintainer scripts, run as dpkg would run them for an installation
    into `root` (DPKG_ROOT): the package's files are there already, and so is a snakeoil
    pair, as ssl-cert's postinst would have made it."""

    def __init__(self, package, where):
        where.mkdir(parents=True, exist_ok=True)
        self.package = package
        self.root, self.control = package.extract(where)
        for path in (SNAKEOIL_CERT, SNAKEOIL_KEY):
            (self.root / path[1:]).parent.mkdir(parents=True, exist_ok=True)
            (self.root / path[1:]).write_text('snakeoil\n')
        self.stubs = where / 'stubs'
        self.stubs.mkdir()
        for name in STUBBED:
            (self.stubs / name).write_text(
                '#!/bin/sh\necho "$*" >>"%s/%s.calls"\n' % (self.stubs, name))
            (self.stubs / name).chmod(0o755)

    def run(self, script, *args, text=None):
        """Run maintainer script `script` (its text, or `text` in its place)."""
        path = self.control / script
        if text is not None:
            path = self.stubs / ('replaced-' + script)
            path.write_text(text)
        env = dict(os.environ, DPKG_ROOT=str(self.root), DPKG_MAINTSCRIPT_PACKAGE='sluice',
                   DPKG_MAINTSCRIPT_NAME=script,
                   PATH='%s:%s' % (self.stubs, os.environ['PATH']))
        done = subprocess.run(['sh', '-e', str(path)] + list(args), capture_output=True,
                              text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def calls(self, name):
        f = self.stubs / (name + '.calls')
        return f.read_text().splitlines() if f.exists() else []

    def at(self, path):
        return self.root / path.lstrip('/')

    def enabled(self):
        return os.path.lexists(self.at('/etc/systemd/system/multi-user.target.wants/'
                                       'sluice.service'))


@pytest.fixture
def scripts(package, tmp_path):
    return Scripts(package, tmp_path)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_postinst_makes_the_user_and_directories_and_links_the_snakeoil_pair(scripts):
    scripts.run('postinst', 'configure', '')

    [adduser] = scripts.calls('adduser')
    assert adduser.split()[0:2] == ['--system', '--group'] and adduser.endswith(' sluice')
    assert '--no-create-home' in adduser and '--shell /usr/sbin/nologin' in adduser
    for path, want, owner in (('/etc/sluice/users', 0o750, 'root:sluice'),
                              ('/etc/sluice/tls', 0o750, 'root:sluice'),
                              ('/var/log/sluice', 0o750, 'root:root')):
        assert mode(scripts.at(path)) == want, path
        assert '%s %s' % (owner, scripts.at(path)) in scripts.calls('chown'), path
    assert os.readlink(scripts.at('/etc/sluice/tls/fullchain.pem')) == SNAKEOIL_CERT
    assert os.readlink(scripts.at('/etc/sluice/tls/privkey.pem')) == SNAKEOIL_KEY
    # the ECDSA pair sluice.lua lists first: a self-signed P-256 placeholder of its own
    assert os.readlink(scripts.at('/etc/sluice/tls/ecdsa-fullchain.pem')) == ECDSA_CERT
    assert os.readlink(scripts.at('/etc/sluice/tls/ecdsa-privkey.pem')) == ECDSA_KEY
    assert mode(scripts.at(ECDSA_KEY)) == 0o600 and mode(scripts.at(ECDSA_CERT)) == 0o644
    text = subprocess.run(['openssl', 'x509', '-noout', '-text', '-in',
                           str(scripts.at(ECDSA_CERT))], capture_output=True, text=True,
                          check=True).stdout
    assert 'ASN1 OID: prime256v1' in text and 'ecdsa-with-SHA256' in text
    pub = [subprocess.run(['openssl'] + args, capture_output=True, text=True,
                          check=True).stdout
           for args in (['x509', '-noout', '-pubkey', '-in', str(scripts.at(ECDSA_CERT))],
                        ['pkey', '-pubout', '-in', str(scripts.at(ECDSA_KEY))])]
    assert pub[0] == pub[1]  # the key is the certificate's


def test_the_postinst_neither_enables_nor_starts_the_service(scripts, package, tmp_path):
    scripts.run('postinst', 'configure', '')
    assert not scripts.enabled()
    assert scripts.calls('deb-systemd-invoke') == [] and scripts.calls('systemctl') == []
    # deb-systemd-helper did run (it records the unit in its state directory) ...
    assert scripts.at('/var/lib/systemd/deb-systemd-helper-enabled/'
                      'sluice.service.dsh-also').exists()
    # ... and the same harness sees a postinst that does enable (the check can fail):
    # debhelper's snippet for a unit without --no-enable, on a first installation
    other = Scripts(package, tmp_path / 'enabling')
    snippet = open('/usr/share/debhelper/autoscripts/postinst-systemd-enable').read()
    other.run('postinst', 'configure', '', text=snippet.replace('#UNITFILE#', "'sluice.service'"))
    assert other.enabled()


def test_an_upgrade_only_try_restarts_the_service(scripts):
    # the restart itself runs only under a live systemd, never with DPKG_ROOT: what is
    # checked here is that the postinst asks for nothing but try-restart (which starts
    # nothing that is not running) and only on an upgrade ("$2" is the old version)
    text = (scripts.control / 'postinst').read_text()
    invokes = [line.strip() for line in text.splitlines() if 'deb-systemd-invoke' in line]
    assert invokes == ["deb-systemd-invoke try-restart 'sluice.service' >/dev/null || true"]
    before = text[:text.index(invokes[0])]
    assert before.rstrip().endswith('if [ -n "$2" ]; then')
    assert '/run/systemd/system' in before
    assert 'deb-systemd-invoke stop sluice.service' in (scripts.control / 'prerm').read_text()


def test_a_second_configure_keeps_what_the_operator_changed(scripts):
    scripts.run('postinst', 'configure', '')
    os.chmod(scripts.at('/etc/sluice/users'), 0o700)
    os.unlink(scripts.at('/etc/sluice/tls/fullchain.pem'))
    os.unlink(scripts.at('/etc/sluice/tls/privkey.pem'))
    scripts.at('/etc/sluice/tls/fullchain.pem').write_text('the site certificate\n')
    placeholder = scripts.at(ECDSA_CERT).read_text()
    os.unlink(scripts.at('/etc/sluice/tls/ecdsa-privkey.pem'))
    scripts.run('postinst', 'configure', '0.1.0')
    assert mode(scripts.at('/etc/sluice/users')) == 0o700
    assert scripts.at('/etc/sluice/tls/fullchain.pem').read_text() == 'the site certificate\n'
    assert not os.path.lexists(scripts.at('/etc/sluice/tls/privkey.pem'))
    assert not os.path.lexists(scripts.at('/etc/sluice/tls/ecdsa-privkey.pem'))
    assert scripts.at(ECDSA_CERT).read_text() == placeholder  # not made again


def remove_package_files(scripts, conffiles):
    """What dpkg does before postrm remove (conffiles=False: all files but the conffiles)
    and before postrm purge (conffiles=True: those too): then each of the package's
    directories that is left empty goes."""
    keep = set((scripts.control / 'conffiles').read_text().split())
    members = scripts.package.contents()
    for path, (kind, _) in members.items():
        if not kind.startswith('d') and (path in keep) == conffiles:
            os.unlink(scripts.at(path))
    for path in sorted((p for p, (kind, _) in members.items() if kind.startswith('d')),
                       key=len, reverse=True):
        if path != '/' and scripts.at(path).is_dir() and not os.listdir(scripts.at(path)):
            os.rmdir(scripts.at(path))


def test_purge_removes_what_the_postinst_made_and_keeps_the_operators_files(scripts):
    scripts.run('postinst', 'configure', '')
    scripts.at('/var/log/sluice/audit.log').write_text('{}\n')
    scripts.run('prerm', 'remove')
    remove_package_files(scripts, conffiles=False)
    scripts.run('postrm', 'remove')
    assert not scripts.at('/usr/sbin/sluice').exists()
    for path in ('/etc/sluice/sluice.lua', '/etc/sluice/users', '/etc/sluice/tls/privkey.pem',
                 '/var/log/sluice/audit.log'):
        assert os.path.lexists(scripts.at(path)), path  # remove keeps configuration and logs
    remove_package_files(scripts, conffiles=True)
    scripts.run('postrm', 'purge')
    for path in ('/etc/sluice', '/var/log/sluice',
                 '/var/lib/systemd/deb-systemd-helper-enabled/sluice.service.dsh-also'):
        assert not os.path.lexists(scripts.at(path)), path
    assert scripts.at(SNAKEOIL_CERT).exists()  # ssl-cert's, not ours
    for path in (ECDSA_CERT, ECDSA_KEY):  # ours
        assert not os.path.lexists(scripts.at(path)), path

    # a users file and a certificate the operator put there stay, with their directories
    scripts.run('postinst', 'configure', '')
    scripts.at('/etc/sluice/users/example.org.txt').write_text('ann:$y$...\n')
    os.unlink(scripts.at('/etc/sluice/tls/privkey.pem'))
    scripts.at('/etc/sluice/tls/privkey.pem').write_text('the site key\n')
    os.unlink(scripts.at('/etc/sluice/tls/ecdsa-fullchain.pem'))
    scripts.at('/etc/sluice/tls/ecdsa-fullchain.pem').write_text('the site ECDSA chain\n')
    scripts.run('postrm', 'purge')
    assert scripts.at('/etc/sluice/users/example.org.txt').exists()
    assert scripts.at('/etc/sluice/tls/privkey.pem').exists()
    assert scripts.at('/etc/sluice/tls/ecdsa-fullchain.pem').exists()
    assert not os.path.lexists(scripts.at('/etc/sluice/tls/ecdsa-privkey.pem'))  # ours
    assert not os.path.lexists(scripts.at('/etc/sluice/tls/fullchain.pem'))  # ours: gone
    assert not os.path.lexists(scripts.at('/var/log/sluice'))
