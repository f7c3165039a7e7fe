/* Error codes: descriptions and mappings to wire status codes. */
#include "duplex/error.h"

const char *dx_strerror(int err) {
  switch (err) {
#define DX__ERR_TEXT(name, value, text) \
  case value:                           \
    return text;
    DX_ERRORS(DX__ERR_TEXT)
#undef DX__ERR_TEXT
  }
  return "unknown error";
}

const char *dx_errname(int err) {
  switch (err) {
#define DX__ERR_NAME(name, value, text) \
  case value:                           \
    return #name;
    DX_ERRORS(DX__ERR_NAME)
#undef DX__ERR_NAME
  }
  return "DX_E?";
}

uint16_t dx_close_code_for_error(int err) {
  switch (err) {
  case DX_EUTF8:
  case DX_ECLOSE_REASON_UTF8:
  case DX_EDEFLATE:
    return 1007;
  case DX_EFRAME_TOO_BIG:
  case DX_EMESSAGE_TOO_BIG:
    return 1009;
  case DX_ENOMEM:
  case DX_ESYS:
  case DX_EINVAL:
  case DX_ENOSPC:
    return 1011;
  default:
    return err <= -200 && err > -300 ? 1002 : 1011;
  }
}

int dx_http_status_for_error(int err) {
  switch (err) {
  case DX_EHTTP_METHOD:
    return 405;
  case DX_EWS_VERSION:
    return 426;
  case DX_EHTTP_LINE_TOO_LONG:
  case DX_EHTTP_TOO_MANY_HEADERS:
  case DX_EHTTP_TOO_LARGE:
    return 431;
  case DX_ENOMEM:
  case DX_ESYS:
    return 500;
  default:
    return err <= -100 && err > -200 ? 400 : 500;
  }
}
