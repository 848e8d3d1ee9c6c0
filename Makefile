# Thin wrapper around CMake; see README.md. `make run` and `make test` (`./dev.sh run` and
# `./dev.sh test` where make is not installed yet) are the two commands a fresh Debian 12
# machine needs: `deps` installs everything else, on top of a minbase debootstrap root.
BUILD     ?= build
ASAN      ?= build-asan
TSAN      ?= build-tsan
FUZZ      ?= build-fuzz
FUZZ_SECS ?= 30
PYTHON    ?= /usr/bin/python3
JOBS      ?= $(shell nproc)
# ON: a compiler warning fails the build. `make test` (CI) turns it on for every build;
# unset, each build directory keeps what it had (no rebuild of everything after a test).
WERROR    ?=
WERROR_FLAG = $(if $(WERROR),-DSLUICE_WERROR=$(WERROR))

# Everything `run` and `test` use that a minimal Debian 12 (debootstrap --variant=minbase)
# lacks; .ci/run proves the list on such a root. ca-certificates: npm ci (https). systemd,
# groff-base, man-db: test_systemd.py (systemd-analyze verify of the unit runs `man` on its
# Documentation= pages; groff on the man pages);
# haproxy: test_proxy.py (a real HAProxy sends the PROXY header); libhiredis-dev,
# redis-server: the Redis zone backend and its tests; prometheus: test_metrics.py scrapes
# with a real one; debhelper: the Debian package (debian/, test_debian.py); python3-dkim:
# test_dkim.py verifies our DKIM signatures with an independent implementation (dkimpy);
# python3-aiosmtpd: test_dsn.py's independent upstream, with and without DSN, and
# test_upstream_oauth2.py's upstream that checks XOAUTH2 bearers.
DEB_PACKAGES = build-essential cmake pkg-config clang libclang-rt-14-dev \
	libev-dev libluajit-5.1-dev luajit libssl-dev openssl libcrypt-dev libargon2-dev libldap-dev \
	slapd ldap-utils nodejs ca-certificates \
	lua-cjson lua-busted swaks msmtp curl python3 python3-pytest python3-cryptography python3-aiosmtpd \
	systemd groff-base man-db haproxy libhiredis-dev redis-server prometheus debhelper python3-dkim \
	$(POSTFIX_RUNTIME)
# test_xclient.py's upstream is Debian's postfix, fetched (`apt-get download`, never installed:
# no service, no port 25, no /etc/postfix) into POSTFIX_DEBS and unpacked per test
# (tests/integration/postfix_server.py); these are the libraries it links against, and
# Cyrus SASL's plugins for its smtpd_sasl_auth_enable.
POSTFIX_RUNTIME = libdb5.3 libicu72 libnsl2 libsasl2-2 libsasl2-modules libsasl2-modules-db \
	netbase
POSTFIX_DEBS = tests/integration/.debs

