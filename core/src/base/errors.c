/* errors.c — names and messages for every tally code, generated from the one
 * table in tally.h so the three can never disagree. */
#include "tally.h"

const char *tally_err_name(int code) {
  switch (code) {
#define TALLY_ERR_NAME_(name, value, text) \
  case (value):                            \
    return #name;
    TALLY_ERRNO_MAP(TALLY_ERR_NAME_)
#undef TALLY_ERR_NAME_
  default:
    return "UNKNOWN";
  }
}

const char *tally_strerror(int code) {
  switch (code) {
#define TALLY_ERR_TEXT_(name, value, text) \
  case (value):                            \
    return (text);
    TALLY_ERRNO_MAP(TALLY_ERR_TEXT_)
#undef TALLY_ERR_TEXT_
  default:
    return "unknown error";
  }
}

uint32_t tally_version(void) { return TALLY_VERSION_HEX; }
