/* plan_published — the time model against published training throughput
 * (doc/performance.md, "The planner against published runs"): for each
 * configuration of Narayanan et al., SC21 (Megatron-LM on Selene, DGX A100
 * nodes), the planner's per-GPU TFLOP/s for the published layout, counted
 * with the paper's own FLOP formula, must be within 20% of the published
 * figure; and the best layout the planner finds must be predicted no worse.
 *
 *   plan_published PROFILE.json [--markdown] [--search]
 * --search also looks for the planner's fastest layout that fits (tp, pp,
 * schedule, chunks and recomputation; minutes per row: plan_enumerate
 * checks each candidate with train's rules) and fails if it is slower than
 * the published one.
 * Prints one line per configuration (a markdown table with --markdown);
 * exit status 1 when a prediction is outside 20%.
 *   plan_published --load PROFILE.json
 * Loads the profile and prints its name and rates (the loader's test): exit
 * status 1 with the loader's one-line message when it is refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "fail.h"
#include "plan.h"
#include "plan_time.h"

typedef struct published {
  const char *model, *source;
  int layers, heads, hidden, tp, pp, gpus, batch, micro, virtual_stages;
  int zero; /* tessera's ZeRO stage: 1 where a stage's 2^31+ elements exceed one MPI range at 0 */
  double tflops; /* per GPU, as published */
} published;

/* Narayanan et al., "Efficient Large-Scale Language Model Training on GPU
 * Clusters Using Megatron-LM", SC21. Sequence 2048, vocabulary 51,200,
 * activation recomputation (the paper's FLOP formula counts it). */
static const published runs[] = {
    {"GPT-3 175B", "Table 2 (PTD-P, 384 GPUs)", 96, 96, 12288, 8, 12, 384, 1536, 1, 1, 0, 153},
    {"GPT-3 175B", "Table 2 (PTD-P, 768 GPUs)", 96, 96, 12288, 8, 12, 768, 1536, 1, 1, 0, 149},
    {"GPT-3 175B", "Table 2 (PTD-P, 1536 GPUs)", 96, 96, 12288, 8, 12, 1536, 1536, 1, 1, 0, 141},
    {"145.6B", "Table 1", 80, 96, 12288, 8, 8, 1536, 2304, 1, 1, 1, 148},
    {"310.1B", "Table 1", 96, 128, 16384, 8, 16, 1920, 2160, 1, 1, 1, 155},
    {"529.6B", "Table 1", 105, 128, 20480, 8, 35, 2520, 2520, 1, 1, 0, 163},
    {"1T (1008B)", "Table 1", 128, 160, 25600, 8, 64, 3072, 3072, 1, 1, 1, 163},
};

static void set(config *cfg, const char *key, const char *value) {
  char err[MESSAGE_BYTES];
  if (config_set(cfg, key, value, "plan_published", err, sizeof err)) fail_local(EXIT_INTERNAL_ERROR, "%s", err);
}

static void model_config(config *cfg, const published *r) {
  char text[64];
  config_set_defaults(cfg);
#define SETI(key, v) (snprintf(text, sizeof text, "%d", (v)), set(cfg, key, text))
  SETI("n_layer", r->layers);
  SETI("n_head", r->heads);
  SETI("d_model", r->hidden);
  SETI("vocab_size", 51200);
  SETI("seq_len", 2048);
  SETI("batch_size", r->batch);
  SETI("micro_batch_size", r->micro);
  set(cfg, "backend", "cuda");
  set(cfg, "recompute", "full");
  set(cfg, "zero", r->zero ? "1" : "0"); /* the values a search holds fixed */
#undef SETI
}

/* The paper's count per iteration (its eq. 3): 96·B·s·l·h²·(1 + s/6h + V/16lh). */
static double megatron_flops(const published *r) {
  const double B = r->batch, s = 2048, l = r->layers, h = r->hidden, V = 51200;
  return 96.0 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
}

static plan_layout published_layout(const published *r) {
  plan_layout l = {0};
  l.world = r->gpus;
  l.tp = r->tp;
  l.pp = r->pp;
  l.sp = 1;
  l.dp = r->gpus / (r->tp * r->pp);
  l.micro_batch = r->micro;
  l.n_micro = r->batch / (l.dp * r->micro);
  l.virtual_stages = r->virtual_stages;
  l.schedule = r->virtual_stages > 1 ? PP_SCHEDULE_INTERLEAVED : PP_SCHEDULE_1F1B;
  l.recompute = RECOMPUTE_CHOICE_FULL;
  l.zero_stage = r->zero;
  l.sp_kind = SP_KIND_CHOICE_RING;
  l.sp_kind = SP_KIND_CHOICE_RING;
  l.gpus_per_node = 8;
  return l;
}

static int load_only(const char *path) {
  char err[MESSAGE_BYTES];
  machine_profile *m = machine_profile_load(path, err, sizeof err);
  if (!m) {
    fprintf(stderr, "%s\n", err);
    return EXIT_USER_ERROR;
  }
  printf("profile: %s\ndtype %s, %d per node, peak %.4g FLOP/s, GEMM %.4g..%.4g FLOP/s, attention %.4g, "
         "elementwise %.4g B/s, intra alpha %.3g s beta %.4g B/s, inter alpha %.3g s beta %.4g B/s x %d\n",
         m->name, m->dtype, m->gpus_per_node, m->peak_flops, m->gemm_flops[0], m->gemm_flops[m->n_gemm - 1],
         m->attention_flops, m->elementwise_bandwidth, m->intra_node.alpha_s, m->intra_node.bandwidth,
         m->inter_node.alpha_s, m->inter_node.bandwidth, m->nics_per_node);
  machine_profile_free(m);
  return 0;
}

