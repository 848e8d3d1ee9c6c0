/* tests/unit/test_shdict.c: core/store/shdict.c -- values in and out, bounds, TTL against a fake
 * clock, incr and add semantics, eviction order under memory pressure (SHDICT_EVICT), and
 * refusal without eviction (SHDICT_REFUSE: every entry kept, the bound held under
 * concurrency), many keys over many shards, the sweep and key walk, and exact sums from
 * concurrent incr (run this under TSan too). */
#include "check.h"
#include "store/shdict.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define T0 1000.0 /* the fake clock's start; tests move it forward by hand */

static struct shdict *
dict_full(size_t max_bytes, unsigned nshards, enum shdict_full full)
{
    char           err[128] = "";
    struct shdict *d = shdict_new(max_bytes, nshards, full, err, sizeof(err));

    if (d == NULL) {
        fprintf(stderr, "shdict_new: %s\n", err);
        abort();
    }
    return d;
}

/* A dictionary that evicts. */
static struct shdict *
dict(size_t max_bytes, unsigned nshards)
{
    return dict_full(max_bytes, nshards, SHDICT_EVICT);
}

/* A dictionary that never evicts. */
static struct shdict *
refusing(size_t max_bytes, unsigned nshards)
{
    return dict_full(max_bytes, nshards, SHDICT_REFUSE);
}

static enum shdict_rc
set_num(struct shdict *d, const char *key, double num, double ttl, double now)
{
    struct shdict_value v = {.type = SHDICT_NUMBER, .num = num};

    return shdict_set(d, key, strlen(key), &v, ttl, now);
}

static enum shdict_rc
set_str(struct shdict *d, const char *key, const char *s, size_t len, double ttl, double now)
{
    struct shdict_value v = {.type = SHDICT_STRING, .str = s, .len = len};

    return shdict_set(d, key, strlen(key), &v, ttl, now);
}

static enum shdict_rc
get(struct shdict *d, const char *key, struct shdict_value *out, double now)
{
    return shdict_get(d, key, strlen(key), out, now);
}

static bool
has(struct shdict *d, const char *key, double now)
{
    struct shdict_value v = {0};

    return get(d, key, &v, now) == SHDICT_OK;
}

/* The number under key, or -1 if it is missing or not a number. */
static double
num_of(struct shdict *d, const char *key, double now)
{
    struct shdict_value v = {0};

    return get(d, key, &v, now) == SHDICT_OK && v.type == SHDICT_NUMBER ? v.num : -1;
}

static enum shdict_rc
incr(struct shdict *d, const char *key, double by, double init, double ttl, double now,
     double *out)
{
    return shdict_incr(d, key, strlen(key), by, init, ttl, now, out);
}

static struct shdict_stats
stats(struct shdict *d)
{
    struct shdict_stats st;

    shdict_stats(d, &st);
    return st;
}

/* ---- values ---- */

static void
a_number_set_is_got_back_until_deleted(void)
{
    struct shdict      *d = dict(1 << 20, 4);
    struct shdict_value v = {0};

    CHECK_EQ_INT(set_num(d, "answer", 42.5, 0, T0), SHDICT_OK);
    CHECK_EQ_INT(get(d, "answer", &v, T0), SHDICT_OK);
    CHECK_EQ_INT(v.type, SHDICT_NUMBER);
    CHECK(v.num == 42.5);
    CHECK(v.expires == 0);
    CHECK_EQ_INT(shdict_delete(d, "answer", 6, T0), SHDICT_OK);
    CHECK_EQ_INT(get(d, "answer", &v, T0), SHDICT_NOT_FOUND);
    CHECK_EQ_INT(shdict_delete(d, "answer", 6, T0), SHDICT_NOT_FOUND);
    CHECK_EQ_INT(get(d, "never-set", &v, T0), SHDICT_NOT_FOUND);
    shdict_free(d);
}

static void
strings_and_keys_are_binary_safe(void)
{
    struct shdict      *d = dict(1 << 20, 4);
    const char          key[] = {'a', 0, 'b'}, key2[] = {'a', 0, 'c'};
    const char          val[] = {0, 1, 0, (char)0xff, '\r', '\n'};
    char                buf[16];
    struct shdict_value in = {.type = SHDICT_STRING, .str = val, .len = sizeof(val)};
    struct shdict_value out = {.buf = buf, .cap = sizeof(buf)};

    CHECK_EQ_INT(shdict_set(d, key, sizeof(key), &in, 0, T0), SHDICT_OK);
    CHECK_EQ_INT(shdict_get(d, key, sizeof(key), &out, T0), SHDICT_OK);
    CHECK_EQ_INT(out.type, SHDICT_STRING);
    CHECK_EQ_INT(out.len, sizeof(val));
    CHECK(out.str == buf && memcmp(out.str, val, sizeof(val)) == 0);
    /* a key differing only after the NUL is another key */
    CHECK_EQ_INT(shdict_get(d, key2, sizeof(key2), &out, T0), SHDICT_NOT_FOUND);
    CHECK_EQ_INT(shdict_get(d, key, 1, &out, T0), SHDICT_NOT_FOUND);
    shdict_free(d);
}

