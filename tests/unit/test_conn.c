/* tests/unit/test_conn.c: core/net/conn.c over a socketpair, in cleartext: what an idle
 * connection keeps. Once its output is sent and its input consumed, a conn holds no
 * reply-sized or burst-sized buffer (10,000 idle sessions must cost a few KiB each:
 * docs/benchmarks.md "Memory per idle connection"), but keeps a message-sized one (an
 * upstream connection's, made again for every message otherwise); bytes the owner left
 * are kept. Each loop run is bounded by a guard
 * timer; no test waits for a sleep to pass. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "net/conn.h"

static struct ev_loop *loop;

struct owner {
    int    inputs;
    int    flushed;
    size_t consume; /* octets of each input to take */
};

static enum conn_rc
owner_event(void *arg, struct conn *c, enum conn_event ev)
{
    struct owner *o = arg;

    if (ev == CONN_EV_INPUT) {
        o->inputs++;
        buf_consume(&c->in, o->consume < buf_used(&c->in) ? o->consume : buf_used(&c->in));
    } else if (ev == CONN_EV_FLUSHED) {
        o->flushed++;
    }
    ev_break(loop, EVBREAK_ONE);
    return CONN_OK;
}

static void
guard_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(l, EVBREAK_ONE);
}

/* Run the loop until a callback breaks it, or 5 s. */
static void
run_once(void)
{
    ev_timer guard;

    ev_timer_init(&guard, guard_cb, 5., 0.);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    ev_timer_stop(loop, &guard);
}

/* A conn on sv[0] (non-blocking), the test's end sv[1]. */
static struct conn *
pair(int sv[2], struct owner *o)
{
    struct conn *c;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return NULL;
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    c = conn_new(loop, sv[0], o, owner_event);
    return c;
}

static void
a_reply_sent_at_once_leaves_no_write_buffer(void)
{
    struct owner o = {0};
    int          sv[2];
    struct conn *c = pair(sv, &o);
    char         got[64];

    CHECK(c != NULL);
    if (c == NULL)
        return;
    CHECK_EQ_INT(conn_write(c, "220 ready\r\n", 11), 0);
    CHECK(c->out.cap > 0);
    CHECK_EQ_INT(conn_flush(c, false), CONN_OK);
    CHECK_EQ_INT(buf_used(&c->out), 0);
    CHECK_EQ_INT(c->out.cap, 0);
    CHECK(c->out.data == NULL);
    CHECK_EQ_INT(read(sv[1], got, sizeof(got)), 11);
    CHECK_MEM(got, 11, "220 ready\r\n");
    conn_free(c);
    close(sv[1]);
}

static void
a_message_sized_write_buffer_is_kept_for_the_next_one(void)
{
    struct owner o = {0};
    int          sv[2];
    struct conn *c = pair(sv, &o);
    char         msg[2500], got[4096];

    CHECK(c != NULL);
    if (c == NULL)
        return;
    memset(msg, 'm', sizeof(msg));
    CHECK_EQ_INT(conn_write(c, "MAIL FROM:<a@b>\r\n", 17), 0);
    CHECK_EQ_INT(conn_write(c, msg, sizeof(msg)), 0);
    CHECK_EQ_INT(conn_flush(c, false), CONN_OK);
    CHECK_EQ_INT(buf_used(&c->out), 0);
    CHECK(c->out.cap >= sizeof(msg) + 17 && c->out.cap <= 4096);
    CHECK_EQ_INT(read(sv[1], got, sizeof(got)), (long)sizeof(msg) + 17);
    conn_free(c);
    close(sv[1]);
}

static void
a_reply_that_had_to_wait_leaves_no_write_buffer_once_sent(void)
{
    struct owner o = {0};
    int          sv[2], sndbuf = 4096;
    struct conn *c = pair(sv, &o);
    static char  big[256 * 1024], sink[65536];
    size_t       drained = 0;

    CHECK(c != NULL);
    if (c == NULL)
        return;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    memset(big, 'x', sizeof(big));
    CHECK_EQ_INT(conn_write(c, big, sizeof(big)), 0);
    CHECK_EQ_INT(conn_flush(c, true), CONN_OK);
    CHECK(buf_used(&c->out) > 0); /* the socket took only part of it */
    CHECK(c->out.cap > 0);
    for (int i = 0; i < 10000 && drained < sizeof(big); i++) {
        ssize_t n = read(sv[1], sink, sizeof(sink));

        if (n > 0)
            drained += (size_t)n;
        if (o.flushed == 0)
            ev_run(loop, EVRUN_NOWAIT);
    }
    if (o.flushed == 0)
        run_once();
    CHECK_EQ_INT(drained, sizeof(big));
    CHECK_EQ_INT(o.flushed, 1);
    CHECK_EQ_INT(c->out.cap, 0);
    conn_free(c);
    close(sv[1]);
}

static void
input_consumed_leaves_no_read_buffer_and_input_left_is_kept(void)
{
    struct owner o = {.consume = (size_t)-1};
    int          sv[2];
    struct conn *c = pair(sv, &o);

    CHECK(c != NULL);
    if (c == NULL)
        return;
    conn_read_start(c);
    CHECK_EQ_INT(write(sv[1], "EHLO x\r\n", 8), 8);
    run_once();
    CHECK_EQ_INT(o.inputs, 1);
    CHECK_EQ_INT(c->in.cap, 0);
    o.consume = 4; /* the owner keeps the rest: an incomplete line */
    CHECK_EQ_INT(write(sv[1], "NOOP\r\nRS", 8), 8);
    run_once();
    CHECK_EQ_INT(o.inputs, 2);
    CHECK_EQ_INT(buf_used(&c->in), 4);
    CHECK(c->in.cap >= 4);
    CHECK_MEM(buf_head(&c->in), 4, "\r\nRS");
    conn_free(c);
    close(sv[1]);
}

int
main(void)
{
    loop = ev_loop_new(EVFLAG_AUTO);
    RUN(a_reply_sent_at_once_leaves_no_write_buffer);
    RUN(a_message_sized_write_buffer_is_kept_for_the_next_one);
    RUN(a_reply_that_had_to_wait_leaves_no_write_buffer_once_sent);
    RUN(input_consumed_leaves_no_read_buffer_and_input_left_is_kept);
    ev_loop_destroy(loop);
    return check_summary();
}
