/* hub — the Redis broker's Lua scripts (see broker_redis.c for the keys
 * they work on): their texts, as sent (PUBLISH becomes SPUBLISH on a
 * cluster), their SHA1s for EVALSHA, and SCRIPT LOAD on a connection. */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/broker_redis_internal.h"

/* The topic's epoch (e), new if the topic is (the stream goes), or if the
 * meta was written under another replication ID (new_epoch, rid). On a
 * cluster (rid '*') the shard is asked here, and a meta written by a master
 * that is not this one's former master (master_replid2) came with its slot
 * (a migration moves the data whole): the epoch stays. */
#define EPOCH_LUA                                                                                  \
  "local rid2, moved = nil, false\n"                                                               \
  "if rid == '*' then\n"                                                                           \
  "  local info = redis.call('INFO', 'replication')\n"                                             \
  "  rid = string.match(info, 'master_replid:(%x+)') or '-'\n"                                     \
  "  rid2 = string.match(info, 'master_replid2:(%x+)'); moved = true\n"                            \
  "end\n"                                                                                          \
  "local m = redis.call('HMGET', KEYS[1], 'e', 'r', 'o')\n"                                        \
  "local e = m[1]\n"                                                                               \
  "if not e then e = new_epoch; redis.call('DEL', KEYS[2]); "                                      \
  "redis.call('HSET', KEYS[1], 'e', e, 'r', rid, 'o', 0)\n"                                        \
  "elseif m[2] ~= rid and moved and m[2] ~= rid2 then redis.call('HSET', KEYS[1], 'r', rid)\n"     \
  "elseif m[2] ~= rid then e = new_epoch; "                                                        \
  "redis.call('HSET', KEYS[1], 'e', e, 'r', rid, 'f', m[3] or 0) end\n"

/* Number, retain, publish. KEYS: meta, stream. ARGV: tail, maxlen, ttl_ms
 * (history), epoch if new, channel, skip, now (wall ms), meta ttl ms,
 * replication ID. */
static const char PUBLISH_LUA[] =
    "local new_epoch, rid = ARGV[4], ARGV[9]\n" EPOCH_LUA
    "local o = redis.call('HINCRBY', KEYS[1], 'o', 1)\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[8])\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], o .. '-0', 'd', ARGV[1], 't', ARGV[7])\n"
    "  if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[5], e .. ' ' .. o .. ' ' .. ARGV[7] .. ' ' .. ARGV[6] .. '\\n' .. "
    "ARGV[1])\n"
    "return {o, e}\n";

/* A topic's position and retained publications. KEYS: meta, stream. ARGV:
 * epoch if new, meta ttl ms, after (-1: the newest), the caller's epoch,
 * count, replication ID. Returns {epoch, offset, entries, ascending, first}:
 * entries after `after` (oldest first) when the epochs match, else the
 * newest `count` (newest first; for a caller with a position, only those
 * of the epoch) and the offset of the oldest retained (0: none). */
static const char LOAD_LUA[] =
    "local new_epoch, rid = ARGV[1], ARGV[6]\n" EPOCH_LUA
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "local o = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')\n"
    "local after = tonumber(ARGV[3])\n"
    "if after >= 0 and e == ARGV[4] then\n"
    "  if after >= o then return {e, o, {}, 1, 0} end\n"
    "  return {e, o, redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', ARGV[5]), 1, "
    "0}\n"
    "end\n"
    "local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "local f = 0\n"
    "if first[1] then f = tonumber(string.match(first[1][1], '^%d+')) end\n"
    "local lo = '-'\n"
    "if after >= 0 then lo = (tonumber(redis.call('HGET', KEYS[1], 'f') or '0') + 1) .. '-0' end\n"
    "return {e, o, redis.call('XREVRANGE', KEYS[2], '+', lo, 'COUNT', ARGV[5]), 0, f}\n";

/* Presence: hash PREFIX{T}:p, field client id, value "EXPIRY_MS\nLEAVE\nITEM"
 * (the leave envelope told when it expires, the entry as JSON). */

/* KEYS: presence hash. ARGV: client, value, key ttl ms, channel, join message. */
static const char JOIN_LUA[] = "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                               "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
                               "redis.call('PUBLISH', ARGV[4], ARGV[5])\n"
                               "return 1\n";

