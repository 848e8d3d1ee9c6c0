/* tests/unit/test_smtp_session.c: the session state machine driven through a socketpair
 * on a real worker loop (cleartext listener, insecure = true so AUTH works without TLS),
 * with real password checks on the offload pool. The upstream points at a closed port:
 * these tests are about the client side; relaying is covered by the integration tests. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth/authdb.h"
#include "check.h"
#include "config/config.h"
#include "util/inflight.h"
#include "net/iplimit.h"
#include "util/offload.h"
#include "smtp/smtp_session.h"
#include "smtp/smtp_session_internal.h"
#include "daemon/generation.h"
#include "testio.h"
#include "tmpdir.h"
#include "daemon/worker.h"
#include "daemon/worker_gen.h"

#define T_INFLIGHT_TOTAL (2u * 1024 * 1024)
#define T_INFLIGHT_SHARE (512u * 1024) /* every client here is "" (a socketpair) */

static const char     *tmpdir; /* removed at exit (tmpdir.h) */
static struct config  *cfg;
static struct daemon   daemon_;
static struct worker  *worker;

static void
setup(void)
{
    char path[512], users[256], conf[2048], hash[256], line[300], err[512];

    tmpdir = test_tmpdir("session");
    snprintf(users, sizeof(users), "%s/users", tmpdir);
    mkdir(users, 0700);
    authdb_hash("secret", "$6$", hash, sizeof(hash));
    snprintf(line, sizeof(line), "ann:%s\n", hash);
    snprintf(path, sizeof(path), "%s/example.org.txt", users);
    test_write_file(NULL, path, line);
    snprintf(conf, sizeof(conf),
             "return { hostname = 'unit.test', workers = 1, insecure = true,\n"
             "  users_dir = '%s', log_level = 'err',\n"
             "  listeners = { { name = 'plain', address = '127.0.0.1', port = 1, tls = 'none' } },\n"
             "  limits = { max_recipients = 3, max_errors = 8, max_auth_failures = 2 },\n"
             "  upstreams = { default = { { host = '127.0.0.1', port = 1, tls = 'none' } } },\n"
             "  policies = { '" SLUICE_SOURCE_DIR "/policies/auth.lua',\n"
             "               '" SLUICE_SOURCE_DIR "/policies/sender_domain.lua' },\n"
             "  domains = { ['example.org'] = { check_header_from = false } } }\n",
             users);
    snprintf(path, sizeof(path), "%s/sluice.lua", tmpdir);
    test_write_file(NULL, path, conf);
    daemon_.gen = generation_load(path, 1, err, sizeof(err));
    if (daemon_.gen == NULL) {
        fprintf(stderr, "config: %s\n", err);
        exit(1);
    }
    cfg = daemon_.gen->parts.cfg;
    daemon_.offload = offload_new(1, 0, 0);
    daemon_.iplimit = iplimit_new(100, 100);
    daemon_.inflight = inflight_new(T_INFLIGHT_TOTAL, T_INFLIGHT_SHARE);
    worker = worker_new(0, &daemon_, NULL, NULL, 0, err, sizeof(err));
    if (worker == NULL) {
        fprintf(stderr, "setup: %s\n", err);
        exit(1);
    }
}

/* A client end with a session on the other. */
static int
client_new(void)
{
    int sv[2];

    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    smtp_session_new(&worker->server, &cfg->listeners[0], sv[1]);
    return sv[0];
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the loop until `want` reply lines (final lines, "ddd ") arrived or 5 s passed.
 * Returns everything read. */
static char *
replies(int fd, int want)
{
    static char buf[65536];
    size_t      len = 0;
    double      deadline = now() + 5;
    int         finals = 0;

    buf[0] = '\0';
    while (finals < want && now() < deadline) {
        ssize_t n;

        ev_run(worker->loop, EVRUN_NOWAIT);
        n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            finals = 0;
            for (char *p = buf; (p = strstr(p, "\r\n")) != NULL; p += 2) {
                char *start = p;

                while (start > buf && start[-1] != '\n')
                    start--;
                if (p - start >= 4 && start[3] == ' ')
                    finals++;
            }
        } else if (n == 0) {
            break;
        } else {
            usleep(1000);
        }
    }
    return buf;
}

static void
send_str(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;
    double deadline = now() + 5;

    while (off < len && now() < deadline) {
        ssize_t n = write(fd, s + off, len - off);

        if (n > 0)
            off += (size_t)n;
        else
            ev_run(worker->loop, EVRUN_NOWAIT);
    }
}

static const char *
exchange(int fd, const char *cmds, int want)
{
    send_str(fd, cmds);
    return replies(fd, want);
}

/* "ann@example.org\0ann@example.org\0secret" in base64 */
#define ANN_PLAIN "AGFubkBleGFtcGxlLm9yZwBzZWNyZXQ="

static int
client_authenticated(void)
{
    int fd = client_new();

    replies(fd, 1);
    exchange(fd, "EHLO client.test\r\n", 1);
    CHECK(strstr(exchange(fd, "AUTH PLAIN " ANN_PLAIN "\r\n", 1), "235 2.7.0") != NULL);
    return fd;
}