static void
an_empty_string_is_a_value_not_a_deletion(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    struct shdict_value out = {0};

    CHECK_EQ_INT(set_str(d, "e", "", 0, 0, T0), SHDICT_OK);
    CHECK_EQ_INT(get(d, "e", &out, T0), SHDICT_OK); /* cap 0, buf NULL is enough */
    CHECK_EQ_INT(out.type, SHDICT_STRING);
    CHECK_EQ_INT(out.len, 0);
    shdict_free(d);
}

static void
get_into_a_short_buffer_copies_nothing_and_says_how_long(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    char                small[4] = "xxx", big[16];
    struct shdict_value out = {.buf = small, .cap = sizeof(small)};

    set_str(d, "k", "hello", 5, 0, T0);
    CHECK_EQ_INT(get(d, "k", &out, T0), SHDICT_TOO_SMALL);
    CHECK_EQ_INT(out.len, 5);
    CHECK(memcmp(small, "xxx", 4) == 0);
    out.buf = big;
    out.cap = out.len;
    CHECK_EQ_INT(get(d, "k", &out, T0), SHDICT_OK);
    CHECK_MEM(out.str, out.len, "hello");
    shdict_free(d);
}

static void
set_replaces_the_value_and_its_type(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    char                buf[8];
    struct shdict_value out = {.buf = buf, .cap = sizeof(buf)};

    set_str(d, "k", "text", 4, 0, T0);
    set_num(d, "k", 7, 0, T0);
    CHECK(num_of(d, "k", T0) == 7);
    set_str(d, "k", "again", 5, 0, T0);
    CHECK_EQ_INT(get(d, "k", &out, T0), SHDICT_OK);
    CHECK_MEM(out.str, out.len, "again");
    CHECK_EQ_INT(stats(d).entries, 1);
    shdict_free(d);
}

static void
setting_nil_deletes_and_succeeds_even_when_absent(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    struct shdict_value nil = {.type = SHDICT_NIL};

    set_num(d, "k", 1, 0, T0);
    CHECK_EQ_INT(shdict_set(d, "k", 1, &nil, 0, T0), SHDICT_OK);
    CHECK(!has(d, "k", T0));
    CHECK_EQ_INT(shdict_set(d, "k", 1, &nil, 0, T0), SHDICT_OK);
    CHECK_EQ_INT(stats(d).entries, 0);
    shdict_free(d);
}

static void
keys_and_values_are_bounded(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    char               *big = calloc(1, SHDICT_MAX_VALUE + 1);
    char                key[SHDICT_MAX_KEY + 1];
    struct shdict_value v = {.type = SHDICT_STRING, .str = big};
    struct shdict_value out = {.buf = big, .cap = SHDICT_MAX_VALUE};

    memset(key, 'k', sizeof(key));
    v.len = 1;
    CHECK_EQ_INT(shdict_set(d, key, 0, &v, 0, T0), SHDICT_BAD_KEY);
    CHECK_EQ_INT(shdict_set(d, key, SHDICT_MAX_KEY + 1, &v, 0, T0), SHDICT_BAD_KEY);
    CHECK_EQ_INT(shdict_get(d, key, SHDICT_MAX_KEY + 1, &out, T0), SHDICT_BAD_KEY);
    CHECK_EQ_INT(shdict_delete(d, key, 0, T0), SHDICT_BAD_KEY);
    v.len = SHDICT_MAX_VALUE + 1;
    CHECK_EQ_INT(shdict_set(d, key, SHDICT_MAX_KEY, &v, 0, T0), SHDICT_BAD_VALUE);
    v.len = SHDICT_MAX_VALUE;
    CHECK_EQ_INT(shdict_set(d, key, SHDICT_MAX_KEY, &v, 0, T0), SHDICT_OK);
    CHECK_EQ_INT(shdict_get(d, key, SHDICT_MAX_KEY, &out, T0), SHDICT_OK);
    CHECK_EQ_INT(out.len, SHDICT_MAX_VALUE);
    free(big);
    shdict_free(d);
}

