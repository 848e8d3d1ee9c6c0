/* core/relay/upstream_token.c: one worker's OAuth2 bearer tokens for XOAUTH2 upstreams;
 * see upstream_token.h and docs/upstreams.md "OAuth2". The request goes out through
 * net/http_client.c; its JSON answer is read by proto/oauth2_token.c. */
#include "relay/upstream_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_client.h"
#include "proto/oauth2_token.h"
#include "util/log.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define TOKEN_TIMEOUT        10.0   /* seconds for one request to the endpoint */
#define TOKEN_REFRESH_AT     0.8    /* of expires_in: refresh from then on */
#define TOKEN_MARGIN_MAX     30.0   /* stop using a token this long before it expires... */
#define TOKEN_MARGIN_SHARE   0.1    /* ... or this share of its lifetime, if less */
#define TOKEN_DEFAULT_LIFE   600    /* expires_in absent (RFC 6749 5.1 makes it optional) */
#define TOKEN_BACKOFF_MIN    1.0
#define TOKEN_BACKOFF_MAX    60.0
#define TOKEN_BODY_MAX       12288  /* the form: grant, refresh token, scope */
#define TOKEN_BASIC_MAX      4096   /* "Authorization: Basic " and base64 of id:secret */

struct upstream_token_entry {
    struct upstream_tokens              *t;       /* borrows: its cache */
    const struct config_upstream_oauth2 *o;       /* borrows cfg: the first one asked */
    char                                *token;   /* owns; wiped on free; NULL: none */
    ev_tstamp                            refresh_at, expires_at;
    ev_tstamp                            retry_at; /* back-off: no fetch before */
    double                               backoff;  /* the next back-off, seconds */
    ev_tstamp                            sent_at;  /* the fetch in flight began */
    struct http_client_req              *req;     /* owns; the fetch in flight, or NULL */
    uint64_t                             sid;      /* who started that fetch */
    char                                 error[200]; /* why the last fetch failed */
    struct upstream_token_wait          *waiters;
    ev_timer                             kick;     /* fed, never started: waiters' done() */
    struct upstream_token_entry         *next;
};

struct upstream_tokens {
    struct ev_loop              *loop;    /* borrows */
    struct offload              *offload; /* borrows; NULL: numeric hosts only */
    struct offload_return       *ret;     /* borrows */
    struct upstream_token_entry *entries; /* owns */
    unsigned long long           fetches;
};

/* ---- identity and the request ---- */

static bool
token_streq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool
upstream_tokens_same_identity(const struct config_upstream_oauth2 *o,
                              const struct config_upstream_oauth2 *p)
{
    if (o == NULL || p == NULL)
        return o == p;
    return token_streq(o->token_url, p->token_url) && token_streq(o->client_id, p->client_id) &&
           token_streq(o->client_secret, p->client_secret) &&
           token_streq(o->refresh_token, p->refresh_token) && token_streq(o->scope, p->scope) &&
           token_streq(o->ca_file, p->ca_file);
}

/* RFC 6749 appendix B: application/x-www-form-urlencoded, as HTML's form encoding.
 * value appended to out[*n..cap), NUL-terminated. */
static bool
token_form_value(char *out, size_t cap, size_t *n, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
        if (*n + 4 > cap)
            return false;
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '*') {
            out[(*n)++] = (char)*p;
        } else if (*p == ' ') {
            out[(*n)++] = '+';
        } else {
            out[(*n)++] = '%';
            out[(*n)++] = hex[*p >> 4];
            out[(*n)++] = hex[*p & 15];
        }
    }
    if (*n >= cap)
        return false;
    out[*n] = '\0';
    return true;
}

static bool
token_form_append(char *out, size_t cap, size_t *n, const char *name, const char *value)
{
    int k = snprintf(out + *n, cap - *n, "%s%s=", *n > 0 ? "&" : "", name);

    if (k < 0 || (size_t)k >= cap - *n)
        return false;
    *n += (size_t)k;
    return token_form_value(out, cap, n, value);
}