static void
greeting_names_the_host_and_ehlo_lists_the_extensions(void)
{
    int         fd = client_new();
    const char *r = replies(fd, 1);

    CHECK(strncmp(r, "220 unit.test ESMTP", 19) == 0);
    r = exchange(fd, "EHLO client.test\r\n", 1);
    CHECK(strstr(r, "250-PIPELINING\r\n") != NULL);
    CHECK(strstr(r, "250-CHUNKING\r\n") != NULL);
    CHECK(strstr(r, "250-DSN\r\n") != NULL); /* RFC 3461, always (docs/smtp.md) */
    CHECK(strstr(r, "250-8BITMIME\r\n") != NULL);
    CHECK(strstr(r, "250-SMTPUTF8\r\n") != NULL);
    CHECK(strstr(r, "250-ENHANCEDSTATUSCODES\r\n") != NULL);
    CHECK(strstr(r, "SIZE 26214400") != NULL);
    CHECK(strstr(r, "250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n") != NULL);
    CHECK(strstr(r, "STARTTLS") == NULL); /* not a STARTTLS listener */
    close(fd);
}

static void
ehlo_takes_domains_and_literals_but_not_header_syntax(void)
{
    static const char *const good[] = { "EHLO [127.0.0.1]\r\n", "EHLO [IPv6:::1]\r\n",
                                        "EHLO my_pc.local\r\n", "HELO b\xc3\xbcro.test\r\n" };
    static const char *const bad[] = { "EHLO evil (x); Mon, 1 Jan 2001\r\n", "EHLO a;b\r\n",
                                       "EHLO []\r\n", "EHLO [1.2.3.4\r\n" };
    int fd = client_new();

    replies(fd, 1);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK(strncmp(exchange(fd, good[i], 1), "250", 3) == 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(strncmp(exchange(fd, bad[i], 1), "501 5.5.4", 9) == 0);
    close(fd);
}

static void
mail_before_ehlo_and_before_auth_are_refused(void)
{
    int fd = client_new();

    replies(fd, 1);
    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org>\r\n", 1), "503 5.5.1") != NULL);
    exchange(fd, "EHLO c\r\n", 1);
    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org>\r\n", 1), "530 5.7.0") != NULL);
    close(fd);
}

/* The verb table's needs, in their order: each command out of sequence gets exactly the
 * reply it always got. */
static void
commands_out_of_sequence_get_their_exact_replies(void)
{
    static const struct {
        const char *cmd, *reply;
    } before_ehlo[] = {
        {"AUTH PLAIN\r\n", "503 5.5.1 Send EHLO first\r\n"},
        {"RCPT TO:<bob@example.org>\r\n", "503 5.5.1 Need MAIL command first\r\n"},
        {"DATA\r\n", "503 5.5.1 Need MAIL command first\r\n"},
        {"STARTTLS\r\n", "503 5.5.1 STARTTLS not offered here\r\n"},
    }, in_tx[] = {
        {"DATA\r\n", "554 5.5.1 No valid recipients\r\n"},
        {"MAIL FROM:<ann@example.org>\r\n", "503 5.5.1 Nested MAIL command\r\n"},
        {"AUTH PLAIN\r\n", "503 5.5.1 Already authenticated\r\n"},
    };
    int fd = client_new();

    replies(fd, 1);
    for (size_t i = 0; i < sizeof(before_ehlo) / sizeof(before_ehlo[0]); i++)
        CHECK(strcmp(exchange(fd, before_ehlo[i].cmd, 1), before_ehlo[i].reply) == 0);
    CHECK(strstr(exchange(fd, "HELO c\r\n", 1), "250 unit.test Hello c") != NULL);
    CHECK(strcmp(exchange(fd, "AUTH PLAIN\r\n", 1), "503 5.5.1 Send EHLO first\r\n") == 0);
    close(fd);

    fd = client_authenticated();
    CHECK(strcmp(exchange(fd, "MAIL FROM:<ann@example.org>\r\n", 1),
                 "250 2.1.0 Sender ok\r\n") == 0);
    for (size_t i = 0; i < sizeof(in_tx) / sizeof(in_tx[0]); i++)
        CHECK(strcmp(exchange(fd, in_tx[i].cmd, 1), in_tx[i].reply) == 0);
    close(fd);
}

static void
a_pipelined_batch_is_answered_in_order(void)
{
    int         fd = client_new();
    const char *r;

    replies(fd, 1);
    r = exchange(fd, "NOOP\r\nRSET\r\nVRFY ann\r\nEXPN list\r\nHELP\r\n", 5);
    CHECK(strstr(r, "250 2.0.0 Ok\r\n250 2.0.0 Reset\r\n252 2.5.0") != NULL);
    CHECK(strstr(r, "502 5.5.1") != NULL);
    CHECK(strstr(r, "214 ") != NULL);
    close(fd);
}

static void
bare_lf_and_overlong_lines_get_500_and_the_session_goes_on(void)
{
    int  fd = client_new();
    char longline[600];

    replies(fd, 1);
    CHECK(strstr(exchange(fd, "NOOP\nNOOP\r\n", 2), "500 5.5.2 Bare CR or LF") != NULL);
    memset(longline, 'A', sizeof(longline));
    memcpy(longline, "NOOP ", 5);
    memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
    CHECK(strstr(exchange(fd, longline, 1), "500 5.5.2 Line too long") != NULL);
    CHECK(strstr(exchange(fd, "NOOP\r\n", 1), "250 2.0.0 Ok") != NULL);
    close(fd);
}

static void
auth_lines_may_be_12288_octets_but_not_more(void)
{
    int   fd = client_new();
    char *line = malloc(12300);

    replies(fd, 1);
    exchange(fd, "EHLO c\r\n", 1);
    /* 12288 with CRLF: a long (bad) base64 response is a 501, not "line too long" */
    memset(line, 'A', 12286);
    memcpy(line, "AUTH PLAIN ", 11);
    line[12285] = '!';
    memcpy(line + 12286, "\r\n", 3);
    CHECK(strstr(exchange(fd, line, 1), "501 5.5.2") != NULL);
    memset(line, 'A', 12287);
    memcpy(line, "AUTH PLAIN ", 11);
    memcpy(line + 12287, "\r\n", 3);
    CHECK(strstr(exchange(fd, line, 1), "500 5.5.2 Line too long") != NULL);
    free(line);
    close(fd);
}

static void
wrong_password_and_unknown_user_get_the_same_535(void)
{
    int  fd = client_new();
    char a[256], b[256];

    replies(fd, 1);
    exchange(fd, "EHLO c\r\n", 1);
    /* ann / wrong */
    snprintf(a, sizeof(a), "%s", exchange(fd, "AUTH PLAIN AGFubkBleGFtcGxlLm9yZwB3cm9uZw==\r\n", 1));
    /* nobody@example.org / secret */
    snprintf(b, sizeof(b), "%s",
             exchange(fd, "AUTH PLAIN AG5vYm9keUBleGFtcGxlLm9yZwBzZWNyZXQ=\r\n", 2));
    CHECK(strcmp(a, "535 5.7.8 Authentication credentials invalid\r\n") == 0);
    /* the second failure reaches max_auth_failures = 2: 535 then 421 */
    CHECK(strncmp(b, a, strlen(a)) == 0);
    CHECK(strstr(b, "421 4.7.0") != NULL);
    close(fd);
}

static void
auth_cancel_unknown_mechanism_and_second_auth_are_refused(void)
{
    int fd = client_new();

    replies(fd, 1);
    exchange(fd, "EHLO c\r\n", 1);
    CHECK(strstr(exchange(fd, "AUTH CRAM-MD5\r\n", 1), "504 5.5.4") != NULL);
    CHECK(strstr(exchange(fd, "AUTH LOGIN\r\n", 1), "334 VXNlcm5hbWU6") != NULL);
    CHECK(strstr(exchange(fd, "*\r\n", 1), "501 5.0.0") != NULL);
    CHECK(strstr(exchange(fd, "AUTH PLAIN " ANN_PLAIN "\r\n", 1), "235 2.7.0") != NULL);
    CHECK(strstr(exchange(fd, "AUTH PLAIN " ANN_PLAIN "\r\n", 1), "503 5.5.1") != NULL);
    close(fd);
}

static void
sender_outside_the_authenticated_domain_gets_550_5_7_1(void)
{
    int fd = client_authenticated();

    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.net>\r\n", 1), "550 5.7.1") != NULL);
    CHECK(strstr(exchange(fd, "MAIL FROM:<>\r\n", 1), "550 5.7.1") != NULL);
    CHECK(strstr(exchange(fd, "MAIL FROM:<Ann@EXAMPLE.ORG>\r\n", 1), "250 2.1.0") != NULL);
    close(fd);
}

static void
recipients_beyond_the_limit_get_452_4_5_3(void)
{
    int         fd = client_authenticated();
    const char *r;

    r = exchange(fd, "MAIL FROM:<ann@example.org>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
                     "RCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test>\r\n", 5);
    CHECK(strstr(r, "250 2.1.5 Recipient ok\r\n452 4.5.3 Too many recipients") != NULL);
    close(fd);
}

static void
smuggled_end_of_data_is_not_an_end_and_the_message_is_refused(void)
{
    int         fd = client_authenticated();
    const char *r;

    exchange(fd, "MAIL FROM:<ann@example.org>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n", 3);
    r = exchange(fd, "Subject: x\r\n\r\nbody\n.\nMAIL FROM:<ann@example.org>\r\n"
                     "RCPT TO:<evil@x.test>\r\nDATA\r\n\r.\r\n.\r\n", 1);
    CHECK(strcmp(r, "550 5.6.0 Bare CR or LF in message; lines must end with CRLF\r\n") == 0);
    /* the transaction is gone: a fresh MAIL is accepted, nothing nested */
    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org>\r\n", 1), "250 2.1.0") != NULL);
    close(fd);
}

static void
a_refused_bdat_chunk_is_read_and_not_executed(void)
{
    int         fd = client_authenticated();
    const char *r;

    /* no MAIL: 503, and the 6 chunk octets "QUIT\r\n" must not be a command */
    r = exchange(fd, "BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n", 2);
    CHECK(strstr(r, "503 5.5.1") != NULL);
    CHECK(strstr(r, "250 2.0.0 Ok") != NULL);
    CHECK(strstr(r, "221") == NULL);
    close(fd);
}

static void
mail_parameters_are_checked(void)
{
    int fd = client_authenticated();

    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org> SIZE=999999999\r\n", 1), "552 5.3.4"));
    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org> BODY=BINARYMIME\r\n", 1), "555 5.5.4"));
    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org> MT-PRIORITY=1\r\n", 1), "555 5.5.4"));
    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org> RET=BODY\r\n", 1),
                 "501 5.5.4 Bad RET"));
    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org> RET=FULL RET=HDRS\r\n", 1),
                 "501 5.5.4 Duplicate DSN parameter"));
    CHECK(strstr(exchange(fd, "MAIL FROM:<\xc3\xa4nn@example.org>\r\n", 1), "553 5.6.7"));
    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org> SMTPUTF8 BODY=8BITMIME SIZE=10\r\n",
                          1), "250 2.1.0"));
    CHECK(strstr(exchange(fd, "MAIL FROM:<ann@example.org>\r\n", 1), "503 5.5.1 Nested"));
    CHECK(strstr(exchange(fd, "DATA\r\n", 1), "554 5.5.1 No valid recipients"));
    close(fd);
}