static void describe(const plan_layout *l, char *out, size_t n) {
  static const char *const schedules[] = {"gpipe", "1f1b", "interleaved"};
  static const char *const recomputes[] = {"none", "selective", "full"};
  snprintf(out, n, "tp %d pp %d dp %d sp %d, ZeRO %d, micro-batch %d, %s%s, recompute %s", l->tp, l->pp, l->dp, l->sp,
           l->zero_stage, l->micro_batch, schedules[l->schedule],
           l->virtual_stages > 1 ? (l->virtual_stages == 2 ? " x2" : " xV") : "", recomputes[l->recompute]);
}

typedef struct timed { double step_s; int index; } timed;
static int by_time(const void *a, const void *b) {
  const double x = ((const timed *)a)->step_s, y = ((const timed *)b)->step_s;
  return (x > y) - (x < y);
}

/* The fastest layout the planner finds that fits the profile's memory:
 * every valid layout's time, then the memory of the fastest until one
 * fits. Its predicted step time (infinite when none fits). */
static double best_layout(const config *cfg, const published *r, const machine_profile *m, plan_layout *best) {
  plan_layout *all = NULL;
  const double t0 = now_seconds();
  /* the search holds sp (1: these are 2K-token runs), the micro-batch (1,
   * as published) and the ZeRO stage; it enumerates tp, pp, the schedule
   * and its chunks, and the recomputation */
  const plan_fixed fixed = {.sp = true, .micro_batch = true, .zero = true, .sp_kind = true, .tp_seq_shard = true};
  const int n = plan_enumerate_fixed(cfg, r->gpus, 8, r->batch, &fixed, &all);
  const double t1 = now_seconds();
  timed *order = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *order, "layouts");
  int kept = 0;
  for (int i = 0; i < n; i++)
    order[kept++] = (timed){plan_predict_time(cfg, &all[i], m).step_s, i};
  qsort(order, (size_t)kept, sizeof *order, by_time);
  double best_s = INFINITY;
  for (int k = 0; k < kept && !isfinite(best_s); k++)
    if ((double)plan_predict_memory(cfg, &all[order[k].index]).total <= m->memory_bytes)
      best_s = order[k].step_s, *best = all[order[k].index];
  if (getenv("PLAN_PUBLISHED_VERBOSE"))
    fprintf(stderr, "%s: %d layouts, enumerated in %.1f s, searched in %.1f s\n", r->model, n, t1 - t0,
            now_seconds() - t1);
  free(order);
  free(all);
  return best_s;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--load") == 0) return load_only(argv[2]);
  if (argc < 2) {
    fprintf(stderr, "usage: plan_published PROFILE.json [--markdown]\n");
    return EXIT_USER_ERROR;
  }
  bool markdown = false, search = false;
  for (int a = 2; a < argc; a++) {
    if (strcmp(argv[a], "--markdown") == 0) markdown = true;
    else if (strcmp(argv[a], "--search") == 0) search = true;
  }
  char err[MESSAGE_BYTES];
  machine_profile *m = machine_profile_load(argv[1], err, sizeof err);
  if (!m) {
    fprintf(stderr, "%s\n", err);
    return EXIT_USER_ERROR;
  }
  if (markdown)
    printf("| model | source | GPUs | tp | pp | dp | batch | published TFLOP/s | predicted | error | planner's pick | "
           "its TFLOP/s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
  int outside = 0, worse = 0;
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    const published *r = &runs[i];
    config cfg;
    model_config(&cfg, r);
    const plan_layout l = published_layout(r);
    const plan_time t = plan_predict_time(&cfg, &l, m);
    const double predicted = megatron_flops(r) / t.step_s / r->gpus / 1e12;
    const double error = predicted / r->tflops - 1;
    if (fabs(error) > 0.20) outside++;
    plan_layout best = l;
    char pick[160] = "not searched";
    const double best_s = search ? best_layout(&cfg, r, m, &best) : t.step_s;
    if (!search) best = l;
    if (search) snprintf(pick, sizeof pick, "none fits");
    if (search && isfinite(best_s)) describe(&best, pick, sizeof pick);
    if (!(best_s <= t.step_s * (1 + 1e-9))) worse++;
    const double best_tflops = megatron_flops(r) / best_s / r->gpus / 1e12;
    printf(markdown ? "| %s | %s | %d | %d | %d | %d | %d | %.0f | %.1f | %+.1f%% | %s | %.1f |\n"
                    : "%s, %s: gpus %d tp %d pp %d dp %d batch %d: published %.0f predicted %.1f TFLOP/s (%+.1f%%); "
                      "planner's pick %s: %.1f TFLOP/s\n",
           r->model, r->source, r->gpus, r->tp, r->pp, l.dp, r->batch, r->tflops, predicted, 100 * error, pick,
           best_tflops);
    if (!markdown)
      printf("  step %.2f s: compute %.2f s, bubble %.2f s, exposed comm %.2f s of %.2f s, GEMM rate %.0f TFLOP/s\n",
             t.step_s, t.compute_s, t.bubble_s, t.exposed_comm_s, t.comm_s, t.gemm_rate / 1e12);
  }
  machine_profile_free(m);
  if (outside) fprintf(stderr, "plan_published: %d prediction(s) outside 20%% of the published figure\n", outside);
  if (worse) fprintf(stderr, "plan_published: %d pick(s) predicted slower than the published layout\n", worse);
  return outside || worse ? 1 : 0;
}
