/* tally/version.h — ABI version of libtally.
 *
 * Contract: a host built against major M loads only a libtally whose major is
 * M. Minor versions only add: new struct fields at the end, new functions,
 * new error codes. A struct's `size` does not guard those fields yet (see
 * tally.h's contract): build a host against the header of the libtally it
 * runs with. tally_version() reports what the library actually is, so a
 * host can refuse a mismatch with a clear message instead of crashing. */
#ifndef TALLY_VERSION_H
#define TALLY_VERSION_H

#define TALLY_VERSION_MAJOR 1
#define TALLY_VERSION_MINOR 4
#define TALLY_VERSION_PATCH 0
#define TALLY_VERSION_STRING "1.4.0"

/* (major << 16) | minor: what tally_version() returns. */
#define TALLY_VERSION_HEX ((TALLY_VERSION_MAJOR << 16) | TALLY_VERSION_MINOR)

#endif