static void
bad_ttls_and_unknown_types_are_refused(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    struct shdict_value odd = {.type = (enum shdict_type)99};
    double              n = 0;

    CHECK_EQ_INT(set_num(d, "k", 1, -1, T0), SHDICT_BAD_VALUE);
    CHECK_EQ_INT(set_num(d, "k", 1, NAN, T0), SHDICT_BAD_VALUE);
    CHECK_EQ_INT(set_num(d, "k", 1, INFINITY, T0), SHDICT_BAD_VALUE);
    CHECK_EQ_INT(shdict_set(d, "k", 1, &odd, 0, T0), SHDICT_BAD_VALUE);
    CHECK_EQ_INT(incr(d, "k", 1, 0, -5, T0, &n), SHDICT_BAD_VALUE);
    CHECK_EQ_INT(stats(d).entries, 0);
    CHECK(strcmp(shdict_rc_str(SHDICT_NO_MEMORY), "no memory") == 0);
    shdict_free(d);
}

static void
new_refuses_shard_counts_and_sizes_out_of_range(void)
{
    char err[128];

    err[0] = 0;
    CHECK(shdict_new(1 << 20, 0, SHDICT_EVICT, err, sizeof(err)) == NULL && err[0] != 0);
    err[0] = 0;
    CHECK(shdict_new(1 << 30, SHDICT_MAX_SHARDS + 1, SHDICT_REFUSE, err, sizeof(err)) == NULL &&
          err[0]);
    err[0] = 0;
    CHECK(shdict_new(4 * SHDICT_MIN_SHARD - 1, 4, SHDICT_EVICT, err, sizeof(err)) == NULL &&
          err[0]);
    shdict_free(NULL);
}

/* ---- TTL ---- */

static void
an_entry_expires_exactly_at_its_ttl(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    struct shdict_value v = {0};

    set_num(d, "k", 1, 10, T0);
    CHECK_EQ_INT(get(d, "k", &v, T0 + 9.999), SHDICT_OK);
    CHECK(v.expires == T0 + 10);
    CHECK_EQ_INT(get(d, "k", &v, T0 + 10), SHDICT_NOT_FOUND);
    CHECK_EQ_INT(stats(d).entries, 0); /* removed when found expired */
    CHECK_EQ_INT(stats(d).expired, 1);
    shdict_free(d);
}

static void
ttl_zero_never_expires(void)
{
    struct shdict *d = dict(1 << 20, 1);

    set_num(d, "k", 1, 0, T0);
    CHECK(has(d, "k", T0 + 1e9));
    shdict_free(d);
}

static void
set_replaces_the_ttl_too(void)
{
    struct shdict *d = dict(1 << 20, 1);

    set_num(d, "k", 1, 10, T0);
    set_num(d, "k", 2, 0, T0 + 5);
    CHECK(num_of(d, "k", T0 + 100) == 2);
    set_num(d, "k", 3, 10, T0 + 100);
    CHECK(has(d, "k", T0 + 109));
    CHECK(!has(d, "k", T0 + 110));
    shdict_free(d);
}

static void
deleting_an_expired_key_is_not_found(void)
{
    struct shdict *d = dict(1 << 20, 1);

    set_num(d, "k", 1, 1, T0);
    CHECK_EQ_INT(shdict_delete(d, "k", 1, T0 + 1), SHDICT_NOT_FOUND);
    CHECK_EQ_INT(stats(d).entries, 0);
    shdict_free(d);
}

/* ---- incr ---- */

static void
incr_creates_a_missing_key_at_init_plus_by(void)
{
    struct shdict *d = dict(1 << 20, 1);
    double         n = -1;

    CHECK_EQ_INT(incr(d, "c", 1, 10, 0, T0, &n), SHDICT_OK);
    CHECK(n == 11);
    CHECK_EQ_INT(incr(d, "c", 1, 10, 0, T0, &n), SHDICT_OK);
    CHECK(n == 12);
    CHECK(num_of(d, "c", T0) == 12);
    shdict_free(d);
}

static void
incr_adds_fractions_and_negative_steps(void)
{
    struct shdict *d = dict(1 << 20, 1);
    double         n = 0;

    incr(d, "c", 0.5, 0, 0, T0, &n);
    incr(d, "c", 0.25, 0, 0, T0, &n);
    CHECK(n == 0.75);
    incr(d, "c", -2, 0, 0, T0, &n);
    CHECK(n == -1.25);
    set_num(d, "s", 1.5, 0, T0);
    CHECK_EQ_INT(incr(d, "s", 1, 100, 0, T0, &n), SHDICT_OK); /* init ignored when present */
    CHECK(n == 2.5);
    shdict_free(d);
}

static void
incr_does_not_refresh_the_ttl_so_windows_are_fixed(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    struct shdict_value v = {0};
    double              n = 0;

    incr(d, "win", 1, 0, 60, T0, &n);
    incr(d, "win", 1, 0, 60, T0 + 30, &n);
    incr(d, "win", 1, 0, 60, T0 + 59, &n);
    CHECK(n == 3);
    CHECK_EQ_INT(get(d, "win", &v, T0 + 59.5), SHDICT_OK);
    CHECK(v.expires == T0 + 60);
    CHECK(!has(d, "win", T0 + 60));
    shdict_free(d);
}

