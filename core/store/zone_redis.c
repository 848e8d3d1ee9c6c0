/* core/store/zone_redis.c: zone operations as Redis commands and replies as results; see
 * zone_redis.h. */
#include "store/zone_redis.h"

#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1]: the key. Its value and its TTL in ms (-1: none), or nil. */
static const char zone_redis_get_lua[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return false end\n"
    "return {v, redis.call('PTTL', KEYS[1])}\n";

/* KEYS[1]: the counter; KEYS[2] (optional): a key to read as well. ARGV: by, ttl in ms
 * (0: none), '1' to only read. Returns {the counter's value or false, KEYS[2]'s or false};
 * an expiry is set only on a counter this call created (shdict_incr's fixed windows). */
static const char zone_redis_incr_lua[] =
    "local v\n"
    "if ARGV[3] == '1' then\n"
    "  v = redis.call('GET', KEYS[1])\n"
    "else\n"
    "  local created = redis.call('EXISTS', KEYS[1]) == 0\n"
    "  v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])\n"
    "  if created and ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "end\n"
    "local p = false\n"
    "if KEYS[2] then p = redis.call('GET', KEYS[2]) end\n"
    "return {v, p}\n";

static const char *const zone_redis_scripts[ZONE_REDIS_SCRIPTS] = {zone_redis_get_lua,
                                                                   zone_redis_incr_lua};
enum { ZONE_REDIS_GET_SCRIPT, ZONE_REDIS_INCR_SCRIPT };

static char           zone_redis_shas[ZONE_REDIS_SCRIPTS][41];
static pthread_once_t zone_redis_once = PTHREAD_ONCE_INIT;

static void
zone_redis_hash_scripts(void)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char     md[EVP_MAX_MD_SIZE];
    unsigned int      n = 0;

    for (size_t i = 0; i < ZONE_REDIS_SCRIPTS; i++) {
        if (EVP_Digest(zone_redis_scripts[i], strlen(zone_redis_scripts[i]), md, &n,
                       EVP_sha1(), NULL) != 1 || n != 20)
            continue; /* an empty digest: EVALSHA answers NOSCRIPT, the call fails */
        for (unsigned j = 0; j < 20; j++) {
            zone_redis_shas[i][2 * j] = hex[md[j] >> 4];
            zone_redis_shas[i][2 * j + 1] = hex[md[j] & 15];
        }
    }
}

const char *
zone_redis_script(size_t i)
{
    return i < ZONE_REDIS_SCRIPTS ? zone_redis_scripts[i] : NULL;
}

const char *
zone_redis_script_sha(size_t i)
{
    pthread_once(&zone_redis_once, zone_redis_hash_scripts);
    return i < ZONE_REDIS_SCRIPTS ? zone_redis_shas[i] : NULL;
}

/* ---- commands ---------------------------------------------------------------------------- */

static void
zone_redis_arg(struct zone_redis_cmd *cmd, const char *s, size_t n)
{
    cmd->argv[cmd->argc] = s;
    cmd->lens[cmd->argc] = n;
    cmd->argc++;
}

static void
zone_redis_arg_str(struct zone_redis_cmd *cmd, const char *s)
{
    zone_redis_arg(cmd, s, strlen(s));
}

/* A number as text in cmd->num[slot]: "%.17g" round-trips every double. */
static void
zone_redis_arg_num(struct zone_redis_cmd *cmd, size_t slot, double v)
{
    snprintf(cmd->num[slot], sizeof(cmd->num[slot]), "%.17g", v);
    zone_redis_arg_str(cmd, cmd->num[slot]);
}

/* A TTL in whole milliseconds, rounded up (0: none). */
static void
zone_redis_arg_ms(struct zone_redis_cmd *cmd, size_t slot, double secs)
{
    snprintf(cmd->num[slot], sizeof(cmd->num[slot]), "%.0f", secs > 0 ? ceil(secs * 1000) : 0);
    zone_redis_arg_str(cmd, cmd->num[slot]);
}

