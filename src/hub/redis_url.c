/* hub — Redis URLs (redis://, rediss://, redis+sentinel://, redis+cluster://) and the cluster
 * hash slot of a key. See redis_client.h for the forms. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/redis_client.h"

static int fail(char *err, size_t errlen, const char *expect, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, const char *expect, const char *fmt, ...) {
  if (err && errlen) {
    char why[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "redis URL: %s (expected %s)", why, expect);
  }
  return -1;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* %-decode s[0..len) into out (cap bytes with the NUL). 0, -1 bad escape or NUL, -2 too long. */
static int pct_decode(const char *s, size_t len, char *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= len) return -1;
      int hi = hexval(s[i + 1]);
      int lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi * 16 + lo);
      if (c == '\0') return -1;
      i += 2;
    }
    if (n + 1 >= cap) return -2;
    out[n++] = c;
  }
  out[n] = '\0';
  return 0;
}

/* Digits only, value in [lo, hi]. */
static bool parse_num(const char *s, size_t len, long lo, long hi, long *out) {
  if (len == 0 || len > 10) return false;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

static bool host_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

/* One "host[:port]" or "[v6][:port]" of s[0..len). */
static int parse_hostport(const char *s, size_t len, uint16_t defport, hub_redis_addr *a,
                          const char *expect, char *err, size_t errlen) {
  const char *port = NULL;
  size_t hlen;
  const char *h = s;
  if (len && s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (!close) return fail(err, errlen, expect, "unclosed '[' in host '%.*s'", (int)len, s);
    h = s + 1;
    hlen = (size_t)(close - h);
    char v6[64];
    struct in6_addr tmp;
    if (hlen == 0 || hlen >= sizeof v6)
      return fail(err, errlen, expect, "bad IPv6 address '%.*s'", (int)len, s);
    memcpy(v6, h, hlen);
    v6[hlen] = '\0';
    if (inet_pton(AF_INET6, v6, &tmp) != 1)
      return fail(err, errlen, expect, "bad IPv6 address '%s'", v6);
    size_t rest = len - (size_t)(close + 1 - s);
    if (rest) {
      if (close[1] != ':')
        return fail(err, errlen, expect, "junk after ']' in '%.*s'", (int)len, s);
      port = close + 2;
    }
  } else {
    const char *colon = memchr(s, ':', len);
    hlen = colon ? (size_t)(colon - s) : len;
    if (colon) port = colon + 1;
    for (size_t i = 0; i < hlen; i++)
      if (!host_char_ok(s[i]))
        return fail(err, errlen, expect, "bad character in host '%.*s'", (int)len, s);
  }
  if (hlen == 0) return fail(err, errlen, expect, "no host");
  if (hlen >= sizeof a->host)
    return fail(err, errlen, expect, "host longer than %zu bytes", sizeof a->host - 1);
  memcpy(a->host, h, hlen);
  a->host[hlen] = '\0';
  a->port = defport;
  if (port) {
    long p;
    size_t plen = (size_t)(s + len - port);
    if (!parse_num(port, plen, 1, 65535, &p))
      return fail(err, errlen, expect, "bad port '%.*s' (1-65535)", (int)plen, port);
    a->port = (uint16_t)p;
  }
  return 0;
}

static int parse_query(const char *q, hub_redis_url *u, const char *expect, char *err,
                       size_t errlen) {
  while (*q) {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    const char *eq = memchr(q, '=', len);
    size_t klen = eq ? (size_t)(eq - q) : len;
    const char *v = eq ? eq + 1 : q + len;
    size_t vlen = (size_t)(q + len - v);
    if (klen == 2 && !memcmp(q, "ca", 2)) {
      int rc = pct_decode(v, vlen, u->ca_file, sizeof u->ca_file);
      if (rc == -2) return fail(err, errlen, expect, "ca= path too long");
      if (rc < 0 || !u->ca_file[0]) return fail(err, errlen, expect, "bad ca= path");
    } else if (klen == 8 && !memcmp(q, "insecure", 8)) {
      if (vlen == 1 && (v[0] == '1' || v[0] == '0'))
        u->insecure = v[0] == '1';
      else
        return fail(err, errlen, expect, "insecure= takes 0 or 1");
    } else if (klen == 17 && !memcmp(q, "sentinel_password", 17)) {
      int rc = pct_decode(v, vlen, u->sentinel_password, sizeof u->sentinel_password);
      if (rc == -2)
        return fail(err, errlen, expect, "sentinel_password longer than %zu bytes",
                    sizeof u->sentinel_password - 1);
      if (rc < 0 || !u->sentinel_password[0])
        return fail(err, errlen, expect, "bad sentinel_password=");
      if (!u->sentinel)
        return fail(err, errlen, expect, "sentinel_password= needs redis+sentinel://");
    } else {
      return fail(err, errlen, expect,
                  "unknown option '%.*s' (known: ca, insecure, sentinel_password)", (int)klen, q);
    }
    if (!amp) break;
    q = amp + 1;
  }
  if (!u->tls && (u->ca_file[0] || u->insecure))
    return fail(err, errlen, expect, "ca= and insecure= need TLS (rediss://)");
  return 0;
}

int hub_redis_url_parse(const char *s, hub_redis_url *u, char *err, size_t errlen) {
  static const struct {
    const char *scheme;
    bool tls, sentinel, cluster;
    const char *expect;
  } schemes[] = {
      {"redis://", false, false, false, "redis://host:port/db"},
      {"rediss://", true, false, false, "rediss://host:port/db"},
      {"redis+sentinel://", false, true, false, "redis+sentinel://host:port,host:port/mastername"},
      {"rediss+sentinel://", true, true, false, "rediss+sentinel://host:port,host:port/mastername"},
      {"redis+cluster://", false, false, true, "redis+cluster://host:port,host:port"},
      {"rediss+cluster://", true, false, true, "rediss+cluster://host:port,host:port"},
  };
  memset(u, 0, sizeof *u);
  if (err && errlen) err[0] = '\0';
  const char *expect = schemes[0].expect;
  if (!s || !*s) return fail(err, errlen, expect, "empty");
  size_t slen = strlen(s);
  if (slen > 4096) return fail(err, errlen, expect, "longer than 4096 bytes");
  for (const char *c = s; *c; c++)
    if ((unsigned char)*c <= ' ' || *c == 0x7f)
      return fail(err, errlen, expect, "space or control character at offset %zu", (size_t)(c - s));
  const char *p = NULL;
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
    size_t n = strlen(schemes[i].scheme);
    if (!strncmp(s, schemes[i].scheme, n)) {
      p = s + n;
      u->tls = schemes[i].tls;
      u->sentinel = schemes[i].sentinel;
      u->cluster = schemes[i].cluster;
      expect = schemes[i].expect;
      break;
    }
  }
  if (!p) {
    const char *sep = strstr(s, "://");
    if (!sep) return fail(err, errlen, expect, "no scheme");
    return fail(err, errlen, expect,
                "unknown scheme '%.*s' (redis, rediss, redis+sentinel, redis+cluster)",
                (int)(sep - s > 32 ? 32 : sep - s), s);
  }
  /* Split authority / path / query. The query is only after the path or authority. */
  const char *q = strchr(p, '?');
  const char *end = q ? q : p + strlen(p);
  const char *slash = memchr(p, '/', (size_t)(end - p));
  const char *auth_end = slash ? slash : end;
  /* userinfo: up to the last '@' of the authority (a password may hold '@' only %-encoded, but be
   * lenient with the last one). */
  const char *at = NULL;
  for (const char *c = p; c < auth_end; c++)
    if (*c == '@') at = c;
  const char *hosts = p;
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon)
      return fail(err, errlen, expect,
                  "user without password (write :password@ or user:password@)");
    int rc = pct_decode(p, (size_t)(colon - p), u->user, sizeof u->user);
    if (rc == -2)
      return fail(err, errlen, expect, "user longer than %zu bytes", sizeof u->user - 1);
    if (rc < 0) return fail(err, errlen, expect, "bad %%-escape in user");
    rc = pct_decode(colon + 1, (size_t)(at - colon - 1), u->password, sizeof u->password);
    if (rc == -2)
      return fail(err, errlen, expect, "password longer than %zu bytes", sizeof u->password - 1);
    if (rc < 0) return fail(err, errlen, expect, "bad %%-escape in password");
    if (!u->password[0]) return fail(err, errlen, expect, "empty password before '@'");
    hosts = at + 1;
  }
  /* Hosts. */
  uint16_t defport = u->sentinel ? 26379 : 6379;
  const char *h = hosts;
  if (h == auth_end) return fail(err, errlen, expect, "no host");
  while (h < auth_end) {
    const char *comma = memchr(h, ',', (size_t)(auth_end - h));
    const char *hend = comma ? comma : auth_end;
    if (u->naddrs == HUB_REDIS_MAX_ADDRS)
      return fail(err, errlen, expect, "more than %d hosts", HUB_REDIS_MAX_ADDRS);
    if (parse_hostport(h, (size_t)(hend - h), defport, &u->addrs[u->naddrs], expect, err, errlen) <
        0)
      return -1;
    u->naddrs++;
    if (!comma) break;
    h = comma + 1;
    if (h == auth_end) return fail(err, errlen, expect, "empty host after ','");
  }
  if (u->naddrs > 1 && !u->sentinel && !u->cluster)
    return fail(err, errlen, expect, "several hosts need redis+sentinel:// or redis+cluster://");
  /* Path. */
  const char *path = slash ? slash + 1 : NULL;
  size_t plen = path ? (size_t)(end - path) : 0;
  if (u->sentinel) {
    if (!plen) return fail(err, errlen, expect, "no master name");
    const char *s2 = memchr(path, '/', plen);
    size_t mlen = s2 ? (size_t)(s2 - path) : plen;
    if (!mlen) return fail(err, errlen, expect, "empty master name");
    int rc = pct_decode(path, mlen, u->master, sizeof u->master);
    if (rc == -2)
      return fail(err, errlen, expect, "master name longer than %zu bytes", sizeof u->master - 1);
    if (rc < 0) return fail(err, errlen, expect, "bad %%-escape in master name");
    if (s2) {
      path = s2 + 1;
      plen = (size_t)(end - path);
    } else {
      plen = 0;
    }
  }
  if (plen) {
    long db;
    if (!parse_num(path, plen, 0, 1000000, &db))
      return fail(err, errlen, expect, "bad database '%.*s' (a number)",
                  (int)(plen > 32 ? 32 : plen), path);
    u->db = (int)db;
  }
  if (u->cluster && u->db) return fail(err, errlen, expect, "a cluster has only database 0");
  if (q && parse_query(q + 1, u, expect, err, errlen) < 0) return -1;
  return 0;
}

unsigned hub_redis_slot(const char *key, size_t len) {
  /* A non-empty {tag}: only the tag is hashed, so related keys share a slot. */
  const char *open = memchr(key, '{', len);
  if (open) {
    size_t rest = len - (size_t)(open + 1 - key);
    const char *close = memchr(open + 1, '}', rest);
    if (close && close > open + 1) {
      key = open + 1;
      len = (size_t)(close - key);
    }
  }
  /* CRC16-CCITT (XModem): polynomial 0x1021, initial 0, no reflection. */
  unsigned crc = 0;
  for (size_t i = 0; i < len; i++) {
    crc ^= (unsigned)(unsigned char)key[i] << 8;
    for (int b = 0; b < 8; b++)
      crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc & 16383;
}
