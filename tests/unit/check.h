/* tests/unit/check.h: the smallest test harness that reports which case failed.
 * A test file defines static void functions, lists them in main() with RUN(),
 * and returns check_summary(). Each failed CHECK prints file:line and the expression.
 * A test function that made no check at all fails too: a test that cannot fail proves
 * nothing (an early return or an empty table would otherwise pass unseen). */
#ifndef SLUICE_TEST_CHECK_H
#define SLUICE_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(expr)                                                                 \
    do {                                                                            \
        check_count++;                                                              \
        if (!(expr)) {                                                              \
            check_failures++;                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
        }                                                                           \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                          \
    do {                                                                            \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);             \
        check_count++;                                                              \
        if (check_a_ != check_b_) {                                                 \
            check_failures++;                                                       \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,      \
                    __LINE__, #a, #b, check_a_, check_b_);                          \
        }                                                                           \
    } while (0)

#define CHECK_MEM(p, n, s)                                                          \
    do {                                                                            \
        size_t check_n_ = (n);                                                      \
        check_count++;                                                              \
        if (check_n_ != strlen(s) || memcmp((p), (s), check_n_) != 0) {             \
            check_failures++;                                                       \
            fprintf(stderr, "%s:%d: got \"%.*s\", want \"%s\"\n", __FILE__, __LINE__, \
                    (int)check_n_, (const char *)(p), (s));                         \
        }                                                                           \
    } while (0)

#define RUN(fn)                                                                     \
    do {                                                                            \
        int check_before_ = check_failures, check_count_before_ = check_count;     \
        fn();                                                                       \
        if (check_count == check_count_before_) {                                   \
            check_failures++;                                                       \
            fprintf(stderr, "%s: %s made no checks\n", __FILE__, #fn);             \
        }                                                                           \
        fprintf(stderr, "%s %s\n", check_failures == check_before_ ? "ok  " : "FAIL", \
                #fn);                                                               \
    } while (0)

static inline int
check_summary(void)
{
    fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
