#include "hub/topic_name.h"

bool hub_topic_valid(const char *name, size_t len) {
  if (!name || !len || len > HUB_TOPIC_MAX) return false;
  for (size_t i = 0; i < len; i++) {
    char ch = name[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == ':' || ch == '.' || ch == '/' || ch == '@' ||
              ch == '=';
    if (!ok) return false;
  }
  return true;
}