.PHONY: all deps service-user rundir build asan tsan fuzz certs run test unit unit-asan unit-tsan \
	fuzz-run lua integration integration-tsan layers bench clean install

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' \
		|| echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing" $$missing; \
		if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@# Debian's own nodejs comes without npm (NodeSource's includes it): test_idp.py needs it.
	@command -v npm >/dev/null || { if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	@# The sandbox user _apt cannot write into a private directory: root downloads itself.
	@ls $(POSTFIX_DEBS)/postfix_*.deb >/dev/null 2>&1 || { mkdir -p $(POSTFIX_DEBS) && \
		cd $(POSTFIX_DEBS) && { [ "$$(id -u)" -eq 0 ] && \
		apt-get -q -o APT::Sandbox::User=root download postfix || apt-get -q download postfix; }; }
	@echo "deps: every package run and test need is installed"

# The dedicated service user sluice runs as when started as root (conf/sluice.lua's
# `user`): a system account with no home and no shell, as a package would make it.
service-user:
	@getent passwd sluice >/dev/null || { if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
		$$SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin sluice && echo "made the system user sluice"; }

# run/audit/: the default configuration's audit log directory (conf/sluice.lua), the
# service user's when made as root (a reload that turns audit_log on opens the file as
# that user). Made with every build, so `sluice check -c conf/sluice.lua` passes after
# any of the README's commands.
rundir:
	@mkdir -p run/audit
	@if [ "$$(id -u)" -eq 0 ] && getent passwd sluice >/dev/null; then \
		chown sluice:sluice run/audit && chmod 0750 run/audit; fi

build: rundir
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(WERROR_FLAG) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	cmake --build $(BUILD) -j $(JOBS) --target sluice-loadgen

asan:
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON $(WERROR_FLAG) >/dev/null
	cmake --build $(ASAN) -j $(JOBS)

tsan:
	cmake -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_TSAN=ON $(WERROR_FLAG) >/dev/null
	cmake --build $(TSAN) -j $(JOBS)

# A race fails the run: halt_on_error makes the process exit 66 at the first report.
# tests/tsan.supp names only uninstrumented libraries, each entry with its reason.
TSAN_OPTIONS_ALL = halt_on_error=1 second_deadlock_stack=1 \
	suppressions=$(CURDIR)/tests/tsan.supp

fuzz:
	CC=clang cmake -S . -B $(FUZZ) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON $(WERROR_FLAG) >/dev/null
	cmake --build $(FUZZ) -j $(JOBS)

certs:
	sh certs/gen-dev-certs.sh

# Sets up and runs sluice with conf/sluice.lua, relaying to a local `sluice sink`
# that writes every message to run/maildir/new/. Only the sink this recipe started (its
# own $!, not whatever run/sink.pid says) is stopped on the way out, so a second
# `make run` beside a first one says so and exits 1 leaving the first alone; Ctrl-C
# stops both quietly. The sink must be listening before sluice starts.
run: deps service-user build certs
	@if [ -s run/sink.pid ] && grep -qa sluice "/proc/$$(cat run/sink.pid)/cmdline" 2>/dev/null; then \
		echo "make run: already running (sink pid $$(cat run/sink.pid) on 127.0.0.1:2525):" \
			"stop that one first" >&2; exit 1; fi; \
	$(BUILD)/sluice sink --listen 127.0.0.1:2525 --maildir run/maildir \
		--log run/sink.log --pid-file run/sink.pid 2>run/sink.err & sink=$$!; \
	trap 'kill $$sink 2>/dev/null' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	n=100; until grep -q 'sink listening on' run/sink.err; do \
		if ! kill -0 $$sink 2>/dev/null || [ $$n -eq 0 ]; then \
			echo "make run: the sink did not start on 127.0.0.1:2525:" >&2; \
			cat run/sink.err >&2; exit 1; fi; \
		n=$$((n - 1)); sleep 0.1; done; \
	echo "sink: 127.0.0.1:2525 -> run/maildir/new/"; \
	$(BUILD)/sluice run -c conf/sluice.lua

unit: build
	cd $(BUILD) && ctest --output-on-failure

unit-asan: asan
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ctest --output-on-failure

unit-tsan: tsan
	cd $(TSAN) && TSAN_OPTIONS="$(TSAN_OPTIONS_ALL)" ctest --output-on-failure

# Each target FUZZ_SECS seconds (and no input over 10 s) from its seeds in
# tests/fuzz/corpus/<name without fuzz_>/, as many at once as there are CPUs
# (tests/fuzz/run_all.sh); what they find on the way is dropped. Logs: $(FUZZ)/fuzz_<name>.log.
fuzz-run: fuzz
	tests/fuzz/run_all.sh $(FUZZ) $(FUZZ_SECS)

# The include rules of core/ (tests/layers/check_layers.py): folders depend one way, no
# file-level cycles.
layers:
	$(PYTHON) tests/layers/check_layers.py

# busted specs for lua/ and policies/ under LuaJIT (.busted sets the interpreter and paths)
lua:
	busted

integration: build asan certs
	cd tests/integration/idp && npm ci --no-audit --no-fund   # test_idp.py's oidc-provider
	SLUICE_BIN=$(CURDIR)/$(ASAN)/sluice $(PYTHON) -m pytest -q tests/integration

# The integration tests that run threads against each other (marker `threads`, see
# tests/integration/conftest.py) under ThreadSanitizer: about a minute on 2 cores.
integration-tsan: tsan certs
	SLUICE_BIN=$(CURDIR)/$(TSAN)/sluice TSAN_OPTIONS="$(TSAN_OPTIONS_ALL)" \
		$(PYTHON) -m pytest -q -m threads tests/integration

# Every test: the include rules, C unit tests (plain, ASan+UBSan, TSan), fuzzers (bounded), busted,
# integration (ASan+UBSan; the threaded ones again under TSan).
# -k: a failing stage does not hide the stages after it; make still exits non-zero.
# WERROR=ON: a compiler warning in any build (plain, ASan, TSan, fuzz) fails the run.
test: deps service-user
	$(MAKE) -k WERROR=ON layers unit unit-asan unit-tsan fuzz-run lua integration integration-tsan

# `make install [PREFIX=/usr/local] [DESTDIR=]`: the daemon, its Lua library and policies, an
# example configuration, the systemd unit, the logrotate file and the man pages, where
# docs/deployment.md says. The unit and the example get this PREFIX's and SYSCONFDIR's
# paths; the example never replaces a sluice.lua. SYSCONFDIR is /etc for PREFIX=/usr.
PREFIX       ?= /usr/local
SBINDIR      ?= $(PREFIX)/sbin
DATADIR      ?= $(PREFIX)/share
MANDIR       ?= $(DATADIR)/man
SYSCONFDIR   ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR      ?= $(PREFIX)/lib/systemd/system
LOGROTATEDIR ?= $(SYSCONFDIR)/logrotate.d
INSTALL_SED   = sed -e 's|/usr/sbin/sluice|$(SBINDIR)/sluice|g' \
	-e 's|/usr/share/sluice|$(DATADIR)/sluice|g' -e 's|/etc/sluice|$(SYSCONFDIR)/sluice|g'

install: build
	install -D -m 0755 $(BUILD)/sluice $(DESTDIR)$(SBINDIR)/sluice
	install -d $(DESTDIR)$(DATADIR)/sluice/lua/sluice $(DESTDIR)$(DATADIR)/sluice/policies/examples
	install -m 0644 lua/sluice/*.lua $(DESTDIR)$(DATADIR)/sluice/lua/sluice/
	install -m 0644 policies/*.lua $(DESTDIR)$(DATADIR)/sluice/policies/
	install -m 0644 policies/examples/*.lua $(DESTDIR)$(DATADIR)/sluice/policies/examples/
	install -d $(DESTDIR)$(SYSCONFDIR)/sluice $(DESTDIR)$(UNITDIR) $(DESTDIR)$(LOGROTATEDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	$(INSTALL_SED) dist/conf/sluice.lua >$(DESTDIR)$(SYSCONFDIR)/sluice/sluice.lua.example
	$(INSTALL_SED) dist/systemd/sluice.service >$(DESTDIR)$(UNITDIR)/sluice.service
	install -m 0644 dist/logrotate/sluice $(DESTDIR)$(LOGROTATEDIR)/sluice
	install -m 0644 dist/man/sluice.8 $(DESTDIR)$(MANDIR)/man8/sluice.8
	install -m 0644 dist/man/sluice.lua.5 $(DESTDIR)$(MANDIR)/man5/sluice.lua.5

bench: build certs
	bench/run.sh

clean:
	rm -rf $(BUILD) $(ASAN) $(TSAN) $(FUZZ) run
