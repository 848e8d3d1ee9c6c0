/* core/smtp/smtp_budget.c: a transaction's memory for its message, charged to the daemon-wide
 * budget (inflight.h) before the buffer grows, and the 452 4.3.1 when the budget says no
 * (docs/security.md "Memory for messages"). The rule: tx->msg's capacity never exceeds
 * tx->charged, and every octet charged is released when the transaction ends
 * (smtp_session_reset_tx, the one place a session's transaction goes away).
 *
 * Charging in chunks keeps it cheap: MAIL reserves INFLIGHT_FIRST_CHUNK, which holds most
 * messages whole; past it each step doubles what is held, up to INFLIGHT_MAX_CHUNK a step,
 * so a 25 MiB message takes about 30 reservations and as many reallocations. */
#include "smtp/smtp_session_internal.h"

#include <assert.h>
#include <stdint.h>

#include "util/limits.h"

/* The client's key in the budget: its network (an IPv4 address, an IPv6 /64 by
 * default), the key the connection caps count by (iplimit.h). */
static const char *
smtp_budget_key(const struct smtp_session *s)
{
    return s->client; /* the client network, as the connection caps count it */
}

static struct inflight *
smtp_budget_of(const struct smtp_session *s)
{
    return s->server->inflight;
}

/* The most octets tx->msg takes for a message of n octets: smtp_data_feed's cap. */
static size_t
smtp_budget_for(size_t n)
{
    return n + SMTP_HEADER_ROOM + 4;
}

/* A client that declares SIZE (RFC 1870) gets it all now or 452 at once (section 6.1:
 * insufficient storage for that size at this time), rather than midway through sending
 * it; a message longer than declared grows as an undeclared one does. */
enum inflight_rc
smtp_budget_open(struct smtp_session *s, struct smtp_tx *tx)
{
    size_t           first = INFLIGHT_FIRST_CHUNK;
    enum inflight_rc rc;

    if (tx->declared_size_set && smtp_budget_for(tx->declared_size) > first)
        first = smtp_budget_for(tx->declared_size); /* <= max_message_size: checked */
    rc = inflight_reserve(smtp_budget_of(s), smtp_budget_key(s), first);
    if (rc == INFLIGHT_OK)
        tx->charged = first;
    return rc;
}

/* RFC 3030: the chunk's octets follow its BDAT line at once; charge for all of them now
 * (our header too, before the first chunk), so a chunk is kept whole or refused whole. A
 * chunk past max_message_size is not charged: it is refused for its size (552). */
enum inflight_rc
smtp_budget_expect(struct smtp_session *s, unsigned long long more)
{
    struct smtp_tx    *tx = s->tx;
    unsigned long long used = buf_used(&tx->msg) + (tx->bdat_used ? 0 : SMTP_HEADER_ROOM);
    unsigned long long cap = smtp_budget_for(s->cfg->max_message_size);
    enum inflight_rc   rc;

    if (more > cap || used + more > cap || used + more <= tx->charged)
        return INFLIGHT_OK;
    rc = inflight_reserve(smtp_budget_of(s), smtp_budget_key(s),
                          (size_t)(used + more - tx->charged));
    if (rc == INFLIGHT_OK)
        tx->charged = (size_t)(used + more);
    return rc;
}

/* Charge enough for want octets in all: a whole step when it fits under cap and the
 * budget, else exactly what is missing. */
static enum inflight_rc
smtp_budget_charge(struct smtp_session *s, size_t want, size_t cap)
{
    struct smtp_tx  *tx = s->tx;
    size_t           need = want - tx->charged, step = tx->charged, grow;
    enum inflight_rc rc;

    if (step > INFLIGHT_MAX_CHUNK)
        step = INFLIGHT_MAX_CHUNK;
    if (step < INFLIGHT_FIRST_CHUNK)
        step = INFLIGHT_FIRST_CHUNK;
    if (cap < want)
        cap = want;
    grow = need > step ? need : step;
    if (grow > cap - tx->charged)
        grow = cap - tx->charged; /* still >= need */
    rc = inflight_reserve(smtp_budget_of(s), smtp_budget_key(s), grow);
    if (rc != INFLIGHT_OK && grow > need) {
        grow = need;
        rc = inflight_reserve(smtp_budget_of(s), smtp_budget_key(s), grow);
    }
    if (rc == INFLIGHT_OK)
        tx->charged += grow;
    return rc;
}

enum inflight_rc
smtp_budget_reserve(struct smtp_session *s, size_t n, size_t cap)
{
    struct smtp_tx  *tx = s->tx;
    size_t           used = buf_used(&tx->msg);
    enum inflight_rc rc;

    if (n > SIZE_MAX - used)
        return INFLIGHT_TOTAL;
    if (used + n > tx->charged && (rc = smtp_budget_charge(s, used + n, cap)) != INFLIGHT_OK)
        return rc;
    /* buf_reserve never makes the capacity larger than its cap: here, what is charged */
    if (buf_reserve(&tx->msg, n, tx->charged) != 0)
        return INFLIGHT_TOTAL;
    assert(tx->msg.cap <= tx->charged);
    return INFLIGHT_OK;
}

void
smtp_budget_drop(struct smtp_session *s, struct smtp_tx *tx)
{
    buf_cleanup(&tx->msg);
    inflight_release(smtp_budget_of(s), smtp_budget_key(s), tx->charged);
    tx->charged = 0;
}

enum smtp_reply_id
smtp_budget_refusal(struct smtp_session *s, enum inflight_rc rc)
{
    inflight_refused(smtp_budget_of(s));
    return rc == INFLIGHT_CLIENT ? SMTP_R_FULL_FOR_CLIENT : SMTP_R_FULL;
}

/* RFC 3463 X.3.1 "Mail system full"; RFC 5321 4.2.2: 452 insufficient system storage.
 * Temporary: the client keeps its message and tries again later. */
enum smtp_rc
smtp_budget_refuse(struct smtp_session *s, enum inflight_rc rc)
{
    return smtp_session_error(s, smtp_budget_refusal(s, rc));
}
