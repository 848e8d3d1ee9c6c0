/* core/smtp/smtp_proxy.c: the PROXY protocol on a proxy_protocol listener (haproxy
 * doc/proxy-protocol.txt): whom to believe (the listener's proxy_trusted), reading
 * exactly the header before TLS and the greeting, and the client address it carries
 * becoming the session's peer, which every later use reads (iplimit, policies, logs,
 * the Received: header). The bytes are parsed by proto/proxy_header.c; the deadline
 * (proxy_timeout) is the session's timer, as for every other wait (smtp_session.c). */
#include "smtp/smtp_session_internal.h"

#include <stdio.h>
#include <string.h>

#include "net/conn.h"
#include "proto/proxy_header.h"
#include "util/log.h"

bool
smtp_proxy_is_trusted(const struct config_listener *l, const char *ip)
{
    for (size_t i = 0; i < l->n_proxy_trusted; i++) {
        if (cidr_contains(&l->proxy_trusted[i], ip))
            return true;
    }
    return false;
}

enum smtp_rc
smtp_proxy_refuse(struct smtp_session *s, const char *event, const char *reason)
{
    struct logline l;

    log_begin(&l, LOG_NOTICE, event, s->id);
    log_str(&l, "listener", s->lcfg->name);
    log_str(&l, "ip", s->peer);
    log_int(&l, "port", s->peer_port);
    log_str(&l, "reason", reason);
    log_end(&l);
    smtp_session_free(s, reason);
    return SMTP_GONE;
}

enum smtp_rc
smtp_proxy_input(struct smtp_session *s)
{
    struct conn         *c = s->conn;
    struct proxy_header  h;
    size_t               used = 0;
    const char          *why;
    enum proxy_header_rc rc = proxy_header_parse(buf_head(&c->in), buf_used(&c->in), &h,
                                                 &used, &why);

    if (rc == PROXY_HEADER_AGAIN) {
        /* Read no further than the header can reach: what follows is the client's. */
        c->in_max = used;
        conn_read_start(c);
        return SMTP_PAUSE;
    }
    if (rc == PROXY_HEADER_BAD)
        return smtp_proxy_refuse(s, "proxy.bad", why);
    buf_consume(&c->in, used);
    conn_read_stop(c); /* as after a plain accept: the next state starts reading */
    memcpy(s->proxy_peer, s->peer, sizeof(s->proxy_peer));
    if (!h.local) {
        snprintf(s->peer, sizeof(s->peer), "%s", h.src);
        s->peer_port = h.src_port;
    }
    return smtp_session_start(s);
}
