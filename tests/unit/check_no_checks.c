/* tests/unit/check_no_checks.c: the harness itself (check.h). A test function that runs
 * no CHECK must fail its file: ctest runs this as unit.check_no_checks with WILL_FAIL. */
#include "check.h"

static void
a_test_that_checks_nothing(void)
{
}

int
main(void)
{
    RUN(a_test_that_checks_nothing);
    return check_summary();
}
