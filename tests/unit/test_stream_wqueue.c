/* The write queue on its own: packing, block sizes, shared references,
 * partial consumption, reserve/commit, and iovec limits. */
#include "io/wqueue.h"
#include "test.h"

/* Concatenate the queue's iovecs (all of them) into out. */
static size_t gather(const dx_wqueue *q, uint8_t *out, int max_iov) {
  struct iovec iov[64];
  size_t total;
  int n = dx_wq_iov(q, iov, max_iov, &total);
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    memcpy(out + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  CHECK_EQ_INT(off, total);
  return off;
}

static int count_nodes(const dx_wqueue *q) {
  struct iovec iov[1024];
  size_t total;
  return dx_wq_iov(q, iov, 1024, &total);
}

TEST(small_writes_pack_into_one_block) {
  dx_wqueue q;
  dx_wq_init(&q);
  CHECK(dx_wq_empty(&q));
  for (int i = 0; i < 100; i++) CHECK_EQ_INT(dx_wq_write(&q, "abcdefgh", 8), 0);
  CHECK_EQ_INT(dx_wq_bytes(&q), 800);
  CHECK_EQ_INT(count_nodes(&q), 1); /* 800 bytes fit the 1 KiB first block */
  /* Overflow continues in a 16 KiB block: two pieces. */
  for (int i = 0; i < 1000; i++) CHECK_EQ_INT(dx_wq_write(&q, "abcdefgh", 8), 0);
  CHECK_EQ_INT(count_nodes(&q), 2);
  uint8_t out[9000];
  CHECK_EQ_INT(gather(&q, out, 64), 8800);
  for (int i = 0; i < 1100; i++) CHECK(memcmp(out + i * 8, "abcdefgh", 8) == 0);
  dx_wq_clear(&q);
  CHECK(dx_wq_empty(&q));
  CHECK_EQ_INT(dx_wq_bytes(&q), 0);
}

TEST(big_write_is_one_piece) {
  dx_wqueue q;
  dx_wq_init(&q);
  size_t n = 100000;
  uint8_t *p = malloc(n);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 13);
  CHECK_EQ_INT(dx_wq_write(&q, "x", 1), 0);
  CHECK_EQ_INT(dx_wq_write(&q, p, n), 0);
  CHECK_EQ_INT(count_nodes(&q), 2); /* the tail's slack, then one exact block */
  uint8_t *out = malloc(n + 1);
  CHECK_EQ_INT(gather(&q, out, 64), n + 1);
  CHECK(out[0] == 'x');
  CHECK_MEM(out + 1, p, n);
  free(out);
  free(p);
  dx_wq_clear(&q);
}

TEST(consume_partial_and_whole) {
  dx_wqueue q;
  dx_wq_init(&q);
  char buf[3000];
  for (int i = 0; i < 3000; i++) buf[i] = (char)(i % 97);
  dx_wq_write(&q, buf, 3000);
  dx_wq_consume(&q, 1);
  CHECK_EQ_INT(dx_wq_bytes(&q), 2999);
  uint8_t out[3000];
  CHECK_EQ_INT(gather(&q, out, 64), 2999);
  CHECK_MEM(out, buf + 1, 2999);
  dx_wq_consume(&q, 1500);
  CHECK_EQ_INT(gather(&q, out, 64), 1499);
  CHECK_MEM(out, buf + 1501, 1499);
  dx_wq_consume(&q, 1499);
  CHECK(dx_wq_empty(&q)); /* every block freed */
  CHECK(q.tail == NULL);
  /* Usable again after emptying. */
  dx_wq_write(&q, "again", 5);
  CHECK_EQ_INT(gather(&q, out, 64), 5);
  dx_wq_clear(&q);
}

TEST(shared_refs_interleave) {
  dx_wqueue q;
  dx_wq_init(&q);
  dx_sbuf *b = dx_sbuf_new(10);
  memcpy(b->data, "0123456789", 10);
  CHECK_EQ_INT(dx_wq_write(&q, "<", 1), 0);
  CHECK_EQ_INT(dx_wq_write_shared(&q, b, 2, 5), 0);
  CHECK_EQ_INT(dx_wq_write(&q, ">", 1), 0);
  CHECK_EQ_INT(dx_wq_write_shared(&q, b, 0, 10), 0);
  CHECK_EQ_INT(dx_wq_write_shared(&q, b, 0, 0), 0); /* empty: nothing */
  CHECK_EQ_INT(dx_wq_write_shared(&q, b, 5, 6), DX_EINVAL);
  CHECK_EQ_INT(dx_wq_write_shared(&q, b, 11, 0), DX_EINVAL);
  CHECK_EQ_INT(b->refs, 3);
  uint8_t out[64];
  CHECK_EQ_INT(gather(&q, out, 64), 17);
  CHECK_MEM(out, "<23456>0123456789", 17);
  /* Consuming through the first reference releases it. */
  dx_wq_consume(&q, 6);
  CHECK_EQ_INT(b->refs, 2);
  dx_wq_consume(&q, 4);
  CHECK_EQ_INT(b->refs, 2); /* second one partly sent */
  CHECK_EQ_INT(gather(&q, out, 64), 7);
  CHECK_MEM(out, "3456789", 7);
  dx_wq_clear(&q);
  CHECK_EQ_INT(b->refs, 1);
  dx_sbuf_unref(b);
  dx_sbuf_unref(NULL);
}

