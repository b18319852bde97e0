/* msgpack_scan.h — a bounds check of untrusted msgpack bytes before
 * msgpack-c sees them.
 *
 * Contract: TALLY_OK when buf[0..len) is exactly one msgpack object made only
 * of integers, str, bin and arrays, and every declared length or element
 * count fits in the bytes that remain; TALLY_EFRAME otherwise. One pass, no
 * recursion, no allocation. Why: msgpack-c reserves an array's declared
 * element count before reading any element, so a 5-byte header could ask
 * for gigabytes. */
#ifndef TALLY_MSGPACK_SCAN_H
#define TALLY_MSGPACK_SCAN_H

#include <stddef.h>
#include <stdint.h>

int tally__msgpack_scan(const uint8_t *buf, size_t len);

#endif