static void
incr_restarts_an_expired_counter_at_init_with_a_new_ttl(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    struct shdict_value v = {0};
    double              n = 0;

    incr(d, "win", 5, 0, 60, T0, &n);
    CHECK_EQ_INT(incr(d, "win", 1, 100, 60, T0 + 60, &n), SHDICT_OK);
    CHECK(n == 101);
    CHECK_EQ_INT(get(d, "win", &v, T0 + 61), SHDICT_OK);
    CHECK(v.expires == T0 + 120);
    CHECK_EQ_INT(stats(d).entries, 1);
    /* an expired string gives way to a counter too */
    set_str(d, "s", "x", 1, 1, T0);
    CHECK_EQ_INT(incr(d, "s", 1, 0, 0, T0 + 1, &n), SHDICT_OK);
    CHECK(n == 1);
    shdict_free(d);
}

static void
incr_on_a_string_is_an_error_and_leaves_it_alone(void)
{
    struct shdict      *d = dict(1 << 20, 1);
    char                buf[8];
    struct shdict_value out = {.buf = buf, .cap = sizeof(buf)};
    double              n = -7;

    set_str(d, "s", "12", 2, 0, T0);
    CHECK_EQ_INT(incr(d, "s", 1, 0, 0, T0, &n), SHDICT_NOT_NUMBER);
    CHECK(n == -7);
    CHECK_EQ_INT(get(d, "s", &out, T0), SHDICT_OK);
    CHECK_MEM(out.str, out.len, "12");
    shdict_free(d);
}

static void
incr_refuses_nan_which_would_pass_every_limit(void)
{
    struct shdict *d = dict(1 << 20, 1);
    double         n = 0;

    CHECK_EQ_INT(incr(d, "c", NAN, 0, 0, T0, &n), SHDICT_BAD_VALUE);
    CHECK_EQ_INT(incr(d, "c", 1, NAN, 0, T0, &n), SHDICT_BAD_VALUE);
    CHECK_EQ_INT(incr(d, "", 1, 0, 0, T0, &n), SHDICT_BAD_KEY);
    CHECK_EQ_INT(stats(d).entries, 0);
    shdict_free(d);
}

/* ---- memory ---- */

/* Set numbers k0000, k0001, ... in one shard until the first eviction. Returns how many
 * were set; k0000 is then the one evicted and the shard is full of live entries. */
static int
fill_until_eviction(struct shdict *d, double now)
{
    char key[16];
    int  i;

    for (i = 0; stats(d).evictions == 0; i++) {
        snprintf(key, sizeof(key), "k%04d", i);
        set_num(d, key, i, 0, now);
    }
    return i;
}

static bool
has_k(struct shdict *d, int i, double now)
{
    char key[16];

    snprintf(key, sizeof(key), "k%04d", i);
    return has(d, key, now);
}

static void
a_full_shard_evicts_the_oldest_first_and_stays_under_max_bytes(void)
{
    struct shdict      *d = dict(SHDICT_MIN_SHARD, 1);
    struct shdict_stats st;
    char                key[16];
    int                 survivors = 0, first = -1;

    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%04d", i);
        set_num(d, key, i, 0, T0);
        CHECK(stats(d).bytes <= SHDICT_MIN_SHARD);
    }
    for (int i = 0; i < 1000; i++) {
        if (has_k(d, i, T0)) {
            survivors++;
            if (first < 0)
                first = i;
        }
    }
    st = stats(d);
    CHECK(survivors > 10);
    CHECK_EQ_INT(first, 1000 - survivors); /* exactly the newest survive */
    CHECK_EQ_INT(st.entries, survivors);
    CHECK_EQ_INT(st.evictions, 1000 - survivors);
    shdict_free(d);
}

static void
get_and_incr_save_an_entry_from_eviction(void)
{
    struct shdict *d = dict(SHDICT_MIN_SHARD, 1);
    int            n = fill_until_eviction(d, T0);
    double         v;

    CHECK(!has_k(d, 0, T0));
    CHECK(has_k(d, 1, T0)); /* k0001 is now the most recent */
    set_num(d, "k9000", 0, 0, T0);
    CHECK(has_k(d, 1, T0));
    CHECK(!has_k(d, 2, T0));
    CHECK_EQ_INT(incr(d, "k0003", 1, 0, 0, T0, &v), SHDICT_OK);
    set_num(d, "k9001", 0, 0, T0);
    CHECK(has_k(d, 3, T0));
    CHECK(!has_k(d, 4, T0));
    CHECK(has_k(d, 5, T0) && has_k(d, n - 1, T0));
    CHECK_EQ_INT(stats(d).evictions, 3);
    shdict_free(d);
}

