/* tests/unit/test_ldap_template.c: core/proto/ldap_template.c: what a user name becomes in a
 * bind DN and in a search filter, and which filters pass the load-time check. */
#include <ldap.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "proto/ldap_template.h"

static char *
expand(const char *tmpl, enum ldap_template_kind kind, const char *local, const char *domain)
{
    return ldap_template_expand(tmpl, kind, local, strlen(local), domain, strlen(domain));
}

#define CHECK_EXPANDS(tmpl, kind, local, domain, want)                                   \
    do {                                                                                 \
        char *got_ = expand(tmpl, kind, local, domain);                                  \
        CHECK(got_ != NULL);                                                             \
        if (got_ != NULL)                                                                \
            CHECK_MEM(got_, strlen(got_), want);                                         \
        free(got_);                                                                      \
    } while (0)

static void
placeholders_become_the_parts_of_the_address(void)
{
    CHECK_EXPANDS("uid=%u,ou=people,dc=example", LDAP_TEMPLATE_DN, "alice", "example.org",
                  "uid=alice,ou=people,dc=example");
    CHECK_EXPANDS("mail=%s,o=%d", LDAP_TEMPLATE_DN, "alice", "example.org",
                  "mail=alice@example.org,o=example.org");
    CHECK_EXPANDS("(&(uid=%u)(o=100%%))", LDAP_TEMPLATE_FILTER, "a", "b.test",
                  "(&(uid=a)(o=100%))");
}

