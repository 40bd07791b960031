/* param_init — layout-independent initialisation (DESIGN.md principle 2).
 *
 * A parameter's initial value is a pure function of (seed, parameter name,
 * logical element index): a splitmix64 hash of those three gives two uniform
 * numbers, Box-Muller turns them into a standard normal. No generator state is
 * carried between elements, so a rank holding any shard of any tensor computes
 * exactly the values the 1-process run holds at those logical positions.
 */
#ifndef TESSERA_PARAM_INIT_H
#define TESSERA_PARAM_INIT_H

#include <stdint.h>

#include "registry.h"

/* The standard normal of element `logical_index` of tensor `name`. */
double param_init_normal(uint64_t seed, const char *name, int64_t logical_index);

/* Fills host[p->offset ...] for every parameter of the registry. */
void param_init_all(const registry *reg, uint64_t seed, float *host);

/* splitmix64 finaliser: a well-mixed 64-bit hash of x. */
uint64_t hash_mix64(uint64_t x);

#endif