static void
expired_entries_are_evicted_before_live_ones(void)
{
    struct shdict      *d = dict(SHDICT_MIN_SHARD, 1);
    struct shdict_stats st;

    fill_until_eviction(d, T0);
    set_num(d, "t0000", 1, 5, T0); /* evicts k0001 */
    CHECK(has(d, "t0000", T0));   /* and is now the most recently used */
    set_num(d, "n0000", 1, 0, T0 + 10); /* same size as t0000, which has expired */
    st = stats(d);
    CHECK_EQ_INT(st.evictions, 2);
    CHECK_EQ_INT(st.expired, 1);
    CHECK(has_k(d, 2, T0 + 10)); /* the least recently used live entry survived */
    CHECK(!has(d, "t0000", T0 + 10));
    CHECK(has(d, "n0000", T0 + 10));
    shdict_free(d);
}

static void
a_value_larger_than_a_shard_fails_without_evicting(void)
{
    struct shdict *d = dict(2 * SHDICT_MIN_SHARD, 1);
    char          *big = calloc(1, 2 * SHDICT_MIN_SHARD);

    set_num(d, "keep", 1, 0, T0);
    CHECK_EQ_INT(set_str(d, "big", big, 2 * SHDICT_MIN_SHARD - 100, 0, T0), SHDICT_NO_MEMORY);
    CHECK(has(d, "keep", T0));
    CHECK_EQ_INT(stats(d).evictions, 0);
    free(big);
    shdict_free(d);
}

static void
bytes_return_to_baseline_when_entries_go(void)
{
    struct shdict *d = dict(1 << 20, 1);
    size_t         empty = stats(d).bytes;
    static char    big[10000];

    set_str(d, "a", big, sizeof(big), 0, T0);
    CHECK(stats(d).bytes >= empty + shdict_entry_size(1, sizeof(big)));
    set_str(d, "a", "x", 1, 0, T0);
    CHECK_EQ_INT(stats(d).bytes, empty + shdict_entry_size(1, 1));
    shdict_delete(d, "a", 1, T0);
    CHECK_EQ_INT(stats(d).bytes, empty);
    shdict_free(d);
}

/* ---- add ---- */

static void
add_stores_only_what_is_absent_or_expired(void)
{
    struct shdict      *d = dict(1 << 20, 4);
    struct shdict_value v = {.type = SHDICT_NUMBER, .num = 1};
    struct shdict_value w = {.type = SHDICT_NUMBER, .num = 2};

    CHECK_EQ_INT(shdict_add(d, "k", 1, &v, 10, T0), SHDICT_OK);
    CHECK_EQ_INT(shdict_add(d, "k", 1, &w, 100, T0 + 5), SHDICT_EXISTS);
    CHECK(num_of(d, "k", T0 + 9) == 1); /* value and TTL unchanged */
    CHECK(!has(d, "k", T0 + 10));
    CHECK_EQ_INT(shdict_add(d, "k", 1, &w, 0, T0 + 10), SHDICT_OK);
    CHECK(num_of(d, "k", T0 + 1000) == 2);
    v.type = SHDICT_NIL;
    CHECK_EQ_INT(shdict_add(d, "n", 1, &v, 0, T0), SHDICT_BAD_VALUE);
    shdict_free(d);
}

/* ---- SHDICT_REFUSE: never evicted ---- */

/* Fill d with k0000, k0001... until a set is refused; the number stored. */
static int
fill_until_refused(struct shdict *d, double ttl, double now)
{
    char key[16];
    int  i;

    for (i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "k%04d", i);
        if (set_num(d, key, i, ttl, now) != SHDICT_OK)
            break;
    }
    return i;
}

static void
a_full_refusing_dict_refuses_and_keeps_every_entry(void)
{
    struct shdict      *d = refusing(8 * SHDICT_MIN_SHARD, 4);
    struct shdict_stats st;
    int                 n = fill_until_refused(d, 0, T0);
    double              v;
    static char         big[600];

    CHECK(n > 100);
    st = stats(d);
    CHECK(st.bytes <= st.max_bytes);
    CHECK_EQ_INT(st.evictions, 0);
    CHECK_EQ_INT(st.refusals, 1);
    CHECK_EQ_INT(st.entries, n);
    for (int i = 0; i < n; i++)
        CHECK(has_k(d, i, T0)); /* not one pushed out */
    CHECK_EQ_INT(set_num(d, "another", 1, 0, T0), SHDICT_FULL);
    CHECK_EQ_INT(incr(d, "counter", 1, 0, 0, T0, &v), SHDICT_FULL);
    CHECK_EQ_INT(incr(d, "k0007", 1, 0, 0, T0, &v), SHDICT_OK); /* an existing one grows */
    CHECK(v == 8);
    /* a replacement that needs more room is refused, and the old value stays */
    CHECK_EQ_INT(set_str(d, "k0001", big, sizeof(big), 0, T0), SHDICT_FULL);
    CHECK(num_of(d, "k0001", T0) == 1);
    CHECK_EQ_INT(set_num(d, "k0001", 5, 0, T0), SHDICT_OK); /* the same size fits */
    CHECK_EQ_INT(stats(d).refusals, 4);
    CHECK_EQ_INT(stats(d).evictions, 0);
    /* a delete makes room for exactly one more */
    CHECK_EQ_INT(shdict_delete(d, "k0002", 5, T0), SHDICT_OK);
    CHECK_EQ_INT(set_num(d, "k9999", 1, 0, T0), SHDICT_OK);
    CHECK_EQ_INT(set_num(d, "k9998", 1, 0, T0), SHDICT_FULL);
    shdict_free(d);
}