/* RFC 4514 2.4: a user name cannot add an RDN, an attribute or end the value early. */
static void
dn_values_are_escaped_as_rfc4514_says(void)
{
    static const struct {
        const char *local, *want;
    } cases[] = {
        {"a,ou=admins", "uid=a\\,ou\\=admins,dc=x"},
        {"a+cn=root", "uid=a\\+cn\\=root,dc=x"},
        {"\"q\";<>", "uid=\\\"q\\\"\\;\\<\\>,dc=x"},
        {"back\\slash", "uid=back\\\\slash,dc=x"},
        {" lead", "uid=\\ lead,dc=x"},
        {"#hash", "uid=\\#hash,dc=x"},
        {"trail ", "uid=trail\\ ,dc=x"},
        {"in side", "uid=in side,dc=x"},
        {"mid#x", "uid=mid#x,dc=x"},
        {"tab\there", "uid=tab\\09here,dc=x"},
        {"j\xc3\xbcrgen", "uid=j\xc3\xbcrgen,dc=x"}, /* UTF-8 stays as it is */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_EXPANDS("uid=%u,dc=x", LDAP_TEMPLATE_DN, cases[i].local, "d", cases[i].want);
}

static void
an_escaped_dn_parses_back_to_the_one_value_it_was(void)
{
    static const char *const names[] = {"a,ou=admins", "a+cn=root", " x ", "#", "\\", "\"",
                                        "=", "a;b", "<>"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char  *dn = expand("uid=%u,dc=x", LDAP_TEMPLATE_DN, names[i], "d");
        LDAPDN parsed = NULL;

        CHECK(dn != NULL && ldap_str2dn(dn, &parsed, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS);
        if (parsed != NULL) {
            CHECK(parsed[0] != NULL && parsed[0][0] != NULL && parsed[0][1] == NULL);
            CHECK(parsed[1] != NULL && parsed[2] == NULL); /* still two RDNs */
            CHECK_MEM(parsed[0][0]->la_value.bv_val, parsed[0][0]->la_value.bv_len, names[i]);
        }
        ldap_dnfree(parsed);
        free(dn);
    }
}

/* A NUL in the name is a byte like any other, never the end of the string. */
static void
a_nul_byte_is_escaped_in_both_syntaxes(void)
{
    char *dn = ldap_template_expand("uid=%u", LDAP_TEMPLATE_DN, "a\0b", 3, "d", 1);
    char *f = ldap_template_expand("(uid=%u)", LDAP_TEMPLATE_FILTER, "a\0b", 3, "d", 1);

    CHECK(dn != NULL && strcmp(dn, "uid=a\\00b") == 0);
    CHECK(f != NULL && strcmp(f, "(uid=a\\00b)") == 0);
    free(dn);
    free(f);
}

/* RFC 4515 3: a user name cannot add a wildcard or a clause to the filter. */
static void
filter_values_are_escaped_as_rfc4515_says(void)
{
    CHECK_EXPANDS("(mail=%s)", LDAP_TEMPLATE_FILTER, "*", "example.org",
                  "(mail=\\2a@example.org)");
    CHECK_EXPANDS("(uid=%u)", LDAP_TEMPLATE_FILTER, "a)(|(uid=*", "d",
                  "(uid=a\\29\\28|\\28uid=\\2a)");
    CHECK_EXPANDS("(uid=%u)", LDAP_TEMPLATE_FILTER, "back\\slash", "d", "(uid=back\\5cslash)");
    CHECK_EXPANDS("(uid=%u)", LDAP_TEMPLATE_FILTER, "a,b+c=d", "d", "(uid=a,b+c=d)");
}

static void
templates_with_unknown_placeholders_are_refused(void)
{
    char err[128];

    CHECK(ldap_template_check("uid=%u,o=%d,mail=%s,x=%%", err, sizeof(err)) == 0);
    CHECK(ldap_template_check("uid=%x", err, sizeof(err)) == -1);
    CHECK(strstr(err, "'%x'") != NULL);
    CHECK(ldap_template_check("uid=%", err, sizeof(err)) == -1);
    CHECK(ldap_template_has_user("uid=%u") && ldap_template_has_user("(mail=%s)"));
    CHECK(!ldap_template_has_user("cn=admin,o=%d") && !ldap_template_has_user("x=%%u"));
}

static void
rfc4515_filters_pass_the_check(void)
{
    static const char *const good[] = {
        "(uid=alice)",
        "(&(objectClass=inetOrgPerson)(mail=a@example.org))",
        "(|(uid=a)(mail=a@b)(!(ou=x)))",
        "(cn=*)",
        "(cn=a*b*c)",
        "(cn=*b)",
        "(cn~=x)",
        "(uidNumber>=10)",
        "(uidNumber<=10)",
        "(cn:caseExactMatch:=Fred)",
        "(cn:dn:2.4.6.8.10:=Dino)",
        "(:dn:2.4.6.8.10:=Dino)",
        "(1.2.3=x)",
        "(cn;lang-en=x)",
        "(cn=a\\2ab)",
        "(cn=)",
    };
    char err[128];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK(ldap_template_check_filter(good[i], err, sizeof(err)) == 0);
        if (ldap_template_check_filter(good[i], err, sizeof(err)) != 0)
            fprintf(stderr, "  %s: %s\n", good[i], err);
    }
}

static void
malformed_filters_fail_the_check_with_a_position(void)
{
    static const char *const bad[] = {
        "uid=alice",      "(uid=alice",    "(uid=alice))", "((uid=a))",   "(&)",
        "(&uid=a)",       "(!)",           "(=a)",         "(uid)",       "(uid=a(b)",
        "(uid=a\\zz)",    "(uid~=a*)",     "(:=x)",        "(cn:=x",      "(cn;=x)",
        "",               "(uid=a)(uid=b)",
    };
    char err[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(ldap_template_check_filter(bad[i], err, sizeof(err)) == -1);
        if (ldap_template_check_filter(bad[i], err, sizeof(err)) == 0)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        else
            CHECK(strstr(err, "at offset ") != NULL);
    }
}

int
main(void)
{
    RUN(placeholders_become_the_parts_of_the_address);
    RUN(dn_values_are_escaped_as_rfc4514_says);
    RUN(an_escaped_dn_parses_back_to_the_one_value_it_was);
    RUN(a_nul_byte_is_escaped_in_both_syntaxes);
    RUN(filter_values_are_escaped_as_rfc4515_says);
    RUN(templates_with_unknown_placeholders_are_refused);
    RUN(rfc4515_filters_pass_the_check);
    RUN(malformed_filters_fail_the_check_with_a_position);
    return check_summary();
}
