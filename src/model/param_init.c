/* param_init — see param_init.h. */
#include "param_init.h"

#include <math.h>

uint64_t hash_mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static uint64_t hash_name(const char *name) { /* FNV-1a, then mixed */
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *c = (const unsigned char *)name; *c; c++) h = (h ^ *c) * 0x100000001b3ULL;
  return hash_mix64(h);
}

/* Uniform in (0, 1]: 53 random bits, never 0 so the logarithm is finite. */
static double unit_uniform(uint64_t bits) { return ((double)(bits >> 11) + 1.0) * 0x1.0p-53; }

double param_init_normal(uint64_t seed, const char *name, int64_t logical_index) {
  uint64_t key = hash_mix64(seed ^ hash_name(name));
  uint64_t stream = hash_mix64(key + 2 * (uint64_t)logical_index);
  double u1 = unit_uniform(stream);
  double u2 = unit_uniform(hash_mix64(stream ^ 0x6a09e667f3bcc909ULL));
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void param_init_all(const registry *reg, uint64_t seed, float *host) {
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    float *values = host + p->offset;
    switch (p->init) {
      case INIT_ZEROS:
        for (size_t i = 0; i < p->n_local; i++) values[i] = 0.0f;
        break;
      case INIT_ONES:
        for (size_t i = 0; i < p->n_local; i++) values[i] = 1.0f;
        break;
      case INIT_NORMAL:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < p->n_local; i++)
          values[i] = registry_is_padding(p, i)
                          ? 0.0f
                          : (float)(p->init_std * param_init_normal(seed, p->name,
                                                                    registry_logical_index(p, i)));
        break;
    }
  }
}
