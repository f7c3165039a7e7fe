/* duplex — what every public header shares.
 *
 * DX_API marks the functions of the public API. The library is built with
 * -fvisibility=hidden, so libduplex.so exports exactly the marked functions
 * and none of its internal ones (dx__*, streams, write queues...);
 * tests/e2e/test_symbols.sh checks both directions with `nm -D`.
 */
#ifndef DUPLEX_COMMON_H
#define DUPLEX_COMMON_H

#if defined(__GNUC__) || defined(__clang__)
#define DX_API __attribute__((visibility("default")))
#else
#define DX_API
#endif

#endif /* DUPLEX_COMMON_H */
