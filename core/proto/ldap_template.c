/* core/proto/ldap_template.c: %u/%d/%s templates with RFC 4514 and RFC 4515 escaping, and an
 * RFC 4515 filter syntax check for load time; see ldap_template.h. */
#include "proto/ldap_template.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
ldap_template_check(const char *tmpl, char *err, size_t errlen)
{
    const char *p;

    for (p = strchr(tmpl, '%'); p != NULL; p = strchr(p + 2, '%')) {
        if (p[1] != 'u' && p[1] != 'd' && p[1] != 's' && p[1] != '%') {
            snprintf(err, errlen, "unknown '%%%.1s' at offset %zu (expected %%u, %%d, %%s or %%%%)",
                     p[1] != '\0' ? p + 1 : "", (size_t)(p - tmpl));
            return -1;
        }
    }
    return 0;
}

bool
ldap_template_has_user(const char *tmpl)
{
    const char *p;

    for (p = strchr(tmpl, '%'); p != NULL; p = strchr(p + 2, '%')) {
        if (p[1] == 'u' || p[1] == 's')
            return true;
        if (p[1] == '\0')
            break;
    }
    return false;
}

static const char ldap_template_hex[] = "0123456789abcdef";

/* One byte of a value as it goes into kind's text: *out gets up to 3 bytes (NULL: only
 * count). first/last: the byte opens or closes the value (RFC 4514 2.4 escapes a
 * leading space or '#' and a trailing space). Returns how many bytes. */
static size_t
ldap_template_escape_byte(enum ldap_template_kind kind, unsigned char c, bool first,
                          bool last, char *out)
{
    bool hex, esc = false;

    if (kind == LDAP_TEMPLATE_FILTER) {
        /* RFC 4515 3: NUL, '(', ')', '*', '\' as \XX; controls too, for the logs' sake */
        hex = c == 0 || c == '(' || c == ')' || c == '*' || c == '\\' || c < 0x20 || c == 0x7f;
    } else {
        /* RFC 4514 2.4: the specials as \c, NUL (and other controls) as \XX */
        hex = c < 0x20 || c == 0x7f;
        esc = strchr("\"+,;<>\\=", c) != NULL || (first && (c == ' ' || c == '#')) ||
              (last && c == ' ');
    }
    if (hex) {
        if (out != NULL) {
            out[0] = '\\';
            out[1] = ldap_template_hex[c >> 4];
            out[2] = ldap_template_hex[c & 15];
        }
        return 3;
    }
    if (esc) {
        if (out != NULL) {
            out[0] = '\\';
            out[1] = (char)c;
        }
        return 2;
    }
    if (out != NULL)
        out[0] = (char)c;
    return 1;
}

/* The escaped value (NULL out: only its length). */
static size_t
ldap_template_escape(enum ldap_template_kind kind, const char *v, size_t n, char *out)
{
    size_t i, used = 0;

    for (i = 0; i < n; i++)
        used += ldap_template_escape_byte(kind, (unsigned char)v[i], i == 0, i + 1 == n,
                                          out != NULL ? out + used : NULL);
    return used;
}

/* Expand into out (NULL: only count); returns the length without the NUL. */
static size_t
ldap_template_fill(const char *tmpl, enum ldap_template_kind kind, const char *local,
                   size_t local_len, const char *domain, size_t domain_len, char *out)
{
    size_t used = 0, n;

    for (const char *p = tmpl; *p != '\0'; p++) {
        if (*p != '%' || p[1] == '\0') {
            if (out != NULL)
                out[used] = *p;
            used++;
            continue;
        }
        p++;
        switch (*p) {
        case 'u':
            used += ldap_template_escape(kind, local, local_len, out ? out + used : NULL);
            break;
        case 'd':
            used += ldap_template_escape(kind, domain, domain_len, out ? out + used : NULL);
            break;
        case 's':
            /* the whole address is one value: '@' needs no escaping in either syntax */
            n = ldap_template_escape(kind, local, local_len, out ? out + used : NULL);
            used += n;
            if (out != NULL)
                out[used] = '@';
            used++;
            used += ldap_template_escape(kind, domain, domain_len, out ? out + used : NULL);
            break;
        default: /* "%%"; ldap_template_check() refused anything else at load */
            if (out != NULL)
                out[used] = *p;
            used++;
            break;
        }
    }
    return used;
}

char *
ldap_template_expand(const char *tmpl, enum ldap_template_kind kind, const char *local,
                     size_t local_len, const char *domain, size_t domain_len)
{
    size_t n = ldap_template_fill(tmpl, kind, local, local_len, domain, domain_len, NULL);
    char  *out = malloc(n + 1);

    if (out == NULL)
        return NULL;
    ldap_template_fill(tmpl, kind, local, local_len, domain, domain_len, out);
    out[n] = '\0';
    return out;
}

/* ---- RFC 4515 syntax ------------------------------------------------------------------ */

#define LDAP_TEMPLATE_MAX_DEPTH 32

