#!/bin/bash
# .ci/package_smoke.sh [DEB]: install the Debian package for real, in a throwaway copy of
# the minimal Debian 12 root .ci/run uses, and purge it again (docs/deployment.md "Debian
# package", docs/ci.md). DEB is a built sluice_*.deb; without one, the package is built
# here first from a copy of this working tree (dpkg-buildpackage -b, as
# tests/integration/test_debian.py does), which needs `make deps` on this machine.
#
# In the root: `apt-get install --no-install-recommends ./sluice_*.deb` resolves Depends
# from Debian's archive (Depends alone must be enough to run; Recommends would also bring
# logrotate, and on a root without systemd-sysv cron and an MTA); then the system user
# exists, the unit is in place and not enabled, the maintainer scripts asked nothing to
# start, `sluice check -c /etc/sluice/sluice.lua` passes on the shipped configuration
# (ssl-cert's snakeoil pair and the postinst's ECDSA placeholder, through its links), and
# `apt-get purge` stops the service, then leaves nothing of the package but the system
# user (kept on purpose: debian/sluice.postrm says why).
#
# The root believes systemd runs (/run/systemd/system exists) so that the maintainer
# scripts take their systemd branches; its /usr/sbin/policy-rc.d records every action
# they ask deb-systemd-invoke for and refuses it (exit 101), so nothing runs for real.
#
# Needs root (chroot, mount). As in .ci/run, the root runs in new mount and PID
# namespaces, and on every exit the namespace is killed before the root is removed. The
# cached tarball is only read. Exit status 0 when every check passed.
set -euo pipefail

cache=${SLUICE_CI_CACHE:-/var/cache/sluice-ci}
tarball=$cache/bookworm-minbase.tar.gz
repo=$(cd "$(dirname "$0")/.." && pwd)
start=$SECONDS

if [ "$(id -u)" -ne 0 ]; then
    echo "package_smoke: must run as root (chroot, mount)" >&2
    exit 2
fi
if [ ! -s "$tarball" ]; then
    echo "package_smoke: no $tarball: run .ci/run once to make it" >&2
    exit 2
fi