size_t
upstream_tokens_body(const struct config_upstream_oauth2 *o, char *out, size_t cap)
{
    size_t n = 0;
    bool   ok;

    if (cap == 0)
        return 0;
    out[0] = '\0';
    if (o->refresh_token != NULL) /* RFC 6749 section 6 */
        ok = token_form_append(out, cap, &n, "grant_type", "refresh_token") &&
             token_form_append(out, cap, &n, "refresh_token", o->refresh_token);
    else /* RFC 6749 4.4.2 */
        ok = token_form_append(out, cap, &n, "grant_type", "client_credentials");
    if (ok && o->scope != NULL)
        ok = token_form_append(out, cap, &n, "scope", o->scope);
    /* RFC 6749 2.3.1: a confidential client authenticates with HTTP Basic (every
     * server must take it); a public one only names itself (section 3.2.1). */
    if (ok && o->client_secret == NULL)
        ok = token_form_append(out, cap, &n, "client_id", o->client_id);
    if (!ok) {
        OPENSSL_cleanse(out, cap);
        out[0] = '\0';
        return 0;
    }
    return n;
}

/* "Authorization: Basic base64(form(id):form(secret))" (RFC 6749 2.3.1). 0 or -1. */
static int
token_basic_header(const struct config_upstream_oauth2 *o, char *out, size_t cap)
{
    static const char prefix[] = "Authorization: Basic ";
    char              pair[(TOKEN_BASIC_MAX - sizeof(prefix)) / 4 * 3];
    size_t            n = 0;
    int               rc = -1;

    if (token_form_value(pair, sizeof(pair), &n, o->client_id) && n + 1 < sizeof(pair)) {
        pair[n++] = ':';
        if (token_form_value(pair, sizeof(pair), &n, o->client_secret) &&
            sizeof(prefix) + (n + 2) / 3 * 4 <= cap) {
            memcpy(out, prefix, sizeof(prefix) - 1);
            EVP_EncodeBlock((unsigned char *)out + sizeof(prefix) - 1,
                            (const unsigned char *)pair, (int)n);
            rc = 0;
        }
    }
    OPENSSL_cleanse(pair, sizeof(pair));
    return rc;
}

/* ---- entries ---- */

static void token_kick_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void
token_forget(struct upstream_token_entry *e)
{
    if (e->token != NULL) {
        OPENSSL_cleanse(e->token, strlen(e->token));
        free(e->token);
        e->token = NULL;
    }
}

static struct upstream_token_entry *
token_entry(struct upstream_tokens *t, const struct config_upstream_oauth2 *o, bool create)
{
    struct upstream_token_entry *e;

    for (e = t->entries; e != NULL; e = e->next) /* a handful: one per identity */
        if (upstream_tokens_same_identity(e->o, o))
            return e;
    if (!create || (e = calloc(1, sizeof(*e))) == NULL)
        return NULL;
    e->t = t;
    e->o = o;
    e->backoff = TOKEN_BACKOFF_MIN;
    ev_init(&e->kick, token_kick_cb);
    e->next = t->entries;
    t->entries = e;
    return e;
}

static bool
token_is_usable(const struct upstream_token_entry *e, ev_tstamp now)
{
    return e->token != NULL && now < e->expires_at;
}

/* Deliver the outcome to every waiter; each done() may start or cancel other waits. */
static void
token_notify(struct upstream_token_entry *e)
{
    bool        ok = token_is_usable(e, ev_now(e->t->loop));
    const char *error = ok ? NULL : e->error[0] != '\0' ? e->error : "no token";

    while (e->waiters != NULL) { /* each pass removes one */
        struct upstream_token_wait *w = e->waiters;

        e->waiters = w->next;
        if (e->waiters != NULL)
            e->waiters->prev = NULL;
        w->entry = NULL;
        w->prev = w->next = NULL;
        w->done(w, ok, error);
    }
}

static void
token_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct upstream_token_entry *e = container_of(w, struct upstream_token_entry, kick);

    (void)loop;
    (void)revents;
    if (e->req == NULL) /* else the fetch's end notifies */
        token_notify(e);
}

