/* The library's version, as built (see duplex/version.h). */
#include "duplex/version.h"

const char *dx_version(void) { return DX_VERSION_STRING; }