static void
a_refusing_dict_removes_expired_entries_of_every_shard_before_refusing(void)
{
    struct shdict *d = refusing(8 * SHDICT_MIN_SHARD, 8);
    int            n = fill_until_refused(d, 60, T0), m;

    CHECK(!has(d, "new", T0));
    CHECK_EQ_INT(set_num(d, "new", 1, 0, T0 + 59), SHDICT_FULL);
    m = 0; /* all expired: a full dictionary's worth fits again */
    for (int i = 0; i < n; i++) {
        char key[16];

        snprintf(key, sizeof(key), "n%04d", i);
        m += set_num(d, key, i, 0, T0 + 60) == SHDICT_OK;
    }
    CHECK_EQ_INT(m, n);
    CHECK_EQ_INT(stats(d).expired, n);
    CHECK_EQ_INT(stats(d).evictions, 0);
    shdict_free(d);
}

static void
an_entry_larger_than_a_shard_share_is_refused_without_evicting_too(void)
{
    struct shdict *d = refusing(2 * SHDICT_MIN_SHARD, 1);
    char          *big = calloc(1, 2 * SHDICT_MIN_SHARD);

    set_num(d, "keep", 1, 0, T0);
    CHECK_EQ_INT(set_str(d, "big", big, 2 * SHDICT_MIN_SHARD - 100, 0, T0), SHDICT_NO_MEMORY);
    CHECK(has(d, "keep", T0));
    CHECK_EQ_INT(stats(d).refusals, 1);
    free(big);
    shdict_free(d);
}

/* The entry size the Lua double (lua/sluice/testing.lua) charges: keep them in step. */
static void
an_entry_is_charged_its_header_key_value_and_malloc_overhead(void)
{
    CHECK_EQ_INT(shdict_entry_size(0, 0), 72);
    CHECK_EQ_INT(shdict_entry_size(10, 5), 87);
}

/* ---- many keys, sweep, walk ---- */

static void
many_keys_over_many_shards_all_come_back(void)
{
    struct shdict      *d = dict(64u << 20, 64);
    struct shdict_stats st;
    char                key[32];
    int                 bad = 0;

    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "rl:user%d@example.org", i);
        bad += set_num(d, key, i, 0, T0) != SHDICT_OK;
    }
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "rl:user%d@example.org", i);
        bad += num_of(d, key, T0) != i;
        if (i % 2 == 0)
            bad += shdict_delete(d, key, strlen(key), T0) != SHDICT_OK;
    }
    CHECK_EQ_INT(bad, 0);
    st = stats(d);
    CHECK_EQ_INT(st.entries, 50000);
    CHECK_EQ_INT(st.evictions, 0);
    CHECK(st.bytes <= st.max_bytes);
    shdict_free(d);
}

static void
flush_expired_removes_only_expired_entries_up_to_max(void)
{
    struct shdict *d = dict(1 << 20, 8);
    char           key[16];

    for (int i = 0; i < 150; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        set_num(d, key, i, i < 100 ? 10 : 0, T0);
    }
    CHECK_EQ_INT(shdict_flush_expired(d, T0 + 9, 0), 0);
    CHECK_EQ_INT(shdict_flush_expired(d, T0 + 10, 30), 30);
    CHECK_EQ_INT(stats(d).entries, 120);
    CHECK_EQ_INT(shdict_flush_expired(d, T0 + 10, 0), 70);
    CHECK_EQ_INT(shdict_flush_expired(d, T0 + 10, 0), 0);
    CHECK_EQ_INT(stats(d).entries, 50);
    CHECK_EQ_INT(stats(d).expired, 100);
    CHECK(has(d, "k149", T0 + 1e6));
    shdict_free(d);
}

struct seen {
    int  n;
    int  stop_after; /* 0: never stop */
    char last[32];
};

static int
seen_cb(void *ctx, const char *key, size_t klen, const struct shdict_value *v)
{
    struct seen *s = ctx;

    (void)v;
    snprintf(s->last, sizeof(s->last), "%.*s", (int)klen, key);
    return ++s->n == s->stop_after;
}

