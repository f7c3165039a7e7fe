/* Static file serving: safe path resolution, Content-Type, HEAD. */
#include "server/http_static.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bodies go out a chunk at a time as the connection drains: a slow reader
 * holds about two chunks, whatever the file size. */
#define DX_STATIC_CHUNK (256u << 10)
/* The next chunk is queued when the backlog falls to this. The server's
 * low_water is for WebSocket sends and may be anything, even above a
 * chunk (then on_drain would never fire and the download would stall), so
 * a connection serving a file uses its own; it never becomes a WebSocket. */
#define DX_STATIC_LOW_WATER (DX_STATIC_CHUNK / 4)

struct dx_static_body {
  int fd;
  uint64_t off, size;
};

static const struct {
  const char *ext, *type;
} mime[] = {
    {".html", "text/html; charset=utf-8"},
    {".htm", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".txt", "text/plain; charset=utf-8"},
    {".md", "text/markdown; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".webp", "image/webp"},
    {".ico", "image/x-icon"},
    {".wasm", "application/wasm"},
    {".woff2", "font/woff2"},
};

const char *dx__mime_type(const char *path) {
  const char *dot = strrchr(path, '.');
  if (dot && !strchr(dot, '/')) {
    for (size_t i = 0; i < sizeof mime / sizeof *mime; i++)
      if (strcasecmp(dot, mime[i].ext) == 0) return mime[i].type;
  }
  return "application/octet-stream";
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode the path into out; refuse NUL, backslashes and any ".."
 * segment before touching the file system. */
static bool decode_path(const char *p, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '%') {
      if (i + 2 >= n) return false;
      int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
      if (h < 0 || l < 0) return false;
      c = (char)(h << 4 | l);
      i += 2;
    }
    if (c == 0 || c == '\\' || o + 1 >= cap) return false;
    out[o++] = c;
  }
  out[o] = 0;
  /* Reject "..", "/../", trailing "/.." as whole segments. */
  for (const char *s = out; (s = strstr(s, "..")) != NULL; s += 2) {
    bool start = s == out || s[-1] == '/';
    bool end = s[2] == 0 || s[2] == '/';
    if (start && end) return false;
  }
  return out[0] == '/';
}

void dx__static_body_free(dx_static_body *b) {
  if (!b) return;
  close(b->fd);
  free(b);
}

int dx__static_body_pump(dx_stream *s, dx_static_body *b) {
  size_t n = b->size - b->off > DX_STATIC_CHUNK ? DX_STATIC_CHUNK : (size_t)(b->size - b->off);
  uint8_t *dst = dx_stream_reserve(s, n);
  if (!dst) {
    dx__static_body_free(b);
    return DX_ENOMEM;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(b->fd, dst + got, n - got, (off_t)(b->off + got));
    if (r <= 0) break;
    got += (size_t)r;
  }
  dx_stream_commit(s, got);
  if (got != n) { /* the file shrank: the peer sees a short body and EOF */
    dx__static_body_free(b);
    return DX_ESYS;
  }
  b->off += n;
  if (b->off < b->size) return 0;
  dx__static_body_free(b);
  return 1;
}

/* Queue the head and the first chunk; hand the rest back in *rest. */
static int send_file(dx_stream *s, int fd, const struct stat *st, const char *path, bool head,
                     dx_static_body **rest) {
  char hdr[512];
  int hn = snprintf(hdr, sizeof hdr,
                    "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %lld\r\n"
                    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
                    "Connection: close\r\n\r\n",
                    dx__mime_type(path), (long long)st->st_size);
  if (dx_stream_write(s, hdr, (size_t)hn) != 0) return 500;
  if (head || st->st_size == 0) return 200;
  dx_static_body *b = malloc(sizeof *b);
  if (!b) return 500;
  *b = (dx_static_body){.fd = dup(fd), .off = 0, .size = (uint64_t)st->st_size};
  if (b->fd < 0) {
    free(b);
    return 500;
  }
  int rc = dx__static_body_pump(s, b);
  if (rc == 0) {
    dx_stream_set_limits(s, DX_STATIC_LOW_WATER);
    *rest = b;
  }
  return rc >= 0 ? 200 : 500; /* on an error the head is out: the body ends short */
}

static int respond_status(dx_stream *s, int status, const char *body) {
  char buf[512];
  int n = dx_http_build_error(buf, sizeof buf, status, body);
  if (n > 0) dx_stream_write(s, buf, (size_t)n);
  return status;
}

int dx__http_serve_static(dx_stream *s, const char *root, const dx_http_request *req, bool head,
                          dx_static_body **rest) {
  *rest = NULL;
  char rel[PATH_MAX], full[PATH_MAX], real_root[PATH_MAX], real[PATH_MAX];
  if (req->path.len >= sizeof rel) return respond_status(s, 414, "path too long");
  if (!decode_path(req->path.ptr, req->path.len, rel, sizeof rel)) return 404;
  if (!realpath(root, real_root)) return 404;
  int n = snprintf(full, sizeof full, "%s%s", real_root, rel);
  if (n < 0 || (size_t)n >= sizeof full) return respond_status(s, 414, "path too long");
  struct stat st;
  if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
    size_t len = strlen(full);
    n = snprintf(full + len, sizeof full - len, "%sindex.html", full[len - 1] == '/' ? "" : "/");
    if (n < 0 || (size_t)n >= sizeof full - len) return 404;
  }
  /* Resolve symlinks, then insist the result is still under the root. */
  if (!realpath(full, real)) return 404;
  size_t rl = strlen(real_root);
  if (strncmp(real, real_root, rl) != 0 || (real[rl] != '/' && real[rl] != 0))
    return respond_status(s, 403, "forbidden");
  /* Only regular files: opening a FIFO would block the loop, so check
   * first, and open non-blocking in case it changed in between. */
  if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) return 404;
  int fd = open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return 404;
  int status;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    status = 404;
  else
    status = send_file(s, fd, &st, real, head, rest);
  close(fd);
  return status;
}
