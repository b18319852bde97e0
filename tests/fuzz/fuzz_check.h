/* fuzz_check.h — the one assertion the fuzz targets use. A broken property
 * prints what broke and aborts, so libFuzzer saves the input and the replay
 * binaries (built with gcc, without libFuzzer) fail the same way. Plain
 * assert() is not used because release builds may define NDEBUG. */
#ifndef TALLY_FUZZ_CHECK_H
#define TALLY_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                      \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__,  \
              #cond);                                                         \
      abort();                                                                \
    }                                                                         \
  } while (0)

#endif