/* ---- memory for messages (core/util/inflight.h, core/smtp/smtp_budget.c) ---- */

/* RFC 2920 3.1: a client that pipelines and reads nothing. With the kernel holding only a
 * few KiB of replies (the session's SO_SNDBUF made small), the session stops taking input
 * once SMTP_SESSION_OUT_HIGH (64 KiB) of replies wait, instead of holding up to 1 MiB and
 * dropping the rest; when the client reads, every reply comes, in order. */
static void
a_client_that_does_not_read_its_replies_is_not_read_either(void)
{
    enum { N = 9000 };             /* NOOPs: under max_commands; 126,000 octets of replies */
    static char cmds[N * 6 + 1], got[256];
    int                  sv[2], small = 4096, finals = 0, bad = 0;
    size_t               off = 0, len = 0, most = 0;
    struct smtp_session *s;
    double               deadline;

    for (int i = 0; i < N; i++)
        memcpy(cmds + 6 * i, "NOOP\r\n", 6);
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    s = smtp_session_new(&worker->server, &cfg->listeners[0], sv[1]);
    replies(sv[0], 1);
    /* Send it all, never reading, and let the loop run until nothing moves for 100 ms. */
    deadline = now() + 5;
    while (off < sizeof(cmds) - 1 && now() < deadline) {
        ssize_t n = write(sv[0], cmds + off, sizeof(cmds) - 1 - off);

        off += n > 0 ? (size_t)n : 0;
        ev_run(worker->loop, EVRUN_NOWAIT);
        most = buf_used(&s->conn->out) > most ? buf_used(&s->conn->out) : most;
    }
    CHECK_EQ_INT(off, sizeof(cmds) - 1);
    for (double until = now() + 0.1; now() < until;) {
        ev_run(worker->loop, EVRUN_NOWAIT);
        most = buf_used(&s->conn->out) > most ? buf_used(&s->conn->out) : most;
    }
    CHECK(s->out_paused);
    CHECK(buf_used(&s->conn->in) > 0); /* what it sent waits, unprocessed */
    CHECK(most < 64 * 1024 + 64);      /* one reply past the mark at most */
    /* Read: all N replies, each "250 2.0.0 Ok", and the session takes the rest. */
    deadline = now() + 10;
    while (finals < N && now() < deadline) {
        ssize_t n = read(sv[0], got + len, sizeof(got) - 1 - len);
        char   *line, *end;

        ev_run(worker->loop, EVRUN_NOWAIT);
        if (n <= 0)
            continue;
        len += (size_t)n;
        got[len] = '\0';
        for (line = got; (end = strstr(line, "\r\n")) != NULL; line = end + 2) {
            bad += (end - line != 12 || memcmp(line, "250 2.0.0 Ok", 12) != 0);
            finals++;
        }
        len -= (size_t)(line - got);
        memmove(got, line, len);
    }
    CHECK_EQ_INT(finals, N);
    CHECK_EQ_INT(bad, 0);
    CHECK(!s->out_paused);
    CHECK(strstr(exchange(sv[0], "QUIT\r\n", 1), "221 ") != NULL);
    close(sv[0]);
}

