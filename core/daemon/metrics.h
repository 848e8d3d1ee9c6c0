/* core/daemon/metrics.h: the Prometheus metrics listener (docs/metrics.md). A TCP socket,
 * loopback by default, served by one thread of its own: a client sends one HTTP/1.x
 * request, gets one response, and the server closes. GET /metrics answers 200 with the
 * text exposition format 0.0.4; any other path 404, any other method 405. Only clients
 * inside the configured allow-list are answered; others are closed on, with a log line.
 * With metrics.tls the listener speaks HTTPS only (the allow-list is checked before the
 * handshake). A client has METRICS_TIMEOUT seconds for all of it (handshake, request,
 * answer) and METRICS_HTTP_MAX_REQUEST octets of request head.
 *
 * The values come from the daemon's status (struct control_status, the same that
 * `sluice ctl status` shows), the zones and the audit writer: this file adds no shared
 * state of its own. The listener is made at start; a reload does not move it, but gives
 * it the certificate and key it read again (metrics_set_tls). */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "daemon/control_ops.h"

#define METRICS_TIMEOUT 2.0 /* seconds a client has to send its request and read the reply */

struct audit;
struct config_metrics;
struct metrics;
struct metrics_text;
struct zones;

/* Bind mc->address:mc->port and listen; the allow-list is copied. Call it as root if
 * the port is below 1024. Returns the server (not yet serving), or NULL and the reason,
 * naming the address, in err. Logs metrics.listen with the port bound. */
struct metrics *metrics_open(const struct config_metrics *mc, char *err, size_t errlen);

/* The port bound (the configured one, or the one the kernel chose for port 0). */
int metrics_port(const struct metrics *m);

/* The TLS context to serve with from the next connection on (net/tls.h's
 * tls_single_ctx_new(), made from mc->tls by daemon_setup.c); a reference is taken, the
 * previous context's dropped. Needed before metrics_start() when mc->tls was set. Any
 * thread: at start, then by each reload. */
void metrics_set_tls(struct metrics *m, SSL_CTX *ctx);

/* Serve on a thread of its own, all signals blocked in it. ops is copied (only status
 * is used); ops->ctx, zones and audit are borrowed and must outlive metrics_free();
 * zones and audit may be NULL (their metrics are left out). 0, or -1 if the thread
 * cannot start (or was started already, or metrics.tls is set and metrics_set_tls() was
 * not called). */
int metrics_start(struct metrics *m, const struct control_ops *ops, struct zones *zones,
                  struct audit *audit);

/* Stop the thread (a client being served is dropped) and close the socket. NULL is a
 * no-op. */
void metrics_free(struct metrics *m);

/* Write every metric into t from a status snapshot, the zones' and audit's own
 * counters (either may be NULL). Used by the server; public for its unit test. */
void metrics_render(struct metrics_text *t, const struct control_status *st,
                    struct zones *zones, struct audit *audit);

#endif
