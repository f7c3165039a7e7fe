/* --log-format: the server commands' log lines as text (the library's
 * default) or as JSON, one object per line, for log shippers. */
#ifndef DX_APP_LOG_FORMAT_H
#define DX_APP_LOG_FORMAT_H

/* "text" or "json". Returns 0, or -1 for another name. */
int log_format_set(const char *name);

#endif