static int
zone_redis_key(char *out, const char *prefix, const char *zone, const char *key, size_t klen)
{
    size_t pl = strlen(prefix), zl = strlen(zone);

    if (pl + zl + 1 + klen + 1 > ZONE_REDIS_KEY_MAX)
        return -1;
    memcpy(out, prefix, pl);
    memcpy(out + pl, zone, zl);
    out[pl + zl] = ':';
    memcpy(out + pl + zl + 1, key, klen);
    out[pl + zl + 1 + klen] = '\0';
    return (int)(pl + zl + 1 + klen);
}

/* SET key value [NX] [PX ms]; a nil value deletes. */
static int
zone_redis_cmd_store(struct zone_redis_cmd *cmd, const struct zone_op *op, int klen)
{
    const struct shdict_value *v = &op->value;

    if (v->type == SHDICT_NIL) {
        zone_redis_arg_str(cmd, "DEL");
        zone_redis_arg(cmd, cmd->key, (size_t)klen);
        return 0;
    }
    zone_redis_arg_str(cmd, "SET");
    zone_redis_arg(cmd, cmd->key, (size_t)klen);
    if (v->type == SHDICT_NUMBER) {
        zone_redis_arg_num(cmd, 0, v->num);
    } else {
        if ((cmd->value = malloc(v->len + 1)) == NULL)
            return -1;
        cmd->value[0] = '=';
        memcpy(cmd->value + 1, v->str, v->len);
        zone_redis_arg(cmd, cmd->value, v->len + 1);
    }
    if (op->kind == ZONE_ADD)
        zone_redis_arg_str(cmd, "NX");
    if (op->ttl > 0) {
        zone_redis_arg_str(cmd, "PX");
        zone_redis_arg_ms(cmd, 1, op->ttl);
    }
    return 0;
}

static int
zone_redis_cmd_incr(struct zone_redis_cmd *cmd, const char *prefix, const char *zone,
                    const struct zone_op *op, int klen)
{
    int plen = 0;

    if (op->peek != NULL && (plen = zone_redis_key(cmd->peek, prefix, zone, op->peek,
                                                   op->plen)) < 0)
        return -1;
    zone_redis_arg_str(cmd, "EVALSHA");
    zone_redis_arg_str(cmd, zone_redis_script_sha(ZONE_REDIS_INCR_SCRIPT));
    zone_redis_arg_str(cmd, op->peek != NULL ? "2" : "1");
    zone_redis_arg(cmd, cmd->key, (size_t)klen);
    if (op->peek != NULL)
        zone_redis_arg(cmd, cmd->peek, (size_t)plen);
    zone_redis_arg_num(cmd, 0, op->by);
    zone_redis_arg_ms(cmd, 1, op->ttl);
    zone_redis_arg_str(cmd, op->readonly ? "1" : "0");
    return 0;
}

int
zone_redis_cmd_build(struct zone_redis_cmd *cmd, const char *prefix, const char *zone,
                     const struct zone_op *op)
{
    int klen;

    memset(cmd, 0, sizeof(*cmd));
    if ((klen = zone_redis_key(cmd->key, prefix, zone, op->key, op->klen)) < 0)
        return -1;
    switch (op->kind) {
    case ZONE_GET:
        zone_redis_arg_str(cmd, "EVALSHA");
        zone_redis_arg_str(cmd, zone_redis_script_sha(ZONE_REDIS_GET_SCRIPT));
        zone_redis_arg_str(cmd, "1");
        zone_redis_arg(cmd, cmd->key, (size_t)klen);
        return 0;
    case ZONE_SET: case ZONE_ADD: return zone_redis_cmd_store(cmd, op, klen);
    case ZONE_INCR: return zone_redis_cmd_incr(cmd, prefix, zone, op, klen);
    case ZONE_DELETE:
        zone_redis_arg_str(cmd, "DEL");
        zone_redis_arg(cmd, cmd->key, (size_t)klen);
        return 0;
    }
    return -1;
}

