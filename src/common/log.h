/* duplex — logging inside the library: the public facility
 * (include/duplex/log.h: levels, handler, dx_log and the dx_log_error/warn/
 * info/debug macros). Kept so every layer includes one private name. */
#ifndef DX_COMMON_LOG_H
#define DX_COMMON_LOG_H

#include "duplex/log.h"

#endif /* DX_COMMON_LOG_H */
