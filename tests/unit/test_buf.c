/* tests/unit/test_buf.c: core/util/buf.c: the first allocation, growth under the cap,
 * and what buf_reserve_first changes (only a buffer with no memory yet). */
#include <stdlib.h>

#include "check.h"
#include "util/buf.h"

static void
a_buffer_starts_at_4096_unless_told_smaller(void)
{
    struct buf a = {0}, b = {0};

    CHECK_EQ_INT(buf_append(&a, "220 ok\r\n", 8, 1 << 20), 0);
    CHECK_EQ_INT(a.cap, 4096);
    CHECK_EQ_INT(buf_reserve_first(&b, 1000), 0);
    CHECK_EQ_INT(b.cap, 1000);
    CHECK_EQ_INT(buf_used(&b), 0);
    CHECK_EQ_INT(buf_append(&b, "220 ok\r\n", 8, 1 << 20), 0);
    CHECK_EQ_INT(b.cap, 1000);
    CHECK_MEM(buf_head(&b), 8, "220 ok\r\n");
    buf_cleanup(&a);
    buf_cleanup(&b);
}

static void
a_small_first_buffer_grows_like_any_other_and_keeps_its_bytes(void)
{
    struct buf b = {0};
    char       big[3000];

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    CHECK_EQ_INT(buf_reserve_first(&b, 1000), 0);
    CHECK_EQ_INT(buf_append(&b, "x", 1, 1 << 20), 0);
    CHECK_EQ_INT(buf_append(&b, big, sizeof(big), 1 << 20), 0);
    CHECK(b.cap >= 3001);
    CHECK_EQ_INT(buf_used(&b), 3001);
    CHECK(buf_head(&b)[0] == 'x' && buf_head(&b)[3000] == big[2999]);
    CHECK_EQ_INT(buf_append(&b, big, sizeof(big), 4000), -1); /* the cap still holds */
    buf_cleanup(&b);
}

static void
reserve_first_leaves_a_buffer_with_memory_alone(void)
{
    struct buf b = {0};

    CHECK_EQ_INT(buf_append(&b, "abc", 3, 1 << 20), 0);
    CHECK_EQ_INT(buf_reserve_first(&b, 100), 0);
    CHECK_EQ_INT(b.cap, 4096);
    CHECK_MEM(buf_head(&b), buf_used(&b), "abc");
    buf_cleanup(&b);
    CHECK(b.data == NULL && b.cap == 0);
}

int
main(void)
{
    RUN(a_buffer_starts_at_4096_unless_told_smaller);
    RUN(a_small_first_buffer_grows_like_any_other_and_keeps_its_bytes);
    RUN(reserve_first_leaves_a_buffer_with_memory_alone);
    return check_summary();
}
