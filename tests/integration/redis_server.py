"""A real redis-server (Debian's redis-server 7.0) for the tests of the Redis zone backend:
on loopback, a free port, no persistence, its own directory; stopped by PID.

    r = RedisServer(tmp_path)      # started, answering PING
    r.cli('GET', 'sluice:limits:x') # redis-cli's answer, as text
    r.pause() / r.resume()          # SIGSTOP / SIGCONT: a Redis that does not answer
    r.stop(); r.start()             # down, then back on the same port
"""
import os
import pathlib
import signal
import subprocess

from conftest import free_port, wait_until

REDIS_SERVER = '/usr/bin/redis-server'
REDIS_CLI = '/usr/bin/redis-cli'


class RedisServer:
    def __init__(self, tmp, port=None):
        self.dir = pathlib.Path(tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.dir / 'redis.log'
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, '--port', str(self.port), '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', str(self.dir),
             '--logfile', str(self.log), '--daemonize', 'no', '--protected-mode', 'yes'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.ping(), 'redis-server answers PING', timeout=15)

    def ping(self):
        if self.proc.poll() is not None:
            raise AssertionError('redis-server exited: %s' % self.log.read_text()[-2000:])
        r = subprocess.run([REDIS_CLI, '-p', str(self.port), 'PING'], capture_output=True,
                           text=True, timeout=5)
        return r.stdout.strip() == 'PONG'

    def cli(self, *args):
        r = subprocess.run([REDIS_CLI, '-p', str(self.port), '--no-raw'] + list(args),
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def cli_raw(self, *args):
        r = subprocess.run([REDIS_CLI, '-p', str(self.port), '--raw'] + list(args),
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def keys(self, pattern='*'):
        return sorted(k for k in self.cli_raw('KEYS', pattern).splitlines() if k)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def conf(self, extra=''):
        """The sluice configuration's redis table for this server."""
        return "redis = { address = '127.0.0.1', port = %d%s }," % (self.port, extra)