static size_t
inflight_bytes(void)
{
    struct inflight_stats st;

    inflight_stats(daemon_.inflight, &st);
    return st.bytes;
}

/* Run the loop until the budget holds at least (or, exact, exactly) want octets, or 5 s. */
static size_t
wait_inflight(size_t want, bool exact)
{
    double deadline = now() + 5;

    while ((exact ? inflight_bytes() != want : inflight_bytes() < want) && now() < deadline) {
        ev_run(worker->loop, EVRUN_NOWAIT);
        usleep(1000);
    }
    return inflight_bytes();
}

/* n octets of message text in 80-octet lines, NUL-terminated; the caller frees. */
static char *
body_of(size_t n)
{
    char *b = malloc(n + 1);

    for (size_t i = 0; i < n; i++)
        b[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : 'x';
    b[n] = '\0';
    return b;
}

static void
every_way_out_of_a_transaction_gives_its_memory_back(void)
{
    int   fd = client_authenticated();
    char *body = body_of(300 * 80);

    CHECK_EQ_INT(inflight_bytes(), 0);
    exchange(fd, "MAIL FROM:<ann@example.org>\r\n", 1);
    CHECK_EQ_INT(inflight_bytes(), 65536); /* the first chunk, at MAIL */
    CHECK(strstr(exchange(fd, "RSET\r\n", 1), "250 2.0.0") != NULL);
    CHECK_EQ_INT(inflight_bytes(), 0);
    exchange(fd, "MAIL FROM:<ann@example.org>\r\n", 1);
    CHECK(strstr(exchange(fd, "EHLO client.test\r\n", 1), "250") != NULL);
    CHECK_EQ_INT(inflight_bytes(), 0);
    /* the upstream (a closed port) fails: 4xx, and the message's memory is back */
    exchange(fd, "MAIL FROM:<ann@example.org>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n", 3);
    send_str(fd, body);
    CHECK(strstr(exchange(fd, ".\r\n", 1), "451 4.4.") != NULL);
    CHECK_EQ_INT(inflight_bytes(), 0);
    /* BDAT: a chunk received, the next one never comes: QUIT is inside it, so close */
    exchange(fd, "MAIL FROM:<ann@example.org>\r\nRCPT TO:<a@x.test>\r\n", 2);
    send_str(fd, "BDAT 24000\r\n");
    send_str(fd, body);
    CHECK(strstr(replies(fd, 1), "250 2.0.0 24000 octets received") != NULL);
    CHECK(inflight_bytes() >= 24000);
    send_str(fd, "BDAT 100000 LAST\r\n");
    send_str(fd, body);
    CHECK(wait_inflight(48000, false) >= 48000);
    close(fd); /* mid-chunk */
    CHECK_EQ_INT(wait_inflight(0, true), 0);
    /* DATA: the client goes away in the middle of its message */
    fd = client_authenticated();
    exchange(fd, "MAIL FROM:<ann@example.org>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n", 3);
    send_str(fd, body);
    CHECK(wait_inflight(24000, false) >= 24000);
    close(fd);
    CHECK_EQ_INT(wait_inflight(0, true), 0);
    /* QUIT with a transaction open */
    fd = client_authenticated();
    exchange(fd, "MAIL FROM:<ann@example.org>\r\n", 1);
    CHECK(strstr(exchange(fd, "QUIT\r\n", 1), "221") != NULL);
    close(fd);
    CHECK_EQ_INT(wait_inflight(0, true), 0);
    free(body);
}

static void
a_message_past_the_clients_share_gets_452_4_3_1_and_the_session_goes_on(void)
{
    int         fd = client_authenticated();
    char       *body = body_of(7000 * 80); /* 560000 > T_INFLIGHT_SHARE */
    const char *r;

    exchange(fd, "MAIL FROM:<ann@example.org>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n", 3);
    send_str(fd, body);
    r = exchange(fd, ".\r\nNOOP\r\n", 2);
    CHECK(strcmp(r, "452 4.3.1 Mail system full: too much mail in transit from your address, "
                    "try again later\r\n250 2.0.0 Ok\r\n") == 0);
    CHECK_EQ_INT(inflight_bytes(), 0);
    /* a declared SIZE over what is free: at once, before any octet */
    r = exchange(fd, "MAIL FROM:<ann@example.org> SIZE=560000\r\n", 1);
    CHECK(strstr(r, "452 4.3.1 Mail system full: too much") == r);
    CHECK_EQ_INT(inflight_bytes(), 0);
    /* BDAT: a chunk that cannot fit is read, not kept, and the transaction ends */
    exchange(fd, "MAIL FROM:<ann@example.org>\r\nRCPT TO:<a@x.test>\r\n", 2);
    send_str(fd, "BDAT 560000\r\n");
    send_str(fd, body);
    r = exchange(fd, "NOOP\r\n", 2);
    CHECK(strstr(r, "452 4.3.1 Mail system full: too much") == r);
    CHECK(strstr(r, "\r\n250 2.0.0 Ok\r\n") != NULL);
    CHECK(strstr(exchange(fd, "BDAT 0 LAST\r\n", 1), "503 5.5.1") != NULL);
    CHECK_EQ_INT(inflight_bytes(), 0);
    close(fd);
    CHECK_EQ_INT(wait_inflight(0, true), 0);
    free(body);
}

static void
a_client_at_its_share_gets_452_at_mail_from_until_its_message_ends(void)
{
    int   a = client_authenticated(), b = client_authenticated();
    char *body = body_of(5600 * 80); /* 448000: held in 524288 = the whole share */

    exchange(a, "MAIL FROM:<ann@example.org>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n", 3);
    send_str(a, body);
    CHECK_EQ_INT(wait_inflight(T_INFLIGHT_SHARE, false), T_INFLIGHT_SHARE);
    CHECK(strstr(exchange(b, "MAIL FROM:<ann@example.org>\r\n", 1),
                 "452 4.3.1 Mail system full: too much mail in transit from your address")
          != NULL);
    CHECK(strstr(exchange(a, ".\r\n", 1), "451 4.4.") != NULL); /* the upstream is down */
    CHECK_EQ_INT(inflight_bytes(), 0);
    CHECK(strstr(exchange(b, "MAIL FROM:<ann@example.org>\r\n", 1), "250 2.1.0") != NULL);
    close(a);
    close(b);
    CHECK_EQ_INT(wait_inflight(0, true), 0);
    free(body);
}

static void
too_many_errors_end_the_session_with_421(void)
{
    int         fd = client_new();
    const char *r;

    replies(fd, 1);
    r = exchange(fd, "X1\r\nX2\r\nX3\r\nX4\r\nX5\r\nX6\r\nX7\r\nX8\r\nX9\r\n", 8);
    CHECK(strstr(r, "500 5.5.2 Command unrecognized") != NULL);
    CHECK(strstr(r, "421 4.7.0 Too many errors") != NULL);
    close(fd);
}

static void
starttls_is_refused_where_not_offered(void)
{
    int fd = client_new();

    replies(fd, 1);
    exchange(fd, "EHLO c\r\n", 1);
    CHECK(strstr(exchange(fd, "STARTTLS\r\n", 1), "503 5.5.1") != NULL);
    close(fd);
}

static void
quit_says_221_and_closes(void)
{
    int         fd = client_new();
    const char *r;
    char        b;

    replies(fd, 1);
    r = exchange(fd, "QUIT\r\nNOOP\r\n", 1);
    CHECK(strcmp(r, "221 2.0.0 Bye\r\n") == 0);
    ev_run(worker->loop, EVRUN_NOWAIT);
    CHECK(read(fd, &b, 1) == 0);
    close(fd);
}

/* ---- on_disconnect that waits ------------------------------------------------------ */

/* A worker of its own whose one policy's on_disconnect sleeps for the milliseconds the
 * EHLO name says (napN), then logs test.bye: what policies/ratelimit.lua's limiter does
 * there once its zone yields (Redis). Its own iplimit, so that the sessions the tests
 * above left to the other worker do not count. */
static struct daemon  bye_daemon;
static struct worker *bye;

static const char bye_policy[] =
    "local sluice = require('sluice')\n"
    "return { on_disconnect = function(session, reason)\n"
    "  local ms = tonumber((session.helo or ''):match('^nap(%d+)$')) or 0\n"
    "  sluice.sleep(ms / 1000)\n"
    "  sluice.log('notice', 'test.bye', { reason = reason })\n"
    "end }\n";

static struct generation *
bye_generation(unsigned id)
{
    char               conf[1024], path[512], err[512];
    struct generation *g;

    snprintf(path, sizeof(path), "%s/bye.lua", tmpdir);
    test_write_file(NULL, path, bye_policy);
    snprintf(conf, sizeof(conf),
             "return { hostname = 'bye.test', workers = 1, insecure = true, users_dir = '%s/users',\n"
             "  listeners = { { name = 'plain', address = '127.0.0.1', port = 1, tls = 'none' } },\n"
             "  upstreams = { default = { { host = '127.0.0.1', port = 1, tls = 'none' } } },\n"
             "  hook_timeout = 8, timeouts = { drain = 1 },\n"
             "  policies = { '%s' } }\n",
             tmpdir, path);
    snprintf(path, sizeof(path), "%s/bye.conf.lua", tmpdir);
    test_write_file(NULL, path, conf);
    g = generation_load(path, id, err, sizeof(err));
    if (g == NULL) {
        fprintf(stderr, "bye config: %s\n", err);
        exit(1);
    }
    return g;
}

static void
bye_start(void)
{
    char err[512];

    bye_daemon = daemon_;
    bye_daemon.gen = bye_generation(1);
    bye_daemon.iplimit = iplimit_new(100, 100);
    bye = worker_new(0, &bye_daemon, NULL, NULL, 0, err, sizeof(err));
    if (bye == NULL) {
        fprintf(stderr, "bye: %s\n", err);
        exit(1);
    }
}

static void
bye_stop(void)
{
    worker_free(bye); /* frees what is left, a waiting on_disconnect included */
    bye = NULL;
    iplimit_free(bye_daemon.iplimit);
    generation_unref(bye_daemon.gen);
}

static void
wake_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)t, (void)revents;
}

