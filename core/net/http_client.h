/* core/net/http_client.h: a small asynchronous HTTP/1.1 client on a worker's libev loop, for
 * policies talking to an identity provider (JWKS documents, RFC 7662 introspection).
 * One request per connection (Connection: close): no pooling, no keep-alive, no
 * redirects, no proxies. https verifies the certificate chain and the host name (SNI
 * sent); plain http only to a loopback address, unless the caller says `insecure`.
 * Host names are resolved with getaddrinfo on the offload pool, never on the loop, and
 * every address they have is tried in getaddrinfo's order until one connects, within
 * the one deadline (tcp_dial.h: a refused address costs nothing, a silent one 250 ms
 * before the next starts). Log lines: http.connect (debug; notice when an address
 * failed before one answered), http.unreachable (info, when none did).
 *
 * URLs are parsed by core/proto/http_url.c.
 *
 * Ownership: http_client_request() returns a request the caller owns until done() runs;
 * after done() the request is freed by this module. http_client_cancel() frees it
 * without calling done(). done() is never called before http_client_request() returns. */
#ifndef SLUICE_HTTP_CLIENT_H
#define SLUICE_HTTP_CLIENT_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct offload;
struct offload_return;

struct http_client_opts {
    const char        *method;      /* "GET" or "POST" */
    const char        *url;
    const char *const *headers;     /* NULL-terminated "Name: value" lines, or NULL */
    const char        *body;        /* POST body, or NULL */
    size_t             body_len;
    double             timeout;     /* seconds for the whole request, DNS included */
    double             connect_timeout; /* seconds to connect (every address) + TLS
                                           handshake; 0 = timeout */
    const char        *ca_file;     /* trust anchors for https, NULL = the system's store */
    bool               insecure;    /* allow plain http to a non-loopback address */
    size_t             body_max;    /* 0 = HTTP_RESPONSE_BODY_MAX */
    uint64_t           sid;         /* the session, for log lines; 0 = none */
};

struct http_client_header {
    char *name;  /* lowercased, NUL-terminated */
    char *value;
};

/* What done() receives; every pointer lives until done() returns. */
struct http_client_result {
    int                              status; /* 0 on failure */
    const char                      *error;  /* why it failed, or NULL */
    const char                      *body;   /* NUL-terminated after body_len octets */
    size_t                           body_len;
    const struct http_client_header *headers;
    size_t                           n_headers;
};

typedef void (*http_client_done_fn)(void *arg, const struct http_client_result *res);

struct http_client_req;

/* Start a request. NULL and why in err for a bad URL, option or allocation failure
 * (done() is not called then). offload/ret: where host names are resolved (NULL offload:
 * only numeric hosts). */
struct http_client_req *http_client_request(struct ev_loop *loop, struct offload *offload,
                                            struct offload_return *ret,
                                            const struct http_client_opts *opts,
                                            http_client_done_fn done, void *arg, char *err,
                                            size_t errlen);

/* Abandon a request: done() is not called; the request is freed (a resolution still on
 * the pool frees its job when it comes back). NULL ok. */
void http_client_cancel(struct http_client_req *req);

#endif
