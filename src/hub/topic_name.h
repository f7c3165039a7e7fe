/* hub — topic names: 1-128 bytes of A-Z a-z 0-9 _ - : . / @ = (PROTOCOL.md). */
#ifndef DX_HUB_TOPIC_NAME_H
#define DX_HUB_TOPIC_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define HUB_TOPIC_MAX 128
#define HUB_TOPIC_RULE "topic names are 1-128 bytes of A-Z a-z 0-9 _ - : . / @ ="

bool hub_topic_valid(const char *name, size_t len);

#endif
