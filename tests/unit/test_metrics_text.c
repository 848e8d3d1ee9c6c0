/* tests/unit/test_metrics_text.c: core/daemon/metrics_text.c -- HELP and TYPE lines, samples
 * with no label, one or several, the exposition format's escaping, special floats, names. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "daemon/metrics_text.h"

static void
a_family_gets_help_then_type(void)
{
    struct metrics_text t;

    metrics_text_init(&t);
    metrics_text_family(&t, "sluice_up", "gauge", "1 while\nserving \\ up");
    CHECK_MEM(t.p, t.len, "# HELP sluice_up 1 while\\nserving \\\\ up\n# TYPE sluice_up gauge\n");
    metrics_text_cleanup(&t);
}

static void
samples_print_integers_exactly_and_escape_label_values(void)
{
    struct metrics_text t;

    metrics_text_init(&t);
    metrics_text_u64(&t, "a_total", NULL, NULL, 18446744073709551615ull);
    metrics_text_u64(&t, "b", "zone", "x\"y\\z\nw", 0);
    CHECK_MEM(t.p, t.len, "a_total 18446744073709551615\nb{zone=\"x\\\"y\\\\z\\nw\"} 0\n");
    CHECK(!t.failed);
    metrics_text_cleanup(&t);
}

static void
doubles_use_the_formats_spelling_of_special_values(void)
{
    struct metrics_text t;

    metrics_text_init(&t);
    metrics_text_double(&t, "x", NULL, NULL, 1.5);
    metrics_text_double(&t, "x", NULL, NULL, INFINITY);
    metrics_text_double(&t, "x", NULL, NULL, -INFINITY);
    metrics_text_double(&t, "x", NULL, NULL, NAN);
    CHECK_MEM(t.p, t.len, "x 1.5\nx +Inf\nx -Inf\nx NaN\n");
    metrics_text_cleanup(&t);
}

static void
several_labels_are_comma_separated_in_the_order_given(void)
{
    struct metrics_text t;
    const char         *two[] = {"mechanism", "plain", "result", "o\"k"};
    const char         *le[] = {"hook", "on_auth", "le", "+Inf"};

    metrics_text_init(&t);
    metrics_text_u64_labels(&t, "a_total", two, 2, 3);
    metrics_text_double_labels(&t, "h_bucket", le, 2, 0.25);
    metrics_text_u64_labels(&t, "c", NULL, 0, 1);
    CHECK_MEM(t.p, t.len, "a_total{mechanism=\"plain\",result=\"o\\\"k\"} 3\n"
                          "h_bucket{hook=\"on_auth\",le=\"+Inf\"} 0.25\nc 1\n");
    metrics_text_cleanup(&t);
}

static void
names_follow_the_data_model(void)
{
    CHECK(metrics_text_is_name("sluice_up", true));
    CHECK(metrics_text_is_name("a:b_c9", true));
    CHECK(!metrics_text_is_name("a:b", false));
    CHECK(!metrics_text_is_name("9a", true));
    CHECK(!metrics_text_is_name("", true));
    CHECK(!metrics_text_is_name("a-b", true));
    CHECK(!metrics_text_is_name("a b", true));
}

int
main(void)
{
    RUN(a_family_gets_help_then_type);
    RUN(samples_print_integers_exactly_and_escape_label_values);
    RUN(doubles_use_the_formats_spelling_of_special_values);
    RUN(several_labels_are_comma_separated_in_the_order_given);
    RUN(names_follow_the_data_model);
    return check_summary();
}