static void
keys_walks_live_keys_with_the_prefix_and_can_stop(void)
{
    struct shdict *d = dict(1 << 20, 4);
    struct seen    s = {0};

    set_num(d, "rl:a", 1, 0, T0);
    set_str(d, "rl:b", "x", 1, 0, T0);
    set_num(d, "rl:c", 1, 5, T0); /* expired by the time of the walk */
    set_num(d, "rx:d", 1, 0, T0);
    set_num(d, "rl", 1, 0, T0);   /* shorter than the prefix */
    CHECK_EQ_INT(shdict_keys(d, "rl:", 3, T0 + 5, seen_cb, &s), 2);
    CHECK_EQ_INT(s.n, 2);
    CHECK(strncmp(s.last, "rl:", 3) == 0);
    memset(&s, 0, sizeof(s));
    CHECK_EQ_INT(shdict_keys(d, NULL, 0, T0 + 5, seen_cb, &s), 4);
    memset(&s, 0, sizeof(s));
    s.stop_after = 1;
    CHECK_EQ_INT(shdict_keys(d, "r", 1, T0 + 5, seen_cb, &s), 1);
    shdict_free(d);
}

/* ---- threads ---- */

#define THREADS       4
#define INCRS         100000
#define COUNTER_KEYS  10

static void *
incr_worker(void *arg)
{
    struct shdict *d = arg;
    char           key[8];
    double         n;

    for (int i = 0; i < INCRS; i++) {
        snprintf(key, sizeof(key), "c%d", i % COUNTER_KEYS);
        if (shdict_incr(d, key, strlen(key), 1, 0, 0, T0, &n) != SHDICT_OK)
            abort();
    }
    return NULL;
}

static void
concurrent_incr_on_shared_keys_sums_exactly(void)
{
    struct shdict *d = dict(1 << 20, 4);
    pthread_t      t[THREADS];
    char           key[8];
    double         total = 0;

    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, incr_worker, d);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int k = 0; k < COUNTER_KEYS; k++) {
        snprintf(key, sizeof(key), "c%d", k);
        CHECK(num_of(d, key, T0) == THREADS * INCRS / COUNTER_KEYS);
        total += num_of(d, key, T0);
    }
    CHECK(total == THREADS * INCRS);
    shdict_free(d);
}

struct mix_arg {
    struct shdict *d;
    unsigned       seed;
};

/* Every operation at once on a dictionary too small for its keys: eviction, expiry,
 * growth and the key walk race each other. What is checked is the invariants after, and
 * under TSan the absence of races. */
static void *
mix_worker(void *arg)
{
    struct mix_arg     *m = arg;
    char                key[16], buf[256];
    struct shdict_value out = {.buf = buf, .cap = sizeof(buf)};
    struct seen         s = {0};
    double              n, now;

    for (int i = 0; i < 20000; i++) {
        unsigned r = rand_r(&m->seed);

        snprintf(key, sizeof(key), "m%u", r % 2000);
        now = T0 + i / 1000.0;
        switch (r % 7) {
        case 0: set_str(m->d, key, buf, r % sizeof(buf), r % 3, now); break;
        case 1: set_num(m->d, key, r, 0, now); break;
        case 2: incr(m->d, key, 1, 0, r % 5, now, &n); break;
        case 3: get(m->d, key, &out, now); break;
        case 4: shdict_delete(m->d, key, strlen(key), now); break;
        case 5: shdict_flush_expired(m->d, now, 16); break;
        default: shdict_keys(m->d, "m1", 2, now, seen_cb, &s); break;
        }
    }
    return NULL;
}