TEST(reserve_commit_and_iov_limit) {
  dx_wqueue q;
  dx_wq_init(&q);
  uint8_t *p = dx_wq_reserve(&q, 10);
  CHECK(p != NULL);
  memcpy(p, "reserved!!", 10);
  dx_wq_commit(&q, 8);
  CHECK_EQ_INT(dx_wq_bytes(&q), 8);
  /* Reserve in the tail's slack: same block. */
  p = dx_wq_reserve(&q, 4);
  memcpy(p, "abcd", 4);
  dx_wq_commit(&q, 4);
  CHECK_EQ_INT(count_nodes(&q), 1);
  /* A reservation that does not fit and gets nothing leaves an empty
   * block that neither shows up nor survives consumption. */
  CHECK(dx_wq_reserve(&q, 50000) != NULL);
  dx_wq_commit(&q, 0);
  CHECK_EQ_INT(count_nodes(&q), 1);
  CHECK(dx_wq_reserve(&q, (size_t)2 << 30) == NULL); /* over 1 GiB */
  uint8_t out[32];
  CHECK_EQ_INT(gather(&q, out, 64), 12);
  CHECK_MEM(out, "reservedabcd", 12);
  dx_wq_consume(&q, 12);
  CHECK(dx_wq_empty(&q));
  CHECK_EQ_INT(dx_wq_memory(&q), 0);

  /* More pieces than iovecs allowed: the first `max` only. */
  dx_sbuf *b = dx_sbuf_new(1);
  b->data[0] = 'z';
  for (int i = 0; i < 100; i++) dx_wq_write_shared(&q, b, 0, 1);
  struct iovec iov[10];
  size_t total;
  CHECK_EQ_INT(dx_wq_iov(&q, iov, 10, &total), 10);
  CHECK_EQ_INT(total, 10);
  dx_wq_consume(&q, 10);
  CHECK_EQ_INT(b->refs, 91);
  dx_wq_clear(&q);
  CHECK_EQ_INT(b->refs, 1);
  dx_sbuf_unref(b);
}

/* A run of references goes into 1 KiB chunks of 62 after the first:
 * order, partial sends inside a chunk, iovec limits across chunks, and
 * every reference released exactly once. */
TEST(many_refs_chunked) {
  dx_wqueue q;
  dx_wq_init(&q);
  enum { N = 1000 };
  dx_sbuf *b[3];
  for (int k = 0; k < 3; k++) {
    b[k] = dx_sbuf_new(7);
    memset(b[k]->data, 'a' + k, 7);
  }
  for (int i = 0; i < N; i++) CHECK_EQ_INT(dx_wq_write_shared(&q, b[i % 3], 0, 7), 0);
  CHECK_EQ_INT(dx_wq_bytes(&q), N * 7);
  CHECK_EQ_INT(b[0]->refs + b[1]->refs + b[2]->refs, 3 + N);
  size_t mem = dx_wq_memory(&q);
  printf("%d queued references: %zu bytes of queue memory\n", N, mem);
  CHECK(mem <= 32 + (N / 62 + 1) * 1024);
  CHECK_EQ_INT(count_nodes(&q), 1024 > N ? N : 1024);
  /* Send 3.5 references, then a few hundred, checking the bytes. */
  uint8_t out[64 * 7];
  dx_wq_consume(&q, 3 * 7 + 3);
  CHECK_EQ_INT(gather(&q, out, 64), 4 + 63 * 7);
  CHECK_MEM(out, "aaaabbbbbbbccccccc", 18);
  int sent = 3;
  dx_wq_consume(&q, 4 + 300 * 7); /* through the first chunks */
  sent += 301;
  CHECK_EQ_INT(b[0]->refs + b[1]->refs + b[2]->refs, 3 + N - sent);
  CHECK_EQ_INT(gather(&q, out, 2), 14);
  CHECK(out[0] == 'a' + sent % 3 && out[7] == 'a' + (sent + 1) % 3);
  /* A copy between references, then more references after it. */
  CHECK_EQ_INT(dx_wq_write(&q, "|", 1), 0);
  CHECK_EQ_INT(dx_wq_write_shared(&q, b[0], 1, 2), 0);
  CHECK_EQ_INT(dx_wq_write_shared(&q, b[1], 1, 2), 0);
  dx_wq_consume(&q, (size_t)(N - sent) * 7);
  CHECK_EQ_INT(gather(&q, out, 64), 5);
  CHECK_MEM(out, "|aabb", 5);
  CHECK_EQ_INT(b[0]->refs + b[1]->refs + b[2]->refs, 3 + 2);
  dx_wq_consume(&q, 5);
  CHECK(dx_wq_empty(&q) && q.tail == NULL);
  CHECK_EQ_INT(b[0]->refs + b[1]->refs + b[2]->refs, 3);
  /* Clearing a queue with partly sent chunks releases the rest. */
  for (int i = 0; i < 200; i++) dx_wq_write_shared(&q, b[0], 0, 7);
  dx_wq_consume(&q, 100 * 7 + 1);
  dx_wq_clear(&q);
  CHECK_EQ_INT(b[0]->refs, 1);
  for (int k = 0; k < 3; k++) dx_sbuf_unref(b[k]);
}

