#!/usr/bin/env python3
"""bench/compare_auth.py: the auth_http endpoint of the nginx mail proxy in bench/compare.sh.

nginx's mail proxy decides nothing itself: for every AUTH it asks an HTTP server, which
answers with headers (https://nginx.org/en/docs/mail/ngx_mail_auth_http_module.html). This
one compares the user and password nginx forwards with the single pair it was given and
sends every login to the same upstream, `sluice sink` (Auth-Server / Auth-Port). A wrong
pair gets "Auth-Status: Invalid login" and "Auth-Wait: 1", as nginx expects.

usage: compare_auth.py --listen PORT --upstream-port PORT --user U --password P

It prints "auth listening on 127.0.0.1:PORT" on stderr once it accepts connections (the
script waits for that line) and runs until TERM. Only 127.0.0.1.
"""
import argparse
import http.server
import signal
import sys
import urllib.parse


class Server(http.server.ThreadingHTTPServer):
    # http.server's default backlog of 5 drops SYNs when 12 clients log in at once, and
    # each dropped SYN costs nginx a 1 s retransmit: that measured the endpoint, not nginx.
    request_queue_size = 256
    daemon_threads = True


def handler(args):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.0'

        def do_GET(self):
            # nginx sends the credentials URL-escaped (Auth-User, Auth-Pass headers)
            user = urllib.parse.unquote(self.headers.get('Auth-User', ''))
            password = urllib.parse.unquote(self.headers.get('Auth-Pass', ''))
            self.send_response(200)
            if user == args.user and password == args.password:
                self.send_header('Auth-Status', 'OK')
                self.send_header('Auth-Server', '127.0.0.1')
                self.send_header('Auth-Port', str(args.upstream_port))
            else:
                self.send_header('Auth-Status', 'Invalid login')
                self.send_header('Auth-Wait', '1')
            self.end_headers()

        def log_message(self, fmt, *a):  # one line per login would be the bulk of the run
            pass

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--listen', type=int, required=True)
    p.add_argument('--upstream-port', type=int, required=True)
    p.add_argument('--user', required=True)
    p.add_argument('--password', required=True)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = Server(('127.0.0.1', args.listen), handler(args))
    print(f'auth listening on 127.0.0.1:{args.listen}', file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == '__main__':
    main()
