/* calibrate — `tessera plan --calibrate`: this machine's rates, measured
 * with the backend and MPI a run would use, written as a machine profile
 * (plan_time.h, machine_profile.h).
 *
 * Every rank of a host measures at the same time, as in training, so ranks
 * that outnumber the cores share them; the profile records the rate of one
 * rank with a core to itself (measured × ranks ÷ cores) and the host's
 * cores, and the time model gives each of R > C ranks C/R of it. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "clock.h"
#include "model_shape.h"
#include "mpi_check.h"
#include "plan_time.h"

#define MAX_POINTS PROFILE_MAX_GEMM_POINTS

typedef struct calib {
  const backend *be;
  MPI_Comm host;          /* the ranks of this host */
  int rank, size, host_rank, host_size, n_hosts, cores;
  double per_core;        /* measured per-rank rate × this: one rank with a core to itself */
} calib;

/* Seconds per call of fn(arg), every rank of the host at once. */
static double time_calls(calib *c, void (*fn)(const calib *, void *), void *arg) {
  fn(c, arg); /* warm-up */
  c->be->synchronize();
  MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
  int calls = 0;
  const double start = now_seconds();
  double elapsed = 0;
  while (elapsed < 0.25 || calls < 3) {
    fn(c, arg);
    c->be->synchronize();
    calls++;
    elapsed = now_seconds() - start;
  }
  double per_call = elapsed / calls;
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &per_call, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
  return per_call / c->size; /* the mean over ranks */
}