void
zone_redis_cmd_cleanup(struct zone_redis_cmd *cmd)
{
    free(cmd->value);
    cmd->value = NULL;
}

/* ---- replies ----------------------------------------------------------------------------- */

/* A stored value: '=' and a string's octets, or a number's text. Anything else (a key
 * someone else wrote) reads as the string it is. */
static void
zone_redis_value(const char *s, size_t n, struct shdict_value *v)
{
    char  buf[64], *end;
    double num;

    if (n > 0 && s[0] == '=') {
        v->type = SHDICT_STRING;
        v->str = s + 1;
        v->len = n - 1;
        return;
    }
    if (n > 0 && n < sizeof(buf)) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        num = strtod(buf, &end);
        if (*end == '\0' && num == num) {
            v->type = SHDICT_NUMBER;
            v->num = num;
            return;
        }
    }
    v->type = SHDICT_STRING;
    v->str = s;
    v->len = n;
}

/* A bulk string as a number into *out: false when nil or not a number. */
static bool
zone_redis_number(const redisReply *e, double *out)
{
    struct shdict_value v;

    if (e == NULL || e->type != REDIS_REPLY_STRING)
        return false;
    zone_redis_value(e->str, e->len, &v);
    if (v.type != SHDICT_NUMBER)
        return false;
    *out = v.num;
    return true;
}

static void
zone_redis_result_get(const redisReply *reply, double now, struct zone_result *r, bool *broken)
{
    if (reply->type == REDIS_REPLY_NIL) {
        r->rc = SHDICT_NOT_FOUND;
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_INTEGER) {
        *broken = true;
        return;
    }
    zone_redis_value(reply->element[0]->str, reply->element[0]->len, &r->v);
    r->v.expires = reply->element[1]->integer > 0
                       ? now + (double)reply->element[1]->integer / 1000 : 0;
    r->rc = SHDICT_OK;
}

static void
zone_redis_result_incr(const struct zone_op *op, const redisReply *reply,
                       struct zone_result *r, bool *broken)
{
    const redisReply *v;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        *broken = true;
        return;
    }
    v = reply->element[0];
    r->num = 0;
    if (v->type == REDIS_REPLY_STRING && !zone_redis_number(v, &r->num)) {
        r->rc = SHDICT_NOT_NUMBER; /* readonly: a string is there */
        return;
    }
    if (v->type != REDIS_REPLY_STRING && !(op->readonly && v->type == REDIS_REPLY_NIL)) {
        *broken = true;
        return;
    }
    if (!zone_redis_number(reply->element[1], &r->peek))
        r->peek = 0;
    r->rc = SHDICT_OK;
}

void
zone_redis_result(const struct zone_op *op, const redisReply *reply, double now,
                  struct zone_result *r, bool *broken)
{
    memset(r, 0, sizeof(*r));
    r->rc = SHDICT_UNAVAILABLE;
    *broken = false;
    if (reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (strstr(reply->str, "not a valid float") != NULL)
            r->rc = SHDICT_NOT_NUMBER;
        else if (strncmp(reply->str, "NOSCRIPT", 8) == 0)
            *broken = true;
        return;
    }
    switch (op->kind) {
    case ZONE_GET: zone_redis_result_get(reply, now, r, broken); break;
    case ZONE_SET: case ZONE_ADD:
        if (reply->type == REDIS_REPLY_NIL && op->kind == ZONE_ADD)
            r->rc = SHDICT_EXISTS;
        else if (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_INTEGER)
            r->rc = SHDICT_OK; /* OK, or DEL's count for a nil value */
        else
            *broken = true;
        break;
    case ZONE_INCR: zone_redis_result_incr(op, reply, r, broken); break;
    case ZONE_DELETE:
        if (reply->type == REDIS_REPLY_INTEGER)
            r->rc = reply->integer > 0 ? SHDICT_OK : SHDICT_NOT_FOUND;
        else
            *broken = true;
        break;
    }
}
