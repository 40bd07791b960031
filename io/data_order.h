/* data_order — which window of the dataset is global sample i.
 *
 * The data order is a pure function of (seed, global sample index): sample i
 * belongs to epoch e = i / n_windows and maps to a pseudo-random permutation
 * of [0, n_windows) keyed by (seed, e). The permutation is a keyed Feistel
 * network with cycle walking, so it needs O(1) memory, any rank can evaluate
 * any index, and every layout (any dp) sees the same global batch at a step.
 */
#ifndef TESSERA_DATA_ORDER_H
#define TESSERA_DATA_ORDER_H

#include <stdint.h>

/* Window index in [first_window, first_window + n_windows) for global sample i. */
uint64_t data_order_window(uint64_t seed, uint64_t global_sample, uint64_t first_window,
                           uint64_t n_windows);

/* The bijection itself, exposed for tests: a permutation of [0, n) keyed by key. */
uint64_t data_order_permute(uint64_t index, uint64_t n, uint64_t key);

#endif
