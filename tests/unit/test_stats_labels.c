/* tests/unit/test_stats_labels.c: core/daemon/stats_labels.c -- a configured name keeps its
 * slot for good, slot 0 is "other" (the name itself, and every name once the room is
 * used up), and a zeroed registry puts everything under "other". */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "daemon/stats_labels.h"

static void
a_name_keeps_its_slot_and_new_names_come_after(void)
{
    struct stats_labels l;

    CHECK(stats_labels_init(&l, 8) == 0);
    CHECK_EQ_INT(stats_labels_count(&l), 1);
    CHECK(strcmp(stats_labels_name(&l, 0), "other") == 0);
    CHECK_EQ_INT(stats_labels_slot(&l, "example.org"), 1);
    CHECK_EQ_INT(stats_labels_slot(&l, "example.net"), 2);
    CHECK_EQ_INT(stats_labels_slot(&l, "example.org"), 1); /* a reload naming it again */
    CHECK_EQ_INT(stats_labels_count(&l), 3);
    CHECK(strcmp(stats_labels_name(&l, 2), "example.net") == 0);
    CHECK(!stats_labels_overflowed(&l));
    stats_labels_cleanup(&l);
}

static void
other_is_slot_0_and_takes_every_name_past_the_room(void)
{
    struct stats_labels l;
    char                name[32];

    CHECK(stats_labels_init(&l, 4) == 0);
    CHECK_EQ_INT(stats_labels_slot(&l, "other"), 0);
    CHECK(!stats_labels_overflowed(&l));
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "d%d.test", i);
        CHECK_EQ_INT(stats_labels_slot(&l, name), (long long)i + 1);
    }
    CHECK_EQ_INT(stats_labels_slot(&l, "d3.test"), 0);
    CHECK(stats_labels_overflowed(&l));
    CHECK_EQ_INT(stats_labels_slot(&l, "d1.test"), 2); /* the named ones keep theirs */
    CHECK_EQ_INT(stats_labels_count(&l), 4);
    stats_labels_cleanup(&l);
}

static void
a_zeroed_registry_counts_everything_under_other(void)
{
    struct stats_labels l = {0};

    CHECK_EQ_INT(stats_labels_slot(&l, "example.org"), 0);
    CHECK_EQ_INT(stats_labels_count(&l), 1);
    CHECK(strcmp(stats_labels_name(&l, 0), "other") == 0);
    stats_labels_cleanup(&l);
}

int
main(void)
{
    RUN(a_name_keeps_its_slot_and_new_names_come_after);
    RUN(other_is_slot_0_and_takes_every_name_past_the_room);
    RUN(a_zeroed_registry_counts_everything_under_other);
    return check_summary();
}