TEST(small_blocks_between_refs) {
  /* A slow receiver of broadcasts with small direct writes in between must
   * not pin 16 KiB per small write. */
  dx_wqueue q;
  dx_wq_init(&q);
  dx_sbuf *b = dx_sbuf_new(100);
  memset(b->data, 'b', 100);
  for (int i = 0; i < 50; i++) {
    dx_wq_write_shared(&q, b, 0, 100);
    dx_wq_write(&q, "ping", 4);
  }
  CHECK_EQ_INT(count_nodes(&q), 100);
  CHECK_EQ_INT(dx_wq_bytes(&q), 50 * 104);
  size_t mem = dx_wq_memory(&q);
  printf("50 x (100-byte ref + 4-byte copy): %zu bytes of queue memory\n", mem);
  CHECK(mem <= 50 * (32 + 1024));
  dx_wq_clear(&q);
  dx_sbuf_unref(b);
}

/* The nodes form a ring closed by the tail: one node (its own head),
 * nodes of every kind appended after a partial send, a send that ends
 * exactly on a node boundary, one that crosses several, iovec limits that
 * stop inside the ring, and emptying and refilling. */
TEST(ring_edges) {
  dx_wqueue q;
  dx_wq_init(&q);
  uint8_t out[64];
  size_t total;
  struct iovec iov[8];
  CHECK_EQ_INT(dx_wq_iov(&q, iov, 8, &total), 0);
  CHECK_EQ_INT(total, 0);
  dx_wq_consume(&q, 0); /* empty: nothing to do */
  CHECK(dx_wq_empty(&q));

  /* One node: head and tail at once. */
  CHECK_EQ_INT(dx_wq_write(&q, "abc", 3), 0);
  CHECK_EQ_INT(count_nodes(&q), 1);
  dx_wq_consume(&q, 1);
  CHECK_EQ_INT(dx_wq_write(&q, "de", 2), 0); /* packed into the same node */
  CHECK_EQ_INT(count_nodes(&q), 1);
  CHECK_EQ_INT(gather(&q, out, 64), 4);
  CHECK_MEM(out, "bcde", 4);
  dx_wq_consume(&q, 4);
  CHECK(dx_wq_empty(&q) && q.tail == NULL);
  CHECK_EQ_INT(dx_wq_memory(&q), 0);

  /* copy | ref | copy | chunk-less ref pair: five nodes. */
  dx_sbuf *b = dx_sbuf_new(4);
  memcpy(b->data, "WXYZ", 4);
  CHECK_EQ_INT(dx_wq_write(&q, "12", 2), 0);
  CHECK_EQ_INT(dx_wq_write_shared(&q, b, 0, 4), 0);
  CHECK_EQ_INT(dx_wq_write(&q, "34", 2), 0);
  CHECK_EQ_INT(dx_wq_write_shared(&q, b, 1, 2), 0);
  CHECK_EQ_INT(dx_wq_write_shared(&q, b, 2, 2), 0); /* a chunk after a ref */
  CHECK_EQ_INT(count_nodes(&q), 5);
  CHECK_EQ_INT(b->refs, 4);
  CHECK_EQ_INT(gather(&q, out, 64), 12);
  CHECK_MEM(out, "12WXYZ34XYYZ", 12);
  /* Limits stop inside the ring, in order, and never wrap around. */
  CHECK_EQ_INT(dx_wq_iov(&q, iov, 2, &total), 2);
  CHECK_EQ_INT(total, 6);
  CHECK_EQ_INT(dx_wq_iov(&q, iov, 5, &total), 5);
  CHECK_EQ_INT(dx_wq_iov(&q, iov, 8, &total), 5);
  CHECK_EQ_INT(total, 12);

  /* Exactly the first node: it goes, the next becomes the head. */
  dx_wq_consume(&q, 2);
  CHECK_EQ_INT(count_nodes(&q), 4);
  CHECK_EQ_INT(b->refs, 4);
  /* Across two nodes into the third, then append behind the new head. */
  dx_wq_consume(&q, 5);
  CHECK_EQ_INT(b->refs, 3);
  CHECK_EQ_INT(dx_wq_write(&q, "56", 2), 0);
  CHECK_EQ_INT(gather(&q, out, 64), 7);
  CHECK_MEM(out, "4XYYZ56", 7);
  CHECK_EQ_INT(dx_wq_bytes(&q), 7);
  /* Everything but the last byte, across every kind. */
  dx_wq_consume(&q, 6);
  CHECK_EQ_INT(b->refs, 1);
  CHECK_EQ_INT(count_nodes(&q), 1);
  CHECK_EQ_INT(gather(&q, out, 64), 1);
  CHECK(out[0] == '6');
  dx_wq_consume(&q, 1);
  CHECK(dx_wq_empty(&q));
  CHECK_EQ_INT(dx_wq_bytes(&q), 0);

  /* A reserved block that got nothing, behind bytes: sent with them. */
  CHECK_EQ_INT(dx_wq_write_shared(&q, b, 0, 1), 0);
  CHECK(dx_wq_reserve(&q, 8) != NULL);
  dx_wq_commit(&q, 0);
  CHECK_EQ_INT(gather(&q, out, 64), 1);
  dx_wq_consume(&q, 1);
  CHECK(dx_wq_empty(&q));
  CHECK_EQ_INT(b->refs, 1);

  /* Clearing a ring of several kinds releases every reference. */
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(dx_wq_write_shared(&q, b, 0, 4), 0);
    CHECK_EQ_INT(dx_wq_write(&q, "-", 1), 0);
  }
  dx_wq_consume(&q, 2);
  dx_wq_clear(&q);
  CHECK(dx_wq_empty(&q));
  CHECK_EQ_INT(b->refs, 1);
  dx_sbuf_unref(b);
}