/* KEYS: presence hash. ARGV: client, channel, leave message. Tells only
 * when the entry was there: a leave is told once. */
static const char LEAVE_LUA[] = "if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then\n"
                                "  redis.call('PUBLISH', ARGV[2], ARGV[3])\n"
                                "end\n"
                                "return 1\n";

/* KEYS: presence hash. ARGV: now ms, key ttl ms, channel, message head,
 * "extend" or "add", then client, value pairs of this node's entries:
 * their expiry is pushed on — only for entries still there ("extend"; a
 * leave sent meanwhile by another loop must not be undone), or all of them
 * ("add": after Redis came back, it may have lost them). Entries that
 * expired (their node is gone) are removed and their leave told, once. */
static const char REFRESH_LUA[] =
    "for i = 6, #ARGV, 2 do\n"
    "  if ARGV[5] == 'add' or redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then\n"
    "    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
    "  end\n"
    "end\n"
    "local now = tonumber(ARGV[1])\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #all, 2 do\n"
    "  local v = all[i + 1]\n"
    "  local nl = string.find(v, '\\n', 1, true)\n"
    "  if nl and tonumber(string.sub(v, 1, nl - 1)) < now then\n"
    "    redis.call('HDEL', KEYS[1], all[i])\n"
    "    local nl2 = string.find(v, '\\n', nl + 1, true)\n"
    "    if nl2 then redis.call('PUBLISH', ARGV[3], ARGV[4] .. string.sub(v, nl + 1, nl2 - 1)) "
    "end\n"
    "  end\n"
    "end\n"
    "if #all > 0 or #ARGV > 5 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "return 1\n";

/* KEYS: presence hash. ARGV: now ms. The live entries' JSON. */
static const char PRESENCE_LUA[] = "local now = tonumber(ARGV[1])\n"
                                   "local out = {}\n"
                                   "local all = redis.call('HGETALL', KEYS[1])\n"
                                   "for i = 1, #all, 2 do\n"
                                   "  local v = all[i + 1]\n"
                                   "  local nl = string.find(v, '\\n', 1, true)\n"
                                   "  local nl2 = nl and string.find(v, '\\n', nl + 1, true)\n"
                                   "  if nl2 and tonumber(string.sub(v, 1, nl - 1)) >= now then "
                                   "out[#out + 1] = string.sub(v, nl2 + 1) "
                                   "end\n"
                                   "end\n"
                                   "return out\n";

static const char *const SCRIPTS[NSCRIPTS] = {PUBLISH_LUA, LOAD_LUA,    JOIN_LUA,
                                              LEAVE_LUA,   REFRESH_LUA, PRESENCE_LUA};

/* A script as sent: on a cluster a topic's channel is a shard channel
 * (SPUBLISH, on the topic's own shard). malloc'd. */
static char *script_text(const char *lua, bool cluster) {
  static const char pub[] = "'PUBLISH'";
  size_t n = strlen(lua), extra = 0;
  for (const char *p = lua; cluster && (p = strstr(p, pub)); p += sizeof pub - 1) extra++;
  char *out = malloc(n + extra + 1), *o = out;
  if (!out) return NULL;
  for (const char *p = lua; *p;) {
    if (cluster && !strncmp(p, pub, sizeof pub - 1)) {
      memcpy(o, "'SPUBLISH'", 10);
      o += 10;
      p += sizeof pub - 1;
    } else {
      *o++ = *p++;
    }
  }
  *o = '\0';
  return out;
}

static void sha1_hex(const char *s, char out[41]) {
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)s, strlen(s), d);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void hub_rb_load_scripts(redis_broker *rb, hub_redis_router *c) {
  for (int i = 0; i < NSCRIPTS; i++) {
    const char *a[] = {"SCRIPT", "LOAD", rb->script[i]};
    hub_router_command_all(c, 3, a, NULL);
  }
}

int hub_rb_scripts_make(redis_broker *rb) {
  for (int i = 0; i < NSCRIPTS; i++) {
    rb->script[i] = script_text(SCRIPTS[i], rb->url.cluster);
    if (!rb->script[i]) return -1;
    sha1_hex(rb->script[i], rb->sha[i]);
  }
  return 0;
}
