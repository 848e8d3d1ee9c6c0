/* tests/unit/test_oauth2_token.c: core/proto/oauth2_token.c, the token endpoint's answer,
 * and the grant's request body from core/relay/upstream_token.c. */
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "proto/oauth2_token.h"
#include "relay/upstream_token.h"

static struct oauth2_token_answer a; /* 8 KiB: not on the stack */

static enum oauth2_token_rc
parse(const char *s)
{
    return oauth2_token_parse(s, strlen(s), &a);
}

static void
a_bearer_answer_gives_the_token_and_its_lifetime(void)
{
    CHECK(parse("{\"access_token\":\"eyJ0.eXAi-_~+/x==\",\"token_type\":\"Bearer\","
                "\"expires_in\":3599,\"ext\":{\"a\":[1,2.5e3,true,null,\"\\u00e9\"]}}") ==
          OAUTH2_TOKEN_OK);
    CHECK(strcmp(a.access_token, "eyJ0.eXAi-_~+/x==") == 0 && a.expires_in == 3599);
    /* Azure AD v1 sends expires_in as a string; token_type is case-insensitive */
    CHECK(parse(" { \"token_type\" : \"bearer\" , \"expires_in\" : \"600\" ,"
                " \"access_token\" : \"abc\" } ") == OAUTH2_TOKEN_OK);
    CHECK(strcmp(a.access_token, "abc") == 0 && a.expires_in == 600);
    CHECK(parse("{\"access_token\":\"abc\",\"token_type\":\"Bearer\"}") == OAUTH2_TOKEN_OK);
    CHECK(a.expires_in == -1);
    /* escapes are decoded: \/ is a plain / */
    CHECK(parse("{\"access_token\":\"a\\/b\",\"token_type\":\"Bearer\"}") == OAUTH2_TOKEN_OK);
    CHECK(strcmp(a.access_token, "a/b") == 0);
}

static void
an_error_answer_gives_its_code(void)
{
    CHECK(parse("{\"error\":\"invalid_client\",\"error_description\":\"no\"}") ==
          OAUTH2_TOKEN_ERROR);
    CHECK(strcmp(a.error, "invalid_client") == 0 && a.access_token[0] == '\0');
    CHECK(parse("{\"error\":\"bad\\u0001\\\"x\"}") == OAUTH2_TOKEN_ERROR);
    CHECK(strcmp(a.error, "bad???x") == 0 || strcmp(a.error, "bad??x") == 0);
}

/* The error code may be logged: printable also when the answer breaks off after it. */
static bool
error_is_printable(void)
{
    for (const char *p = a.error; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"')
            return false;
    return true;
}

static void
an_error_code_is_printable_whatever_follows_it(void)
{
    CHECK(parse("{\"error\":\"a\\u0001b\\\"c\",\"x\":") == OAUTH2_TOKEN_BAD);
    CHECK(strcmp(a.error, "a?b?c") == 0);
    CHECK(parse("{\"error\":\"in\x01va\xf4lid\",\"x\":") == OAUTH2_TOKEN_BAD);
    CHECK(error_is_printable());
}

static void
a_token_that_could_break_the_smtp_line_is_refused(void)
{
    static const char *const bad[] = {
        "{\"access_token\":\"a b\",\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"a\\r\\nMAIL FROM:<x>\",\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"\\u00e9\",\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"=abc\",\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"ab=c\",\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"\",\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"abc\",\"token_type\":\"mac\"}",
        "{\"access_token\":\"abc\"}",
        "{\"access_token\":42,\"token_type\":\"Bearer\"}",
        "{\"access_token\":\"abc\",\"token_type\":\"Bearer\",\"expires_in\":-5}",
        "{\"access_token\":\"abc\",\"token_type\":\"Bearer\",\"expires_in\":1.5}",
        "{\"access_token\":\"abc\",\"token_type\":\"Bearer\"} x",
        "{\"access_token\":\"abc\",\"token_type\":\"Bearer\",}",
        "[\"access_token\"]",
        "",
        ("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]],\"access_token\":\"x\","
         "\"token_type\":\"Bearer\"}"),
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(parse(bad[i]) == OAUTH2_TOKEN_BAD);
        CHECK(a.access_token[0] == '\0');
    }
}

static void
a_token_over_the_limit_is_refused(void)
{
    size_t n = OAUTH2_TOKEN_MAX + 1;
    char  *s = malloc(n + 64);

    for (int over = 0; over <= 1; over++) {
        size_t k = n - 1 + (size_t)over;

        strcpy(s, "{\"token_type\":\"Bearer\",\"access_token\":\"");
        size_t off = strlen(s);
        memset(s + off, 'A', k);
        strcpy(s + off + k, "\"}");
        CHECK(parse(s) == (over ? OAUTH2_TOKEN_BAD : OAUTH2_TOKEN_OK));
    }
    free(s);
}

static void
every_cut_of_an_answer_is_refused_not_misread(void)
{
    const char *s = "{\"access_token\":\"abc\",\"token_type\":\"Bearer\",\"expires_in\":60}";
    size_t      len = strlen(s);

    for (size_t cut = 0; cut < len; cut++)
        CHECK(oauth2_token_parse(s, cut, &a) == OAUTH2_TOKEN_BAD);
    CHECK(oauth2_token_parse(s, len, &a) == OAUTH2_TOKEN_OK);
}

static void
the_grant_body_is_form_encoded_and_names_a_public_client(void)
{
    struct config_upstream_oauth2 o = {
        .token_url = "https://t/", .client_id = "id 1", .client_secret = "s",
        .scope = "https://outlook.office365.com/.default offline_access",
    };
    char   body[512];
    size_t n = upstream_tokens_body(&o, body, sizeof(body));

    CHECK(n == strlen(body));
    CHECK(strcmp(body, "grant_type=client_credentials&scope=https%3A%2F%2Foutlook.office365"
                       ".com%2F.default+offline_access") == 0);
    o.client_secret = NULL; /* a public client: the id goes in the body */
    o.refresh_token = "1//0g&=x";
    o.scope = NULL;
    CHECK(upstream_tokens_body(&o, body, sizeof(body)) > 0);
    CHECK(strcmp(body, "grant_type=refresh_token&refresh_token=1%2F%2F0g%26%3Dx"
                       "&client_id=id+1") == 0);
    CHECK(upstream_tokens_body(&o, body, 20) == 0 && body[0] == '\0');
}

static void
identities_differ_by_any_field_of_the_grant(void)
{
    struct config_upstream_oauth2 o = {.token_url = "https://t/", .client_id = "c",
                                       .client_secret = "s"};
    struct config_upstream_oauth2 p = o;

    CHECK(upstream_tokens_same_identity(&o, &p));
    p.scope = "x";
    CHECK(!upstream_tokens_same_identity(&o, &p));
    p = o;
    p.client_secret = "t";
    CHECK(!upstream_tokens_same_identity(&o, &p));
    CHECK(!upstream_tokens_same_identity(&o, NULL) && upstream_tokens_same_identity(NULL, NULL));
}

int
main(void)
{
    RUN(a_bearer_answer_gives_the_token_and_its_lifetime);
    RUN(an_error_answer_gives_its_code);
    RUN(an_error_code_is_printable_whatever_follows_it);
    RUN(a_token_that_could_break_the_smtp_line_is_refused);
    RUN(a_token_over_the_limit_is_refused);
    RUN(every_cut_of_an_answer_is_refused_not_misread);
    RUN(the_grant_body_is_form_encoded_and_names_a_public_client);
    RUN(identities_differ_by_any_field_of_the_grant);
    return check_summary();
}
