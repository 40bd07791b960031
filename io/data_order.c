/* data_order — see data_order.h.
 *
 * permute(i) runs a 4-round Feistel network over the smallest domain of 2^k
 * values (k even, k ≥ 2) that holds n: the index is split into two halves
 * (L, R) of k/2 bits, and each round sets (L, R) ← (R, L ⊕ F(key, round, R))
 * with F a splitmix64 hash truncated to k/2 bits. A Feistel network is a
 * bijection on the 2^k domain whatever F is; "cycle walking" — applying it
 * again while the result is ≥ n — restricts it to a bijection on [0, n).
 * Since the domain is < 4n, a walk takes fewer than 4 rounds on average.
 */
#include "data_order.h"

static uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static uint64_t feistel(uint64_t x, int half_bits, uint64_t key) {
  const uint64_t mask = (half_bits == 32) ? 0xffffffffULL : ((1ULL << half_bits) - 1);
  uint64_t left = x >> half_bits, right = x & mask;
  for (uint64_t round = 0; round < 4; round++) {
    uint64_t f = mix(key ^ mix(round * 0x632be59bd9b4e019ULL + right)) & mask;
    uint64_t next_right = left ^ f;
    left = right;
    right = next_right;
  }
  return (left << half_bits) | right;
}

uint64_t data_order_permute(uint64_t index, uint64_t n, uint64_t key) {
  if (n <= 1) return 0;
  int bits = 2;
  while (bits < 64 && (1ULL << bits) < n) bits += 2;
  uint64_t x = index;
  do {
    x = feistel(x, bits / 2, key);
  } while (x >= n);
  return x;
}

uint64_t data_order_window(uint64_t seed, uint64_t global_sample, uint64_t first_window,
                           uint64_t n_windows) {
  uint64_t epoch = global_sample / n_windows;
  uint64_t key = mix(mix(seed) ^ (epoch + 0x5851f42d4c957f2dULL));
  return first_window + data_order_permute(global_sample % n_windows, n_windows, key);
}