/* The per-thread block cache keeps what a busy loop reuses and gives back,
 * once a second, what sat unused for a whole second. */
static void cycle_large_blocks(int k) {
  static uint8_t data[4100];
  dx_wqueue q[16];
  for (int i = 0; i < k; i++) {
    dx_wq_init(&q[i]);
    CHECK_EQ_INT(dx_wq_write(&q[i], data, sizeof data), 0); /* one 16 KiB block */
  }
  for (int i = 0; i < k; i++) dx_wq_consume(&q[i], sizeof data);
}

TEST(block_cache_trims_what_sat_unused) {
  uint64_t t = 1u << 30;
  /* Start from an empty cache whatever earlier tests left. */
  dx_wq_cache_tick(t);
  dx_wq_cache_tick(t += 1000);
  dx_wq_cache_tick(t += 1000);
  CHECK_EQ_INT(dx_wq_cache_bytes(), 0);
  CHECK(!dx_wq_cache_tick(t += 1000));

  cycle_large_blocks(10);
  CHECK_EQ_INT(dx_wq_cache_bytes(), 10 * DX_WQ_BLOCK);
  CHECK(dx_wq_cache_tick(t += 1000)); /* period starts: all 10 unused so far */
  cycle_large_blocks(4);              /* 4 are reused during the period */
  CHECK(dx_wq_cache_tick(t += 1000));
  CHECK_EQ_INT(dx_wq_cache_bytes(), 4 * DX_WQ_BLOCK);
  /* Not a whole period yet: nothing freed. */
  CHECK(dx_wq_cache_tick(t + 999));
  CHECK_EQ_INT(dx_wq_cache_bytes(), 4 * DX_WQ_BLOCK);
  /* Idle for a period: everything goes back. */
  CHECK(!dx_wq_cache_tick(t += 1000));
  CHECK_EQ_INT(dx_wq_cache_bytes(), 0);
}

int main(void) {
  RUN(small_writes_pack_into_one_block);
  RUN(big_write_is_one_piece);
  RUN(consume_partial_and_whole);
  RUN(shared_refs_interleave);
  RUN(reserve_commit_and_iov_limit);
  RUN(many_refs_chunked);
  RUN(small_blocks_between_refs);
  RUN(ring_edges);
  RUN(block_cache_trims_what_sat_unused);
  return test_report();
}