static void
concurrent_mixed_operations_keep_the_books_straight(void)
{
    struct shdict      *d = dict(8 * SHDICT_MIN_SHARD, 4);
    struct mix_arg      a[THREADS];
    pthread_t           t[THREADS];
    struct shdict_stats st;
    struct seen         s = {0};

    memset(a, 0, sizeof(a));
    for (int i = 0; i < THREADS; i++) {
        a[i] = (struct mix_arg){.d = d, .seed = 17u * (unsigned)i + 1};
        pthread_create(&t[i], NULL, mix_worker, &a[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    st = stats(d);
    CHECK(st.bytes <= st.max_bytes);
    CHECK(st.evictions > 0);
    shdict_flush_expired(d, T0 + 1e6, 0);
    CHECK_EQ_INT(shdict_keys(d, NULL, 0, T0 + 1e6, seen_cb, &s), stats(d).entries);
    shdict_free(d);
}

#define ADDERS       4
#define ADDS         20000

struct add_arg {
    struct shdict *d;
    int            id;
    int            stored;  /* sets that succeeded */
    int            refused; /* SHDICT_FULL */
};

/* Distinct keys (and some deletes) into a dictionary too small for them all. */
static void *
add_worker(void *arg)
{
    struct add_arg *a = arg;
    char            key[32];

    for (int i = 0; i < ADDS; i++) {
        snprintf(key, sizeof(key), "t%d:%d", a->id, i);
        switch (set_num(a->d, key, i, 0, T0)) {
        case SHDICT_OK: a->stored++; break;
        case SHDICT_FULL: a->refused++; break;
        default: abort();
        }
        if (i % 5 == 4) { /* and give some back: the pool must balance exactly */
            snprintf(key, sizeof(key), "t%d:%d", a->id, i - 2);
            if (shdict_delete(a->d, key, strlen(key), T0) == SHDICT_OK)
                a->stored--;
        }
    }
    return NULL;
}

static void
concurrent_writes_to_a_refusing_dict_never_pass_its_bound(void)
{
    struct shdict      *d = refusing(16 * SHDICT_MIN_SHARD, 8), *fresh;
    struct add_arg      a[ADDERS];
    pthread_t           t[ADDERS];
    struct shdict_stats st;
    int                 stored = 0, refused = 0;

    for (int i = 0; i < ADDERS; i++) {
        a[i] = (struct add_arg){.d = d, .id = i};
        pthread_create(&t[i], NULL, add_worker, &a[i]);
    }
    for (int i = 0; i < ADDERS; i++) {
        pthread_join(t[i], NULL);
        stored += a[i].stored;
        refused += a[i].refused;
    }
    st = stats(d);
    CHECK(refused > 0);
    CHECK_EQ_INT(st.entries, stored); /* every write that said OK is there */
    CHECK_EQ_INT(st.refusals, refused);
    CHECK_EQ_INT(st.evictions, 0);
    CHECK(st.bytes <= st.max_bytes);
    /* delete everything: the pool returns to empty, so it fills to the same point again */
    for (int i = 0; i < ADDERS; i++)
        for (int j = 0; j < ADDS; j++) {
            char key[32];

            snprintf(key, sizeof(key), "t%d:%d", i, j);
            shdict_delete(d, key, strlen(key), T0);
        }
    CHECK_EQ_INT(stats(d).entries, 0);
    fresh = refusing(16 * SHDICT_MIN_SHARD, 8);
    CHECK_EQ_INT(fill_until_refused(d, 0, T0), fill_until_refused(fresh, 0, T0));
    shdict_free(fresh);
    shdict_free(d);
}

int
main(void)
{
    RUN(a_number_set_is_got_back_until_deleted);
    RUN(strings_and_keys_are_binary_safe);
    RUN(an_empty_string_is_a_value_not_a_deletion);
    RUN(get_into_a_short_buffer_copies_nothing_and_says_how_long);
    RUN(set_replaces_the_value_and_its_type);
    RUN(setting_nil_deletes_and_succeeds_even_when_absent);
    RUN(keys_and_values_are_bounded);
    RUN(bad_ttls_and_unknown_types_are_refused);
    RUN(new_refuses_shard_counts_and_sizes_out_of_range);
    RUN(an_entry_expires_exactly_at_its_ttl);
    RUN(ttl_zero_never_expires);
    RUN(set_replaces_the_ttl_too);
    RUN(deleting_an_expired_key_is_not_found);
    RUN(incr_creates_a_missing_key_at_init_plus_by);
    RUN(incr_adds_fractions_and_negative_steps);
    RUN(incr_does_not_refresh_the_ttl_so_windows_are_fixed);
    RUN(incr_restarts_an_expired_counter_at_init_with_a_new_ttl);
    RUN(incr_on_a_string_is_an_error_and_leaves_it_alone);
    RUN(incr_refuses_nan_which_would_pass_every_limit);
    RUN(a_full_shard_evicts_the_oldest_first_and_stays_under_max_bytes);
    RUN(get_and_incr_save_an_entry_from_eviction);
    RUN(expired_entries_are_evicted_before_live_ones);
    RUN(a_value_larger_than_a_shard_fails_without_evicting);
    RUN(bytes_return_to_baseline_when_entries_go);
    RUN(add_stores_only_what_is_absent_or_expired);
    RUN(a_full_refusing_dict_refuses_and_keeps_every_entry);
    RUN(a_refusing_dict_removes_expired_entries_of_every_shard_before_refusing);
    RUN(an_entry_larger_than_a_shard_share_is_refused_without_evicting_too);
    RUN(an_entry_is_charged_its_header_key_value_and_malloc_overhead);
    RUN(many_keys_over_many_shards_all_come_back);
    RUN(flush_expired_removes_only_expired_entries_up_to_max);
    RUN(keys_walks_live_keys_with_the_prefix_and_can_stop);
    RUN(concurrent_incr_on_shared_keys_sums_exactly);
    RUN(concurrent_mixed_operations_keep_the_books_straight);
    RUN(concurrent_writes_to_a_refusing_dict_never_pass_its_bound);
    return check_summary();
}
