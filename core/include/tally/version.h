/* tally/version.h — ABI version of libtally.
 *
 * Contract: a host built against major M loads only a libtally whose major is
 * M. Minor versions only add: new struct fields at the end, new functions,
 * new error codes; a struct's `size` says which fields a host knows (tally.h,
 * tests/unit/test_abi.c), so a host built against an older minor keeps
 * working. 1.5: networks and identities, structured effects; 1.6: remote
 * mode (tallyd), name limits for XMPP and Matrix, fast stop, live
 * reconfigure; 1.7: admin forms in command docs (operator_usage).
 * tally_version() reports what the library actually is, so a host can refuse a mismatch with a clear message instead of crashing. */
#ifndef TALLY_VERSION_H
#define TALLY_VERSION_H

#define TALLY_VERSION_MAJOR 1
#define TALLY_VERSION_MINOR 7
#define TALLY_VERSION_PATCH 0
#define TALLY_VERSION_STRING "1.7.0"

/* (major << 16) | minor: what tally_version() returns. */
#define TALLY_VERSION_HEX ((TALLY_VERSION_MAJOR << 16) | TALLY_VERSION_MINOR)

#endif