work=
ns_pid=
cleanup() {
    local status=$? n p busy=
    set +e
    trap - EXIT
    trap "" INT TERM     # a second signal must not cut the clean-up short
    if [ -n "$ns_pid" ]; then
        kill -KILL "$ns_pid" 2>/dev/null     # --kill-child: the whole namespace goes
        wait "$ns_pid" 2>/dev/null
    fi
    if [ -n "$work" ] && [ -d "$work" ]; then
        for n in $(seq 100); do              # no process may still have its root there
            busy=$(for p in /proc/[0-9]*; do
                       case $(readlink "$p/root" 2>/dev/null) in
                       "$work"/*) echo "${p#/proc/}";;
                       esac
                   done)
            [ -z "$busy" ] && break
            sleep 0.1
        done
        if grep -q " $work/" /proc/self/mountinfo || [ -n "$busy" ]; then
            echo "package_smoke: mounts or processes left under $work, not removing it" >&2
        else
            rm -rf "$work"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'echo "package_smoke: interrupted"; exit 130' INT
trap 'echo "package_smoke: terminated"; exit 143' TERM

work=$(mktemp -d "${TMPDIR:-/var/tmp}/sluice-pkg.XXXXXX")

# --- the package ---------------------------------------------------------------------------
if [ $# -ge 1 ]; then
    deb=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
    mkdir -p "$work/build/sluice"
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do
            [ -e "$f" ] || [ -L "$f" ] || continue   # deleted, not yet committed
            cp --parents -a -- "$f" "$work/build/sluice/"
        done)
    echo "package_smoke: dpkg-buildpackage -b in $work/build/sluice"
    if ! (cd "$work/build/sluice" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
            dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1); then
        tail -40 "$work/build.log"
        exit 1
    fi
    deb=$(ls "$work"/build/sluice_*.deb)
fi
[ -f "$deb" ] || { echo "package_smoke: no package $deb" >&2; exit 2; }
echo "package_smoke: $(basename "$deb") ($((SECONDS - start))s)"

# --- the root: a copy of the cached one, with the host's way to the archive ---------------
root=$work/root
mkdir "$root"
tar -C "$root" -xzf "$tarball"
rm -f "$root/etc/apt/sources.list" "$root"/etc/apt/sources.list.d/*
if [ -f /etc/apt/sources.list ]; then
    cp /etc/apt/sources.list "$root/etc/apt/"
fi
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    if [ -f "$f" ]; then
        cp "$f" "$root/etc/apt/sources.list.d/"
    fi
done
cp -a /etc/apt/apt.conf.d/. "$root/etc/apt/apt.conf.d/"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf '#!/bin/sh\necho "$*" >>/var/log/policy-rc.d.calls\nexit 101\n' \
    >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/run/systemd/system"
cp "$deb" "$root/tmp/"
echo "package_smoke: root prepared in $root ($((SECONDS - start))s)"

# --- install, check, purge: one shell in the root ------------------------------------------
checks=$(cat <<'EOF'
set -eu
fail() { echo "package_smoke: FAIL: $*" >&2; exit 1; }
owner_mode() { # PATH OWNER:GROUP MODE
    [ "$(stat -c '%U:%G %a' "$1")" = "$2 $3" ] || fail "$1: $(stat -c '%U:%G %a' "$1")"
}
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends /tmp/sluice_*.deb >/tmp/install.log 2>&1 ||
    { cat /tmp/install.log; exit 1; }
echo "package_smoke: installed: $(dpkg-query -W -f='${Package} ${Version} ${Status}' sluice)"

getent passwd sluice | grep -q '^sluice:x:[0-9]*:[0-9]*::/nonexistent:/usr/sbin/nologin$' ||
    fail "no system user sluice: $(getent passwd sluice || true)"
[ "$(id -u sluice)" -lt 1000 ] || fail "sluice is not a system account"
getent group sluice >/dev/null || fail "no group sluice"
[ -f /lib/systemd/system/sluice.service ] || fail "no /lib/systemd/system/sluice.service"
enabled=$(find /etc/systemd -name 'sluice*')
[ -z "$enabled" ] || fail "the unit is enabled: $enabled"
calls=$(cat /var/log/policy-rc.d.calls 2>/dev/null | tr '\n' ';')
echo "package_smoke: policy-rc.d asked by the install: ${calls:-nothing}"
if grep -s sluice /var/log/policy-rc.d.calls; then fail "the install asked to start sluice"; fi
owner_mode /etc/sluice/users root:sluice 750
owner_mode /etc/sluice/tls root:sluice 750
owner_mode /var/log/sluice root:root 750
[ "$(readlink /etc/sluice/tls/privkey.pem)" = /etc/ssl/private/ssl-cert-snakeoil.key ] ||
    fail "no link to the snakeoil key"
[ "$(readlink /etc/sluice/tls/ecdsa-privkey.pem)" = /etc/sluice/tls/snakeoil-ecdsa.key ] ||
    fail "no link to the ECDSA placeholder key"
dpkg-query -W -f='${Conffiles}\n' sluice | grep -q '^ /etc/sluice/sluice.lua ' ||
    fail "sluice.lua is no conffile"
/usr/sbin/sluice --version
/usr/sbin/sluice check -c /etc/sluice/sluice.lua || fail "sluice check of the shipped configuration"
echo "package_smoke: user, unit (not enabled, not started), directories, conffile, check: ok"

apt-get purge -y -qq sluice >/tmp/purge.log 2>&1 || { cat /tmp/purge.log; exit 1; }
echo "package_smoke: policy-rc.d asked in all: $(tr '\n' ';' </var/log/policy-rc.d.calls)"
grep -q '^sluice.service stop$' /var/log/policy-rc.d.calls || fail "removal did not stop sluice"
status=$(dpkg-query -W -f='${db:Status-Status}' sluice 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = not-installed ] || fail "dpkg still has sluice: $status"
for p in /etc/sluice /var/log/sluice /usr/share/sluice /usr/sbin/sluice \
        /lib/systemd/system/sluice.service /etc/logrotate.d/sluice \
        /var/lib/systemd/deb-systemd-helper-enabled/sluice.service.dsh-also; do
    if [ -e "$p" ] || [ -L "$p" ]; then fail "left after purge: $p"; fi
done
getent passwd sluice >/dev/null || fail "the system user went (it stays on purpose)"
echo "package_smoke: purge: the service stopped, nothing left but the system user"
EOF
)

unshare --mount --pid --kill-child=SIGKILL --propagation private -- /bin/sh -ec '
    r=$1
    mount -t proc proc "$r/proc"
    mount -t sysfs sysfs "$r/sys"
    mount --bind /dev "$r/dev"
    mount --bind /dev/pts "$r/dev/pts"
    exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 chroot "$r" /bin/bash -c "$2"
' sh "$root" "$checks" </dev/null &
ns_pid=$!
status=0
wait "$ns_pid" || status=$?
ns_pid=
echo "package_smoke: exit $status ($((SECONDS - start))s)"
exit "$status"