/* Run bye's loop one event at a time until done() (a watchdog wakes it every 50 ms; it
 * synchronises nothing): false after 5 s. */
static bool
bye_drive_until(bool (*done)(void))
{
    ev_timer wake;
    double   deadline = now() + 5;

    ev_timer_init(&wake, wake_cb, 0.05, 0.05);
    ev_timer_start(bye->loop, &wake);
    while (!done() && now() < deadline)
        ev_run(bye->loop, EVRUN_ONCE);
    ev_timer_stop(bye->loop, &wake);
    return done();
}

static bool
bye_has_no_session(void)
{
    return bye->sessions == NULL;
}

static bool
bye_is_draining(void)
{
    return bye->draining;
}

static bool
bye_has_old_generation(void)
{
    return bye->old != NULL;
}

static bool
bye_has_no_old_generation(void)
{
    return bye->old == NULL;
}

/* A client of bye's says EHLO napMS and QUIT, and reads until the server has closed the
 * connection: true once it has (with 221 before). */
static bool
bye_client_quits(int ms)
{
    char   cmds[64], buf[4096];
    size_t len = 0;
    double deadline = now() + 5;
    int    sv[2];

    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
    smtp_session_new(&bye->server, &bye->gen->cfg->listeners[0], sv[1]);
    snprintf(cmds, sizeof(cmds), "EHLO nap%d\r\nQUIT\r\n", ms);
    if (write(sv[0], cmds, strlen(cmds)) != (ssize_t)strlen(cmds))
        return false;
    while (now() < deadline) {
        ssize_t n = read(sv[0], buf + len, sizeof(buf) - 1 - len);

        if (n == 0)
            break;
        if (n > 0)
            len += (size_t)n;
        else
            ev_run(bye->loop, EVRUN_NOWAIT);
    }
    close(sv[0]);
    buf[len] = '\0';
    return strstr(buf, "\r\n221 2.0.0 Bye\r\n") != NULL;
}