static void
token_failed(struct upstream_token_entry *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
token_failed(struct upstream_token_entry *e, int status, const char *fmt, ...)
{
    struct logline l;
    va_list        ap;

    va_start(ap, fmt);
    vsnprintf(e->error, sizeof(e->error), fmt, ap);
    va_end(ap);
    e->retry_at = ev_now(e->t->loop) + e->backoff;
    log_begin(&l, LOG_WARNING, "upstream.token_fail", e->sid);
    log_str(&l, "token_url", e->o->token_url);
    log_str(&l, "client_id", e->o->client_id);
    if (status != 0)
        log_int(&l, "status", status);
    log_str(&l, "error", e->error);
    log_dbl(&l, "retry_in", e->backoff);
    log_end(&l);
    e->backoff = e->backoff * 2 < TOKEN_BACKOFF_MAX ? e->backoff * 2 : TOKEN_BACKOFF_MAX;
}

static void
token_got(struct upstream_token_entry *e, const struct oauth2_token_answer *a)
{
    ev_tstamp      now = ev_now(e->t->loop);
    double         life = a->expires_in >= 0 ? (double)a->expires_in : TOKEN_DEFAULT_LIFE;
    double         margin = life * TOKEN_MARGIN_SHARE;
    struct logline l;

    if (margin > TOKEN_MARGIN_MAX)
        margin = TOKEN_MARGIN_MAX;
    token_forget(e);
    e->token = strdup(a->access_token);
    if (e->token == NULL) {
        token_failed(e, 0, "out of memory");
        return;
    }
    /* From when the request was sent: the endpoint's clock started no later. */
    e->refresh_at = e->sent_at + life * TOKEN_REFRESH_AT;
    e->expires_at = e->sent_at + life - margin;
    e->backoff = TOKEN_BACKOFF_MIN;
    e->retry_at = 0;
    e->error[0] = '\0';
    log_begin(&l, LOG_INFO, "upstream.token", e->sid);
    log_str(&l, "token_url", e->o->token_url);
    log_str(&l, "client_id", e->o->client_id);
    log_int(&l, "expires_in", a->expires_in);
    log_int(&l, "ms", (long long)((now - e->sent_at) * 1000));
    log_end(&l);
}

static void
token_done_cb(void *arg, const struct http_client_result *res)
{
    struct upstream_token_entry *e = arg;
    struct oauth2_token_answer  *a = malloc(sizeof(*a));
    enum oauth2_token_rc         rc;

    e->req = NULL;
    if (a == NULL) {
        token_failed(e, 0, "out of memory");
    } else if (res->status == 0) {
        token_failed(e, 0, "token endpoint: %s", res->error ? res->error : "failed");
    } else {
        rc = oauth2_token_parse(res->body, res->body_len, a);
        if (rc == OAUTH2_TOKEN_OK && res->status == 200)
            token_got(e, a);
        else if (rc == OAUTH2_TOKEN_ERROR) /* RFC 6749 5.2: invalid_client, ... */
            token_failed(e, res->status, "token endpoint refused: %s", a->error);
        else
            token_failed(e, res->status, "token endpoint answered HTTP %d without a "
                                         "usable token", res->status);
    }
    if (a != NULL) {
        OPENSSL_cleanse(a, sizeof(*a));
        free(a);
    }
    token_notify(e);
}

/* Start a fetch for e unless one is in flight or it is backing off. */
static void
token_fetch(struct upstream_token_entry *e, uint64_t sid)
{
    struct upstream_tokens *t = e->t;
    ev_tstamp               now = ev_now(t->loop);
    char                   *body = NULL, basic[TOKEN_BASIC_MAX], err[160];
    const char             *headers[2] = {NULL, NULL};
    size_t                  n = 0;

    if (e->req != NULL || now < e->retry_at)
        return;
    e->sid = sid;
    body = malloc(TOKEN_BODY_MAX);
    if (body != NULL)
        n = upstream_tokens_body(e->o, body, TOKEN_BODY_MAX);
    if (body == NULL || n == 0) {
        token_failed(e, 0, "cannot build the token request");
    } else if (e->o->client_secret != NULL &&
               token_basic_header(e->o, basic, sizeof(basic)) != 0) {
        token_failed(e, 0, "client_id and client_secret too long");
    } else {
        struct http_client_opts opts = {
            .method = "POST",
            .url = e->o->token_url,
            .headers = headers,
            .body = body,
            .body_len = n,
            .timeout = TOKEN_TIMEOUT,
            .ca_file = e->o->ca_file,
            .sid = sid,
        };

        if (e->o->client_secret != NULL)
            headers[0] = basic;
        e->sent_at = now;
        t->fetches++;
        e->req = http_client_request(t->loop, t->offload, t->ret, &opts, token_done_cb, e, err,
                                     sizeof(err));
        if (e->req == NULL)
            token_failed(e, 0, "token request: %s", err);
    }
    OPENSSL_cleanse(basic, sizeof(basic));
    if (body != NULL) {
        OPENSSL_cleanse(body, TOKEN_BODY_MAX);
        free(body);
    }
}

/* ---- the public calls ---- */

struct upstream_tokens *
upstream_tokens_new(struct ev_loop *loop)
{
    struct upstream_tokens *t = calloc(1, sizeof(*t));

    if (t != NULL)
        t->loop = loop;
    return t;
}

void
upstream_tokens_free(struct upstream_tokens *t)
{
    if (t == NULL)
        return;
    while (t->entries != NULL) { /* each pass frees one */
        struct upstream_token_entry *e = t->entries;

        t->entries = e->next;
        http_client_cancel(e->req);
        ev_timer_stop(t->loop, &e->kick); /* also clears a pending feed */
        for (struct upstream_token_wait *w = e->waiters; w != NULL; w = w->next)
            w->entry = NULL;
        token_forget(e);
        free(e);
    }
    free(t);
}

void
upstream_tokens_set_offload(struct upstream_tokens *t, struct offload *offload,
                            struct offload_return *ret)
{
    t->offload = offload;
    t->ret = ret;
}

const char *
upstream_tokens_get(struct upstream_tokens *t, const struct config_upstream_oauth2 *o,
                    uint64_t sid)
{
    struct upstream_token_entry *e = token_entry(t, o, false);
    ev_tstamp                    now = ev_now(t->loop);

    if (e == NULL || !token_is_usable(e, now))
        return NULL;
    if (now >= e->refresh_at)
        token_fetch(e, sid); /* in the background: this token serves meanwhile */
    return e->token;
}

int
upstream_tokens_wait(struct upstream_tokens *t, const struct config_upstream_oauth2 *o,
                     struct upstream_token_wait *w, uint64_t sid)
{
    struct upstream_token_entry *e = token_entry(t, o, true);

    if (e == NULL)
        return -1;
    w->entry = e;
    w->prev = NULL;
    w->next = e->waiters;
    if (e->waiters != NULL)
        e->waiters->prev = w;
    e->waiters = w;
    if (!token_is_usable(e, ev_now(t->loop)))
        token_fetch(e, sid);
    if (e->req == NULL) /* known already (a token, or a back-off): tell from the loop */
        ev_feed_event(t->loop, &e->kick, EV_TIMER);
    return 0;
}

void
upstream_tokens_cancel(struct upstream_token_wait *w)
{
    struct upstream_token_entry *e = w->entry;

    if (e == NULL)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->entry = NULL;
    w->prev = w->next = NULL;
}

void
upstream_tokens_drop(struct upstream_tokens *t, const struct config_upstream_oauth2 *o,
                     const char *token)
{
    struct upstream_token_entry *e = token_entry(t, o, false);

    if (e != NULL && e->token != NULL && token != NULL && strcmp(e->token, token) == 0)
        token_forget(e);
}

unsigned long long
upstream_tokens_fetches(const struct upstream_tokens *t)
{
    return t->fetches;
}
