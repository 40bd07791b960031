/* test_sp_scan — ZeCO's All-Scan (parallel/sequence/sp_scan.h) on a real MPI
 * job (run by tests/sp_scan.sh on 1, 2, 3 and 4 ranks): random per-rank
 * states of a few heads with per-head decays, scanned up and down the
 * ranks with blocks of 1, 4 (the last block short), all and more than all
 * head matrices, through the CPU backend's host view and through the staged
 * path (host_pointer NULL, as `--comm mpi` on a GPU). Every rank's entering
 * state must equal the sequential prefix λ-decayed sum of the earlier (up)
 * or later (down) ranks' states, computed here in double: the scan adds
 * the same terms in Horner order in float, so the two agree to a few ulps
 * (tolerance 1e-5 relative + 1e-6 absolute). Counters: a rank that sends
 * makes one sendrecv call per block and its bytes are one state (the
 * ring's); the last rank of the direction sends nothing. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "comm.h"
#include "runtime.h"
#include "sp_scan.h"
#include "testing.h"

enum { B = 2, NH = 3, HS = 4, N_TOKENS = 5 };
#define HEADS (B * NH)
#define ELEMS ((size_t)HEADS * HS * HS)

static const float decays[NH] = {0.9f, 0.75f, 0.99f};

static void *no_host_view(void *buffer) {
  (void)buffer;
  return NULL;
}

/* rank q's local state, element i: a deterministic pseudo-random value in [-1, 1) */
static float local_value(int q, size_t i) {
  uint64_t x = (uint64_t)(q + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(i + 1) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31, x *= 0x94D049BB133111EBull, x ^= x >> 29;
  return (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* the entering state of rank r, in double: Σ over the earlier ranks of the direction */
static double want(int P, int r, size_t i, sp_scan_direction dir) {
  const int h = (int)(i / ((size_t)HS * HS)) % NH;
  double sum = 0;
  for (int q = 0; q < P; q++) {
    const int hops = dir == SP_SCAN_UP ? r - 1 - q : q - r - 1; /* chunks between q and r */
    if (hops >= 0) sum += pow(decays[h], (double)hops * N_TOKENS) * local_value(q, i);
  }
  return sum;
}

static void scan_once(comm *g, const backend *be, sp_scan_direction dir, int heads_per_block) {
  const int P = g->size, r = g->rank;
  float host[ELEMS];
  for (size_t i = 0; i < ELEMS; i++) host[i] = local_value(r, i);
  f32_t *local = be->alloc_f32(ELEMS, "test"), *in = be->alloc_f32(ELEMS, "test"), *out = be->alloc_f32(ELEMS, "test");
  f32_t *decay = be->alloc_f32(NH, "test");
  be->f32_from_host(local, host, ELEMS);
  be->f32_from_host(decay, decays, NH);
  for (size_t i = 0; i < ELEMS; i++) host[i] = 1e9f; /* in must be overwritten, even where it is zero */
  be->f32_from_host(in, host, ELEMS);
  const comm_counters before = g->counters;
  sp_allscan(g, be, in, out, local, decay, N_TOKENS, B, NH, HS, heads_per_block, dir, 11);
  be->f32_to_host(host, in, ELEMS);
  int bad = 0;
  for (size_t i = 0; i < ELEMS; i++) {
    const double w = want(P, r, i, dir);
    bad += !(fabs(host[i] - w) <= 1e-6 + 1e-5 * fabs(w));
  }
  CHECK(bad == 0, "%s, %s, %d heads per block, rank %d of %d: %d of %zu values off the sequential prefix", be->name,
        dir == SP_SCAN_UP ? "up" : "down", heads_per_block, r, P, bad, ELEMS);
  const int last = dir == SP_SCAN_UP ? P - 1 : 0;
  const int blocks = (HEADS + heads_per_block - 1) / heads_per_block;
  const uint64_t calls = g->counters.calls[COMM_SENDRECV] - before.calls[COMM_SENDRECV];
  const uint64_t bytes = g->counters.bytes[COMM_SENDRECV] - before.bytes[COMM_SENDRECV];
  const uint64_t want_calls = r == last ? 0 : (uint64_t)blocks, want_bytes = r == last ? 0 : ELEMS * sizeof(float);
  CHECK(bytes == want_bytes && calls >= want_calls, "%s: %llu bytes (want %llu), %llu sendrecv calls (at least %llu)",
        be->name, (unsigned long long)bytes, (unsigned long long)want_bytes, (unsigned long long)calls,
        (unsigned long long)want_calls);
  be->free_buffer(local), be->free_buffer(in), be->free_buffer(out), be->free_buffer(decay);
}

int main(int argc, char **argv) {
  runtime rt;
  runtime_init(&argc, &argv, &rt);
  backend staged = *backend_cpu();
  staged.name = "staged";
  staged.host_pointer = no_host_view;
  const backend *backends[2] = {backend_cpu(), &staged};
  comm g;
  comm_create(&g, MPI_COMM_WORLD, "sp");
  const int sizes[] = {1, 4, HEADS, HEADS + 3};
  for (int b = 0; b < 2; b++)
    for (int s = 0; s < 4; s++) {
      scan_once(&g, backends[b], SP_SCAN_UP, sizes[s]);
      scan_once(&g, backends[b], SP_SCAN_DOWN, sizes[s]);
    }
  CHECK(sp_scan_heads_per_block(8) == 4 && sp_scan_heads_per_block(16) == 1 && sp_scan_heads_per_block(64) == 1,
        "heads per block: 4 at HS 8 (256 B each), 1 from HS 16 (1 KiB)");
  const int P = g.size, r = g.rank;
  comm_free(&g);
  int worst = testing_n_failures ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  runtime_finalize();
  if (r == 0) {
    printf("test_sp_scan on %d ranks: ", P);
    return test_summary("test_sp_scan") | worst;
  }
  return worst;
}