/* What the log holds so far, while the capture goes on. */
static const char *
captured_so_far(void)
{
    static char buf[65536];
    ssize_t     n;

    fflush(stderr);
    n = pread(test_capture_fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void
on_disconnect_waits_after_the_connection_is_closed_and_released(void)
{
    struct smtp_session *s;
    const char          *log, *closed, *bye_line;

    bye_start();
    test_capture_start();
    CHECK(bye_client_quits(300)); /* the client saw the close ... */
    s = bye->sessions;            /* ... while the session waits for on_disconnect */
    CHECK(s != NULL && s->state == SMTP_STATE_DISCONNECTED);
    CHECK(s != NULL && s->conn == NULL && !s->counted);
    CHECK_EQ_INT(bye->n_sessions, 1);
    CHECK_EQ_INT(iplimit_total(bye_daemon.iplimit), 0);
    log = captured_so_far();
    CHECK(strstr(log, "\"event\":\"session.close\"") != NULL);
    CHECK(strstr(log, "test.bye") == NULL);
    CHECK(bye_drive_until(bye_has_no_session));
    log = test_capture_end();
    closed = strstr(log, "\"event\":\"session.close\"");
    bye_line = strstr(log, "\"event\":\"test.bye\"");
    CHECK(closed != NULL && bye_line != NULL && closed < bye_line);
    CHECK(strstr(log, "\"reason\":\"Bye\"}") != NULL); /* the policy's line has the reason */
    CHECK(strstr(log, "policy.") == NULL);              /* no error, nothing cancelled */
    bye_stop();
}

static void
a_hard_shutdown_cancels_a_waiting_on_disconnect_and_frees_at_once(void)
{
    const char *log;

    bye_start();
    CHECK(bye_client_quits(5000));
    CHECK_EQ_INT(bye->n_sessions, 1);
    test_capture_start();
    bye_stop(); /* worker_free: ASan sees any leak or touch of the freed session */
    log = test_capture_end();
    CHECK(strstr(log, "\"event\":\"policy.cancel\"") != NULL);
    CHECK(strstr(log, "\"hook\":\"on_disconnect\",\"reason\":\"shutdown\"") != NULL);
    CHECK(strstr(log, "test.bye") == NULL);
}

static void
a_drain_waits_for_a_waiting_on_disconnect(void)
{
    const char *log;

    bye_start();
    test_capture_start();
    CHECK(bye_client_quits(300));
    worker_drain(bye);
    CHECK(bye_drive_until(bye_is_draining));
    CHECK_EQ_INT(bye->n_sessions, 1);             /* not cut: it is a session */
    CHECK(ev_is_active(&bye->drain_timer));       /* the drain is not over */
    CHECK(bye_drive_until(bye_has_no_session));
    CHECK(!ev_is_active(&bye->drain_timer));      /* now it is */
    log = test_capture_end();
    CHECK(strstr(log, "\"event\":\"test.bye\"") != NULL);
    CHECK(strstr(log, "policy.cancel") == NULL);
    bye_stop();
}

static void
the_drain_timeout_cancels_a_waiting_on_disconnect(void)
{
    const char *log;

    bye_start();
    test_capture_start();
    CHECK(bye_client_quits(5000)); /* timeouts.drain is 1 s */
    worker_drain(bye);
    CHECK(bye_drive_until(bye_has_no_session));
    log = test_capture_end();
    CHECK(strstr(log, "\"event\":\"worker.drain_timeout\"") != NULL);
    CHECK(strstr(log, "\"hook\":\"on_disconnect\",\"reason\":\"drain timeout\"") != NULL);
    CHECK(strstr(log, "test.bye") == NULL);
    bye_stop();
}

static void
a_reload_while_on_disconnect_waits_keeps_its_generation(void)
{
    struct generation *next;
    struct worker_gen *first;
    char               err[512];

    bye_start();
    first = bye->gen;
    test_capture_start();
    CHECK(bye_client_quits(300));
    next = bye_generation(2);
    worker_set_gen(bye, worker_gen_new(next, bye->loop, NULL, NULL, NULL, NULL, err,
                                           sizeof(err)));
    generation_unref(next); /* the worker_gen holds its own */
    CHECK(bye_drive_until(bye_has_old_generation) && bye->old == first);
    CHECK_EQ_INT(first->sessions, 1); /* pinned by the session that waits */
    CHECK(bye_drive_until(bye_has_no_session));
    CHECK(bye_drive_until(bye_has_no_old_generation)); /* reaped once that session went */
    CHECK(strstr(test_capture_end(), "\"event\":\"test.bye\"") != NULL);
    bye_stop();
}

/* docs/smtp.md's state diagram, as the transition table generates it. */
#define DOCS_PATH  SLUICE_SOURCE_DIR "/docs/smtp.md"
#define BEGIN_MARK "<!-- state diagram: generated from core/smtp/smtp_session.c -->\n"
#define END_MARK   "<!-- end of state diagram -->\n"

static void
diagram(char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "```mermaid\nstateDiagram-v2\n    [*] --> NEW\n");

    for (size_t i = 0; i < smtp_session_n_transitions && n < len; i++) {
        const struct smtp_transition *t = &smtp_session_transitions[i];

        n += (size_t)snprintf(out + n, len - n, "    %s --> %s: %s\n",
                              smtp_session_state_name(t->from), smtp_session_state_name(t->to),
                              t->event);
    }
    if (n < len)
        n += (size_t)snprintf(out + n, len - n, "```\n");
    CHECK(n < len);
}

/* After changing the table: SLUICE_REGEN_DOCS=1 build/test_smtp_session rewrites it. */
static void
docs_smtp_md_draws_exactly_the_transition_table(void)
{
    static char want[16384];

    diagram(want, sizeof(want));
    CHECK(test_docs_section(DOCS_PATH, BEGIN_MARK, END_MARK, want) == 0);
}

static void
every_state_has_a_name_and_every_state_but_new_a_way_in(void)
{
    for (int st = 0; st < SMTP_STATE_COUNT; st++) {
        bool entered = false;

        CHECK(strcmp(smtp_session_state_name((enum smtp_state)st), "?") != 0);
        for (size_t i = 0; i < smtp_session_n_transitions; i++)
            entered = entered || smtp_session_transitions[i].to == (enum smtp_state)st;
        CHECK(entered == (st != SMTP_STATE_NEW));
    }
}

static void
the_table_allows_its_transitions_and_no_others(void)
{
    CHECK(smtp_session_may_enter(SMTP_STATE_CMD, SMTP_STATE_DATA));
    CHECK(smtp_session_may_enter(SMTP_STATE_POLICY, SMTP_STATE_CMD));
    CHECK(smtp_session_may_enter(SMTP_STATE_AUTH, SMTP_STATE_AUTH)); /* staying */
    CHECK(!smtp_session_may_enter(SMTP_STATE_CLOSING, SMTP_STATE_CMD));
    CHECK(!smtp_session_may_enter(SMTP_STATE_DATA, SMTP_STATE_RELAY));
    CHECK(!smtp_session_may_enter(SMTP_STATE_NEW, SMTP_STATE_DATA));
    /* The connection can close in any state, and then nothing but on_disconnect is left;
     * CLOSING is the end of the conversation. */
    for (int st = 0; st < SMTP_STATE_COUNT; st++) {
        CHECK(smtp_session_may_enter((enum smtp_state)st, SMTP_STATE_DISCONNECTED));
        CHECK(st == SMTP_STATE_DISCONNECTED ||
              !smtp_session_may_enter(SMTP_STATE_DISCONNECTED, (enum smtp_state)st));
        CHECK(st == SMTP_STATE_CLOSING || st == SMTP_STATE_DISCONNECTED ||
              !smtp_session_may_enter(SMTP_STATE_CLOSING, (enum smtp_state)st));
    }
}

/* In a debug build (the ASan one the tests run under) a change the table does not allow
 * stops the process: a bug, not a client's doing. */
static void
entering_a_state_the_table_does_not_allow_trips_an_assert(void)
{
    CHECK(!smtp_session_may_enter(SMTP_STATE_CLOSING, SMTP_STATE_CMD));
#ifndef NDEBUG /* the assert itself: debug builds (ASan, TSan) */
    pid_t pid = fork();
    int   status = 0;

    if (pid == 0) {
        struct smtp_session s = {.id = 1, .state = SMTP_STATE_CLOSING};

        signal(SIGABRT, SIG_DFL);
        freopen("/dev/null", "w", stderr);
        smtp_session_enter(&s, SMTP_STATE_CMD);
        _exit(0);
    }
    CHECK(pid > 0);
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
}

int
main(void)
{
    setup();
    RUN(greeting_names_the_host_and_ehlo_lists_the_extensions);
    RUN(ehlo_takes_domains_and_literals_but_not_header_syntax);
    RUN(mail_before_ehlo_and_before_auth_are_refused);
    RUN(commands_out_of_sequence_get_their_exact_replies);
    RUN(a_pipelined_batch_is_answered_in_order);
    RUN(bare_lf_and_overlong_lines_get_500_and_the_session_goes_on);
    RUN(auth_lines_may_be_12288_octets_but_not_more);
    RUN(wrong_password_and_unknown_user_get_the_same_535);
    RUN(auth_cancel_unknown_mechanism_and_second_auth_are_refused);
    RUN(sender_outside_the_authenticated_domain_gets_550_5_7_1);
    RUN(recipients_beyond_the_limit_get_452_4_5_3);
    RUN(smuggled_end_of_data_is_not_an_end_and_the_message_is_refused);
    RUN(a_refused_bdat_chunk_is_read_and_not_executed);
    RUN(mail_parameters_are_checked);
    RUN(every_way_out_of_a_transaction_gives_its_memory_back);
    RUN(a_message_past_the_clients_share_gets_452_4_3_1_and_the_session_goes_on);
    RUN(a_client_at_its_share_gets_452_at_mail_from_until_its_message_ends);
    RUN(too_many_errors_end_the_session_with_421);
    RUN(starttls_is_refused_where_not_offered);
    RUN(quit_says_221_and_closes);
    RUN(on_disconnect_waits_after_the_connection_is_closed_and_released);
    RUN(a_hard_shutdown_cancels_a_waiting_on_disconnect_and_frees_at_once);
    RUN(a_drain_waits_for_a_waiting_on_disconnect);
    RUN(the_drain_timeout_cancels_a_waiting_on_disconnect);
    RUN(a_reload_while_on_disconnect_waits_keeps_its_generation);
    RUN(a_client_that_does_not_read_its_replies_is_not_read_either);
    RUN(docs_smtp_md_draws_exactly_the_transition_table);
    RUN(every_state_has_a_name_and_every_state_but_new_a_way_in);
    RUN(the_table_allows_its_transitions_and_no_others);
    RUN(entering_a_state_the_table_does_not_allow_trips_an_assert);
    worker_free(worker);
    offload_free(daemon_.offload);
    iplimit_free(daemon_.iplimit);
    inflight_free(daemon_.inflight);
    generation_unref(daemon_.gen);
    return check_summary();
}