struct ldap_filter_parse {
    const char *start;
    const char *p;
    const char *why; /* the first error */
};

static bool
ldap_filter_fail(struct ldap_filter_parse *fp, const char *why)
{
    if (fp->why == NULL)
        fp->why = why;
    return false;
}

/* attributedescription: (descr / numericoid) *(";" option) */
static bool
ldap_filter_attr(struct ldap_filter_parse *fp)
{
    const char *p = fp->p;

    if (isalpha((unsigned char)*p)) {
        while (isalnum((unsigned char)*p) || *p == '-')
            p++;
    } else if (isdigit((unsigned char)*p)) {
        while (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1])))
            p++;
    } else {
        return ldap_filter_fail(fp, "expected an attribute description");
    }
    while (*p == ';') {
        if (!isalnum((unsigned char)*++p))
            return ldap_filter_fail(fp, "expected an attribute option after ';'");
        while (isalnum((unsigned char)*p) || *p == '-')
            p++;
    }
    fp->p = p;
    return true;
}

/* assertionvalue up to the closing ')'; stars allowed where substrings are. */
static bool
ldap_filter_value(struct ldap_filter_parse *fp, bool stars)
{
    const char *p = fp->p;

    for (; *p != ')' && *p != '\0'; p++) {
        if (*p == '(')
            return ldap_filter_fail(fp, "unescaped '(' in a value (write \\28)");
        if (*p == '*' && !stars)
            return ldap_filter_fail(fp, "'*' where no substring match is allowed");
        if (*p == '\\') {
            if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
                return ldap_filter_fail(fp, "'\\' not followed by two hex digits");
            p += 2;
        }
    }
    fp->p = p;
    return true;
}

/* extensible = [attr] [":dn"] [":" oid] ":=" assertionvalue */
static bool
ldap_filter_extensible(struct ldap_filter_parse *fp, bool has_attr)
{
    bool rule = false;

    if (strncmp(fp->p, ":dn", 3) == 0 && (fp->p[3] == ':'))
        fp->p += 3;
    if (fp->p[0] == ':' && fp->p[1] != '=') {
        fp->p++;
        if (!ldap_filter_attr(fp))
            return false;
        rule = true;
    }
    if (!has_attr && !rule)
        return ldap_filter_fail(fp, "an extensible match without an attribute needs a rule");
    if (fp->p[0] != ':' || fp->p[1] != '=')
        return ldap_filter_fail(fp, "expected ':=' in an extensible match");
    fp->p += 2;
    return ldap_filter_value(fp, false);
}

/* item = simple / present / substring / extensible (after the '(') */
static bool
ldap_filter_item(struct ldap_filter_parse *fp)
{
    if (*fp->p == ':')
        return ldap_filter_extensible(fp, false);
    if (!ldap_filter_attr(fp))
        return false;
    if (*fp->p == ':')
        return ldap_filter_extensible(fp, true);
    if ((*fp->p == '~' || *fp->p == '>' || *fp->p == '<') && fp->p[1] == '=') {
        fp->p += 2;
        return ldap_filter_value(fp, false);
    }
    if (*fp->p != '=')
        return ldap_filter_fail(fp, "expected '=', '~=', '>=', '<=' or ':='");
    fp->p++;
    return ldap_filter_value(fp, true);
}

static bool ldap_filter_one(struct ldap_filter_parse *fp, int depth);

static bool
ldap_filter_list(struct ldap_filter_parse *fp, int depth)
{
    if (*fp->p != '(')
        return ldap_filter_fail(fp, "expected '(' after '&' or '|'");
    while (*fp->p == '(')
        if (!ldap_filter_one(fp, depth))
            return false;
    return true;
}

/* filter = "(" filtercomp ")" */
static bool
ldap_filter_one(struct ldap_filter_parse *fp, int depth)
{
    bool ok;

    if (depth > LDAP_TEMPLATE_MAX_DEPTH)
        return ldap_filter_fail(fp, "nested too deeply");
    if (*fp->p != '(')
        return ldap_filter_fail(fp, "expected '('");
    fp->p++;
    if (*fp->p == '&' || *fp->p == '|') {
        fp->p++;
        ok = ldap_filter_list(fp, depth + 1);
    } else if (*fp->p == '!') {
        fp->p++;
        ok = ldap_filter_one(fp, depth + 1);
    } else {
        ok = ldap_filter_item(fp);
    }
    if (!ok)
        return false;
    if (*fp->p != ')')
        return ldap_filter_fail(fp, "expected ')'");
    fp->p++;
    return true;
}

int
ldap_template_check_filter(const char *f, char *err, size_t errlen)
{
    struct ldap_filter_parse fp = {.start = f, .p = f};

    if (ldap_filter_one(&fp, 0) && *fp.p == '\0')
        return 0;
    snprintf(err, errlen, "not an RFC 4515 filter at offset %zu: %s", (size_t)(fp.p - f),
             fp.why != NULL ? fp.why : "text after the closing ')'");
    return -1;
}