static act_t *filled(const backend *be, size_t n) {
  act_t *x = be->alloc_act(n, "calibration");
  float *host = xmalloc(n * sizeof *host, "calibration");
  for (size_t i = 0; i < n; i++) host[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
  be->act_from_host(x, host, n);
  free(host);
  return x;
}

typedef struct gemm_shape { int M, N, K; act_t *a, *b, *out; } gemm_shape;
static void run_gemm(const calib *c, void *arg) {
  gemm_shape *g = arg; /* the linear layer's product: out[M,N] = a[M,K]·b[N,K]ᵀ */
  c->be->gemm(false, true, g->M, g->N, g->K, 1.0f, g->a, g->K, g->b, g->K, 0.0f, g->out, g->N);
}

static double gemm_rate(calib *c, int M, int N, int K) {
  gemm_shape g = {M, N, K, filled(c->be, (size_t)M * K), filled(c->be, (size_t)N * K), NULL};
  g.out = c->be->alloc_act((size_t)M * N, "calibration");
  const double s = time_calls(c, run_gemm, &g);
  c->be->free_buffer(g.a);
  c->be->free_buffer(g.b);
  c->be->free_buffer(g.out);
  return 2.0 * M * (double)N * K / s * c->per_core;
}

static int min3(int a, int b, int k) { return a < b ? (a < k ? a : k) : (b < k ? b : k); }

/* The GEMMs of the model's layers (and of their tp halves and quarters),
 * plus small squares for the lower end of the table; points of equal
 * smallest dimension are averaged. */
static int measure_gemms(calib *c, const model_shape *s, int tokens, double *dims, double *rates) {
  const int C = s->d_model, F = model_ffn_hidden(s);
  int shapes[12][3] = {{tokens, 3 * C, C}, {tokens, C, C}, {tokens, F, C}, {tokens, C, F},
                       {tokens, 3 * C / 2, C}, {tokens, C, C / 2}, {tokens, C, C / 4}, {tokens, F / 4, C},
                       {64, 64, 64}, {128, 128, 128}, {256, 256, 256}, {512, 512, 512}};
  int n = 0, count[MAX_POINTS] = {0};
  for (int i = 0; i < 12; i++) {
    const int M = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
    if (M < 1 || N < 1 || K < 1) continue;
    const double d = min3(M, N, K), r = gemm_rate(c, M, N, K);
    int j = 0;
    while (j < n && dims[j] != d) j++;
    if (j == n) {
      if (n == MAX_POINTS) continue;
      dims[n] = d, rates[n] = 0, n++;
    }
    rates[j] += r, count[j]++;
  }
  for (int j = 0; j < n; j++) rates[j] /= count[j];
  for (int i = 1; i < n; i++) /* sort by dimension */
    for (int j = i; j > 0 && dims[j] < dims[j - 1]; j--) {
      double t = dims[j]; dims[j] = dims[j - 1]; dims[j - 1] = t;
      t = rates[j]; rates[j] = rates[j - 1]; rates[j - 1] = t;
    }
  return n;
}

typedef struct attention_args {
  int B, T, C, NH, chunk;
  act_t *qkv, *out, *dout, *dqkv;
  f32_t *saved, *decay;
} attention_args;

static void run_softmax(const calib *c, void *arg) {
  attention_args *a = arg;
  c->be->attention_forward(a->out, a->saved, a->qkv, a->B, a->T, a->C, a->NH);
  c->be->attention_backward(a->dqkv, a->dout, a->out, a->qkv, a->saved, a->B, a->T, a->C, a->NH);
}

static void run_linear(const calib *c, void *arg) {
  attention_args *a = arg;
  c->be->linear_attention_forward(a->out, a->saved, a->qkv, a->decay, a->B, a->T, a->C, a->NH, a->chunk);
  c->be->zero_f32(a->saved, (size_t)a->B * a->NH * (a->C / a->NH) * (a->C / a->NH));
  c->be->linear_attention_backward(a->dqkv, a->dout, a->qkv, a->saved, a->decay, a->B, a->T, a->C, a->NH, a->chunk);
}

/* FLOP/s of the attention cores on one sequence of the model, counted as the
 * FLOP counts of model_shape.h count them: softmax 3 × 2·T²·C (causal QKᵀ and
 * PV, forward and backward), linear 3 × T·(2·chunk·C + 4·C·head size). */
static void measure_attention(calib *c, const model_shape *s, double *softmax, double *linear) {
  attention_args a = {1, s->seq_len, s->d_model, s->n_head, model_linear_chunk(s), NULL, NULL, NULL, NULL, NULL, NULL};
  const size_t rows = (size_t)a.B * a.T, hs = (size_t)(a.C / a.NH);
  a.qkv = filled(c->be, rows * 3 * a.C);
  a.out = c->be->alloc_act(rows * a.C, "calibration");
  a.dout = filled(c->be, rows * a.C);
  a.dqkv = c->be->alloc_act(rows * 3 * a.C, "calibration");
  size_t saved = c->be->attention_saved_elems(a.B, a.T, a.NH);
  if (saved < (size_t)a.NH * hs * hs) saved = (size_t)a.NH * hs * hs;
  a.saved = c->be->alloc_f32(saved, "calibration");
  a.decay = c->be->alloc_f32((size_t)a.NH, "calibration");
  float *decay = xmalloc((size_t)a.NH * sizeof *decay, "calibration");
  for (int h = 0; h < a.NH; h++) decay[h] = 0.99f;
  c->be->f32_from_host(a.decay, decay, (size_t)a.NH);
  free(decay);
  *softmax = 3.0 * 2.0 * a.T * (double)a.T * a.C / time_calls(c, run_softmax, &a) * c->per_core;
  *linear = 3.0 * a.T * (2.0 * a.chunk * a.C + 4.0 * a.C * hs) / time_calls(c, run_linear, &a) * c->per_core;
  c->be->free_buffer(a.qkv), c->be->free_buffer(a.out), c->be->free_buffer(a.dout);
  c->be->free_buffer(a.dqkv), c->be->free_buffer(a.saved), c->be->free_buffer(a.decay);
}

typedef struct stream_args { size_t n; act_t *x, *y; } stream_args;
static void run_gelu(const calib *c, void *arg) {
  stream_args *a = arg;
  c->be->gelu_forward(a->y, a->x, a->n);
  c->be->add(a->y, a->y, a->x, a->n);
}

/* Bytes/s of the elementwise kernels: GELU (read, write) and a residual add
 * (two reads, a write) over 16 Mi elements. */
static double measure_elementwise(calib *c) {
  stream_args a = {(size_t)1 << 24, NULL, NULL};
  a.x = filled(c->be, a.n);
  a.y = c->be->alloc_act(a.n, "calibration");
  const double bytes = 5.0 * a.n * c->be->act_elem_bytes;
  const double rate = bytes / time_calls(c, run_gelu, &a) * c->per_core;
  c->be->free_buffer(a.x), c->be->free_buffer(a.y);
  return rate;
}

/* Waits at a barrier without spinning, so ranks that do not measure leave
 * the cores to the two that do. */
static void quiet_barrier(void) {
  MPI_Request req;
  MPI_CHECK(MPI_Ibarrier(MPI_COMM_WORLD, &req));
  int done = 0;
  while (!done) {
    MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (!done) nanosleep(&(struct timespec){0, 200000}, NULL);
  }
}

/* One-way seconds of a message of `bytes` between ranks a and b (half the
 * best round trip of a few); NaN on every other rank. */
static double ping_pong(const calib *c, int a, int b, size_t bytes) {
  double best = INFINITY;
  if (c->rank == a || c->rank == b) {
    char *buf = xcalloc(bytes ? bytes : 1, 1, "calibration message");
    const int peer = c->rank == a ? b : a, reps = bytes > 65536 ? 8 : 200;
    for (int i = 0; i < reps + 2; i++) {
      const double start = now_seconds();
      if (c->rank == a) {
        MPI_CHECK(MPI_Send(buf, (int)bytes, MPI_BYTE, peer, 7, MPI_COMM_WORLD));
        MPI_CHECK(MPI_Recv(buf, (int)bytes, MPI_BYTE, peer, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
      } else {
        MPI_CHECK(MPI_Recv(buf, (int)bytes, MPI_BYTE, peer, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        MPI_CHECK(MPI_Send(buf, (int)bytes, MPI_BYTE, peer, 7, MPI_COMM_WORLD));
      }
      const double rtt = now_seconds() - start;
      if (i >= 2 && rtt < best) best = rtt; /* two warm-ups */
    }
    free(buf);
  }
  quiet_barrier();
  return best / 2;
}

/* α and β between ranks a and b, known on every rank. */
static profile_link measure_link(const calib *c, int a, int b) {
  const size_t big = (size_t)16 << 20;
  double t[2] = {ping_pong(c, a, b, 8), ping_pong(c, a, b, big)};
  MPI_CHECK(MPI_Bcast(t, 2, MPI_DOUBLE, a, MPI_COMM_WORLD));
  profile_link l = {t[0], (double)big / (t[1] > t[0] ? t[1] - t[0] : t[1])};
  return l;
}

/* Which host each rank is on; fills the calib's host fields and the peers
 * to measure with (−1: none). */
static void find_hosts(calib *c, int *intra_peer, int *inter_peer) {
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &c->host));
  MPI_CHECK(MPI_Comm_rank(c->host, &c->host_rank));
  MPI_CHECK(MPI_Comm_size(c->host, &c->host_size));
  int leader = c->rank;
  MPI_CHECK(MPI_Bcast(&leader, 1, MPI_INT, 0, c->host));
  int *leaders = xmalloc((size_t)c->size * sizeof *leaders, "calibration");
  MPI_CHECK(MPI_Allgather(&leader, 1, MPI_INT, leaders, 1, MPI_INT, MPI_COMM_WORLD));
  c->n_hosts = 0;
  *intra_peer = *inter_peer = -1;
  for (int r = 0; r < c->size; r++) {
    if (leaders[r] == r) c->n_hosts++;
    if (r > 0 && leaders[r] == leaders[0] && *intra_peer < 0) *intra_peer = r;
    if (leaders[r] != leaders[0] && *inter_peer < 0) *inter_peer = r;
  }
  free(leaders);
  c->cores = (int)sysconf(_SC_NPROCESSORS_ONLN); /* not the affinity: mpirun may bind a rank to one core */
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &c->cores, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (c->cores < 1) c->cores = 1;
  int most = c->host_size;
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &most, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
  c->host_size = most;
}

static json_t *measured(double value, const char *source) {
  return json_pack("{s:f, s:s}", "value", value, "source", source);
}

typedef struct measurements {
  int n_gemm;
  double dims[MAX_POINTS], rates[MAX_POINTS];
  double softmax, linear, elementwise, peak;
  profile_link intra, inter;
  bool has_intra, has_inter;
} measurements;

static json_t *profile_json(const calib *c, const measurements *m, const char *host) {
  char src[640];
  snprintf(src, sizeof src, "measured by tessera plan --calibrate on %s: %d rank(s) per host on %d core(s), %s backend",
           host, c->host_size, c->cores, c->be->name);
  json_t *gemm = json_array();
  for (int i = 0; i < m->n_gemm; i++)
    json_array_append_new(gemm, json_pack("{s:i, s:o}", "min_dim", (json_int_t)m->dims[i], "flops",
                                          measured(m->rates[i], src)));
  char intra_src[1024], inter_src[1024];
  snprintf(intra_src, sizeof intra_src, "%s; MPI ping-pong between two ranks of one host%s", src,
           m->has_intra ? "" : " (one rank per host: copied from the inter-host figure)");
  snprintf(inter_src, sizeof inter_src, "%s; MPI ping-pong between ranks of two hosts%s", src,
           m->has_inter ? "" : " (one host: copied from the intra-host figure; calibrate on the cluster for it)");
  const profile_link intra = m->has_intra ? m->intra : m->inter, inter = m->has_inter ? m->inter : m->intra;
  char name[640];
  snprintf(name, sizeof name, "%s (%d host(s), %d rank(s) each, %s)", host, c->n_hosts, c->host_size, c->be->name);
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  const double memory = pages > 0 && page > 0 ? (double)pages * page / c->host_size : 1.0;
  json_t *root = json_pack(
      "{s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:{s:o, s:o, s:o}, s:{s:{s:o, s:o}, s:{s:i, s:o, s:o}}}",
      "format", "tessera machine profile 1", "name", name, "dtype", c->be->kind == BACKEND_CUDA ? "bf16" : "fp32",
      "gpus_per_node", c->host_size, "peak_flops", measured(m->peak, "the fastest GEMM rate measured here (as the "
                                                                     "MFU probe of train measures it)"),
      "memory_bytes", measured(memory, "the host's physical memory divided among its ranks (sysconf)"), "gemm", gemm,
      "kernels", "attention_flops", measured(m->softmax, src), "linear_attention_flops", measured(m->linear, src),
      "elementwise_bandwidth", measured(m->elementwise, src), "links", "intra_node", "alpha_s",
      measured(intra.alpha_s, intra_src), "bandwidth", measured(intra.bandwidth, intra_src), "inter_node", "nics", 1,
      "alpha_s", measured(inter.alpha_s, inter_src), "bandwidth", measured(inter.bandwidth, inter_src));
  if (root && c->be->kind == BACKEND_CPU) json_object_set_new(root, "cores_per_node", json_integer(c->cores));
  return root;
}

/* Rank 0 writes the profile beside out_path and renames it into place. */
static int write_profile(json_t *root, const char *out_path, char *err, size_t err_bytes) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out_path, (long)getpid());
  if (!root || json_dump_file(root, tmp, JSON_INDENT(1)) != 0 || rename(tmp, out_path) != 0) {
    remove(tmp);
    snprintf(err, err_bytes, "plan --calibrate: cannot write the profile %s", out_path);
    return EXIT_IO_ERROR;
  }
  return 0;
}

static const backend *calibration_backend(const config *cfg) {
  const backend *cuda = cfg->backend == BACKEND_CHOICE_CPU ? NULL : backend_cuda();
  return cuda ? cuda : backend_cpu();
}

int plan_calibrate(const config *cfg, const char *out_path, char *err, size_t err_bytes) {
  calib c = {0};
  c.be = calibration_backend(cfg);
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &c.rank));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &c.size));
  int intra_peer, inter_peer;
  find_hosts(&c, &intra_peer, &inter_peer);
  c.per_core = (double)c.host_size / (c.host_size < c.cores ? c.host_size : c.cores);
  const model_shape s = config_model_shape(cfg);
  measurements m = {0};
  m.n_gemm = measure_gemms(&c, &s, cfg->micro_batch_size * s.seq_len, m.dims, m.rates);
  for (int i = 0; i < m.n_gemm; i++)
    if (m.rates[i] > m.peak) m.peak = m.rates[i];
  measure_attention(&c, &s, &m.softmax, &m.linear);
  m.elementwise = measure_elementwise(&c);
  if ((m.has_intra = intra_peer >= 0)) m.intra = measure_link(&c, 0, intra_peer);
  if ((m.has_inter = inter_peer >= 0)) m.inter = measure_link(&c, 0, inter_peer);
  if (!m.has_intra && !m.has_inter) m.intra = m.inter = (profile_link){1e-6, 1e10}; /* one rank: never used */
  int status = 0;
  if (c.rank == 0) {
    char host[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    MPI_CHECK(MPI_Get_processor_name(host, &len));
    json_t *root = profile_json(&c, &m, host);
    status = write_profile(root, out_path, err, err_bytes);
    json_decref(root);
  }
  MPI_CHECK(MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD));
  MPI_CHECK(MPI_Comm_free(&c.host));
  return status;
}
