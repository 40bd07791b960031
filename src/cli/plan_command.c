/* plan_command — `tessera plan`: every layout a model can train in on N
 * ranks (train's own validity rules), each one's memory per rank by kind
 * and bytes per step per group as the run will allocate and count them
 * (src/plan), and the best ones that fit a memory budget, with the command
 * line to run each. One process, no MPI job: it plans for any world size.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_settings.h"
#include "commands.h"
#include "config.h"
#include "fail.h"
#include "layout_rules.h"
#include "optimizer_offload.h"
#include "plan.h"
#if __has_include("plan_time.h")
#include "plan_time.h"
#include "runtime.h"
#define PLAN_HAS_TIME 1
#else
#define PLAN_HAS_TIME 0
#endif

#define GiB (1024.0 * 1024.0 * 1024.0)
#define MiB (1024.0 * 1024.0)
#define PLAN_MAX_OPS 48

static const char *const schedule_names[] = {"gpipe", "1f1b", "interleaved"};
static const char *const recompute_names[] = {"none", "selective", "full"};
static const char *const sp_kind_names[] = {"ring", "allgather", "allscan", "ulysses"};
static const char *const offload_names[] = {"none", "host", "nvme"};
static const char *const group_names[] = {"tp", "sp", "dp", "dp_sp", "pp", "world"};

typedef struct plan_options {
  const char *config_path, *machine, *calibrate_out;
  int world, gpus_per_node, global_batch, top;
  double budget_gib;
  bool budget_given; /* --memory-per-rank-gib (else --machine's device memory, else 80) */
  bool json;
  char overrides[1024]; /* the --key=value settings given, for the command lines */
  plan_fixed fixed;     /* layout keys given: held, not enumerated */
  char nvme_spec[PATH_BYTES]; /* an nvme layout's --offload-optimizer value: the given folder, else nvme:DIR */
} plan_options;

/* One layout with its predictions. */
typedef struct scored {
  plan_layout l;
  plan_memory mem;
  uint64_t bytes[PLAN_GROUPS], total_bytes;
  double step_s, tokens_per_s, mfu; /* < 0: no time model */
} scored;

static int usage(bool help) {
  fprintf(help ? stdout : stderr,
          "usage: tessera plan --config MODEL.ini --world N [--gpus-per-node G] [--seq-len T]\n"
          "                    [--global-batch B] [--memory-per-rank-gib M] [--top K] [--json] [--offload]%s\n"
          "                    [--key=value ...]\n"
          "  every layout (tp x pp x sp x dp, ZeRO stage, micro-batch, recomputation, pipeline schedule and\n"
          "  virtual stages, sp kind, --tp-seq-shard) train accepts on N ranks; for each, the memory per rank\n"
          "  by kind and the bytes per step per group the run will allocate and count; the best K (default\n"
          "  10) that fit M GiB per rank (default: --machine's device memory, else 80), with the command line that runs each. --key=value sets\n"
          "  any train setting first (--backend cuda: GPU sizes, bf16; cpu: this machine's fp32 sizes).\n"
          "  --offload: also weigh --offload-optimizer host and nvme:DIR (a given nvme:DIR names the folder);\n"
          "  the budget is device memory: the offloaded host RAM is shown beside it, not counted in it.\n",
          PLAN_HAS_TIME ? " [--machine PROFILE.json|a100-80gb|h100-80gb]\n"
                          "       mpirun ... tessera plan --calibrate --config MODEL.ini [--out FILE.json]" : "");
  return help ? EXIT_OK : EXIT_USER_ERROR;
}

static void add_override(plan_options *o, const char *arg, const char *value) {
  size_t used = strlen(o->overrides);
  snprintf(o->overrides + used, sizeof o->overrides - used, " %s%s%s", arg, value && !strchr(arg, '=') ? " " : "",
           value && !strchr(arg, '=') ? value : "");
}

/* A layout key given on the command line is held at its value (and the
 * command lines print it from the layout, not from the overrides). */
static bool fix_layout_key(plan_fixed *f, const char *key) {
  struct { const char *key; bool *knob; } keys[] = {
      {"tp", &f->tp}, {"pp", &f->pp}, {"sp", &f->sp}, {"zero", &f->zero}, {"micro_batch_size", &f->micro_batch},
      {"pp_schedule", &f->schedule}, {"pp_virtual", &f->virtual_stages}, {"recompute", &f->recompute},
      {"sp_kind", &f->sp_kind}, {"tp_seq_shard", &f->tp_seq_shard}};
  if (strcmp(key, "offload_optimizer") == 0) return true; /* printed from the layout */
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strcmp(key, keys[i].key) == 0) return *keys[i].knob = true;
  return strcmp(key, "batch_size") == 0; /* the layout's global batch */
}

/* The plan's own options; anything else is a config setting. */
static void parse(int argc, char **argv, plan_options *o, config *cfg) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
    if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && next) o->config_path = argv[++i];
    else if (strcmp(a, "--world") == 0 && next) o->world = (int)cli_int_option("plan", a, argv[++i], 1, 1 << 24);
    else if (strcmp(a, "--gpus-per-node") == 0 && next)
      o->gpus_per_node = (int)cli_int_option("plan", a, argv[++i], 1, 1 << 16);
    else if (strcmp(a, "--global-batch") == 0 && next)
      o->global_batch = (int)cli_int_option("plan", a, argv[++i], 1, 1 << 24);
    else if (strcmp(a, "--top") == 0 && next) o->top = (int)cli_int_option("plan", a, argv[++i], 1, 1 << 20);
    else if (strcmp(a, "--memory-per-rank-gib") == 0 && next) {
      char err[MESSAGE_BYTES];
      if (config_parse_double("plan: --memory-per-rank-gib", argv[++i], 1e-6, 1e9, &o->budget_gib, err, sizeof err))
        fail_collective(EXIT_USER_ERROR, "%s", err);
      o->budget_given = true;
    } else if (strcmp(a, "--machine") == 0 && next && PLAN_HAS_TIME) o->machine = argv[++i];
    else if (strncmp(a, "--config=", 9) == 0) continue; /* load_config read it */
    else if (strcmp(a, "--json") == 0) o->json = true;
    else if (strcmp(a, "--offload") == 0) o->fixed.enumerate_offload = true;
    else if (strcmp(a, "--calibrate") == 0 && PLAN_HAS_TIME) continue; /* plan_command reads it */
    else if (strcmp(a, "--out") == 0 && next && PLAN_HAS_TIME) o->calibrate_out = argv[++i];
    else if (strcmp(a, "--given") == 0) continue; /* plan_command reads it */
    else if (strcmp(a, "--world") == 0 || strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0)
      fail_collective(EXIT_USER_ERROR, "plan: %s needs a value", a);
    else {
      char key[64];
      const char *value = NULL;
      const int consumed = cli_option_key_value(argc, argv, i, key, sizeof key, &value);
      if (consumed == 0) fail_collective(EXIT_USER_ERROR, "plan: unexpected argument '%s' (see `tessera plan --help`)", a);
      cli_set_option(cfg, "plan", a, key, value);
      if (!fix_layout_key(&o->fixed, key)) add_override(o, a, value);
      i += consumed - 1;
    }
  }
}

static scored score(const config *cfg, const plan_layout *l, const void *machine) {
  scored s = {.l = *l, .step_s = -1, .tokens_per_s = -1, .mfu = -1};
  s.mem = plan_predict_memory(cfg, l);
  plan_comm_op ops[PLAN_MAX_OPS];
  const int n = plan_predict_comm(cfg, l, ops, PLAN_MAX_OPS);
  for (int g = 0; g < PLAN_GROUPS; g++) s.bytes[g] = plan_group_bytes(ops, n < PLAN_MAX_OPS ? n : PLAN_MAX_OPS, g);
  for (int g = 0; g < PLAN_GROUPS; g++) s.total_bytes += s.bytes[g];
#if PLAN_HAS_TIME
  if (machine) {
    const plan_time t = plan_predict_time(cfg, l, (const machine_profile *)machine);
    s.step_s = t.step_s, s.tokens_per_s = t.tokens_per_s, s.mfu = t.mfu;
  }
#else
  (void)machine;
#endif
  return s;
}

/* Without optimizer offload first, host before nvme: the time model does
 * not price the host's update and the file's I/O (doc/performance.md
 * measured 2.3x the step time at 350M), so an offloaded layout ranks below
 * every one that fits without it. Then faster first with a time model;
 * without one, fewer bytes per step, then less memory (fewer bytes rarely
 * costs time; less memory leaves room). */
static int better_first(const void *pa, const void *pb) {
  const scored *a = pa, *b = pb;
  if (a->l.offload != b->l.offload) return a->l.offload < b->l.offload ? -1 : 1;
  if (a->step_s >= 0 && b->step_s >= 0 && a->step_s != b->step_s) return a->step_s < b->step_s ? -1 : 1;
  if (a->total_bytes != b->total_bytes) return a->total_bytes < b->total_bytes ? -1 : 1;
  if (a->mem.total != b->mem.total) return a->mem.total < b->mem.total ? -1 : 1;
  return 0;
}

/* The `train` command line of a layout. */
static void command_line(const plan_options *o, const scored *s, char *out, size_t out_bytes) {
  const plan_layout *l = &s->l;
  int n = snprintf(out, out_bytes,
                   "mpirun -np %d tessera train -c %s --tp %d --pp %d --sp %d --zero %d --batch-size %d "
                   "--micro-batch-size %d --recompute %s",
                   l->world, o->config_path, l->tp, l->pp, l->sp, l->zero_stage, l->dp * l->micro_batch * l->n_micro,
                   l->micro_batch, recompute_names[l->recompute]);
  if (l->pp > 1 && n > 0 && (size_t)n < out_bytes)
    n += snprintf(out + n, out_bytes - (size_t)n, " --pp-schedule %s --pp-virtual %d", schedule_names[l->schedule],
                  l->virtual_stages);
  if (l->sp > 1 && n > 0 && (size_t)n < out_bytes)
    n += snprintf(out + n, out_bytes - (size_t)n, " --sp-kind %s", sp_kind_names[l->sp_kind]);
  if (l->tp_seq_shard && n > 0 && (size_t)n < out_bytes) n += snprintf(out + n, out_bytes - (size_t)n, " --tp-seq-shard");
  if (l->offload != OFFLOAD_NONE && n > 0 && (size_t)n < out_bytes)
    n += snprintf(out + n, out_bytes - (size_t)n, " --offload-optimizer %s",
                  l->offload == OFFLOAD_HOST ? "host" : o->nvme_spec);
  if (n > 0 && (size_t)n < out_bytes) snprintf(out + n, out_bytes - (size_t)n, "%s --data PREFIX", o->overrides);
}

/* Why this layout ranks where it does, in a few words. */
static void reason(const scored *s, const scored *best, char *out, size_t out_bytes) {
  if (s->l.offload != OFFLOAD_NONE && s->l.offload != best->l.offload)
    snprintf(out, out_bytes, "offloads the optimizer, after every layout that fits without (its host update and "
             "I/O are not in the time model)");
  else if (s->step_s >= 0)
    snprintf(out, out_bytes, "%.3f s/step predicted%s", s->step_s, s == best ? ": the fastest that fits" : "");
  else if (s == best)
    snprintf(out, out_bytes, "the fewest bytes per step (%.1f MiB) of the layouts that fit", s->total_bytes / MiB);
  else
    snprintf(out, out_bytes, "%.1f MiB more per step than the first", (s->total_bytes - best->total_bytes) / MiB);
}

static void print_table(const plan_options *o, const scored *fit, int n_fit, int n_valid) {
  printf("%d valid layouts of %d ranks, %d fit %g GiB per rank; the best %d, ranked by %s:\n", n_valid, o->world,
         n_fit, o->budget_gib, n_fit < o->top ? n_fit : o->top,
         fit[0].step_s >= 0 ? "predicted step time" : "bytes per step, then memory (no --machine: no time model)");
  for (int i = 0; i < n_fit && i < o->top; i++) {
    const scored *s = &fit[i];
    const plan_layout *l = &s->l;
    char why[160], cmd[2048];
    reason(s, &fit[0], why, sizeof why);
    command_line(o, s, cmd, sizeof cmd);
    printf("%2d. dp %d x tp %d x pp %d x sp %d, ZeRO %d, micro-batch %d x %d, recompute %s", i + 1, l->dp, l->tp,
           l->pp, l->sp, l->zero_stage, l->micro_batch, l->n_micro, recompute_names[l->recompute]);
    if (l->pp > 1) printf(", %s x %d chunks", schedule_names[l->schedule], l->virtual_stages);
    if (l->sp > 1) printf(", sp %s", sp_kind_names[l->sp_kind]);
    if (l->tp_seq_shard) printf(", tp-seq-shard");
    if (l->offload != OFFLOAD_NONE) printf(", optimizer offloaded to %s", offload_names[l->offload]);
    const char *unit = s->mem.total >= GiB ? "GiB" : "MiB";
    const double u = s->mem.total >= GiB ? GiB : MiB;
    printf("\n    memory per rank %.2f %s: weights %.2f, gradients %.2f, optimizer %.2f, activations %.2f, other "
           "%.2f\n    bytes per step (rank 0): tp %.1f MiB, sp %.1f MiB, dp x sp %.1f MiB, pp %.1f MiB\n",
           s->mem.total / u, unit, s->mem.weights / u, s->mem.grads / u, s->mem.optimizer / u, s->mem.activations / u,
           s->mem.other / u, s->bytes[PLAN_TP] / MiB, s->bytes[PLAN_SP] / MiB, s->bytes[PLAN_DP_SP] / MiB,
           s->bytes[PLAN_PP] / MiB);
    if (s->mem.offloaded) /* host RAM: beside the device budget, not in it */
      printf("    offloaded to host RAM per rank (not in the device budget): %.2f MiB%s\n", s->mem.offloaded / MiB,
             l->offload == OFFLOAD_NVME ? " of chunk buffers; master weights and Adam moments on disk" : "");
    if (s->step_s >= 0)
      printf("    predicted %.3f s/step, %.0f tokens/s, MFU %.1f%%\n", s->step_s, s->tokens_per_s, 100 * s->mfu);
    printf("    why: %s\n    run: %s\n", why, cmd);
  }
}

static json_t *layout_json(const plan_options *o, const config *cfg, const scored *s, bool per_stage) {
  const plan_layout *l = &s->l;
  char cmd[2048];
  command_line(o, s, cmd, sizeof cmd);
  json_t *j = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:s,s:s,s:b,s:s}", "world", l->world, "dp", l->dp,
                        "tp", l->tp, "pp", l->pp, "sp", l->sp, "zero", l->zero_stage, "micro_batch", l->micro_batch,
                        "n_micro", l->n_micro, "virtual_stages", l->virtual_stages, "schedule",
                        schedule_names[l->schedule], "recompute", recompute_names[l->recompute], "sp_kind",
                        sp_kind_names[l->sp_kind], "tp_seq_shard", l->tp_seq_shard, "command", cmd);
  /* total: the device's; offloaded: host RAM, outside the budget */
  json_t *mem = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "weights", (json_int_t)s->mem.weights, "grads",
                          (json_int_t)s->mem.grads, "optimizer", (json_int_t)s->mem.optimizer, "activations",
                          (json_int_t)s->mem.activations, "other", (json_int_t)s->mem.other, "total",
                          (json_int_t)s->mem.total, "offloaded", (json_int_t)s->mem.offloaded);
  json_t *bytes = json_object();
  if (j) json_object_set_new(j, "offload_optimizer", json_string(offload_names[l->offload]));
  if (!j || !mem || !bytes) fail_local(EXIT_USER_ERROR, "out of memory building the plan's JSON");
  for (int g = 0; g < PLAN_GROUPS; g++)
    if (s->bytes[g]) json_object_set_new(bytes, group_names[g], json_integer((json_int_t)s->bytes[g]));
  json_object_set_new(j, "memory", mem);
  json_object_set_new(j, "bytes_per_step", bytes);
  if (per_stage) { /* every stage's memory, as the run's start line reports them */
    json_t *stages = json_array();
    for (int st = 0; st < l->pp; st++) {
      const plan_memory m = plan_predict_memory_of_stage(cfg, l, st);
      json_array_append_new(stages, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "weights", (json_int_t)m.weights, "grads",
                                              (json_int_t)m.grads, "optimizer", (json_int_t)m.optimizer,
                                              "activations", (json_int_t)m.activations, "other",
                                              (json_int_t)m.other, "offloaded", (json_int_t)m.offloaded));
    }
    json_object_set_new(j, "stages", stages);
  }
  if (s->step_s >= 0) {
    json_object_set_new(j, "step_s", json_real(s->step_s));
    json_object_set_new(j, "tokens_per_s", json_real(s->tokens_per_s));
    json_object_set_new(j, "mfu", json_real(s->mfu));
  }
  return j;
}

static void print_json(const plan_options *o, const config *cfg, const scored *fit, int n_fit, int n_valid,
                       bool given) {
  json_t *root = json_pack("{s:i,s:i,s:i,s:f,s:s}", "world", o->world, "valid", n_valid, "fit", n_fit,
                           "memory_per_rank_gib", o->budget_gib, "ranked_by",
                           n_fit && fit[0].step_s >= 0 ? "step time" : "bytes per step, then memory");
  json_t *list = json_array();
  if (!root || !list) fail_local(EXIT_USER_ERROR, "out of memory building the plan's JSON");
  for (int i = 0; i < n_fit; i++) json_array_append_new(list, layout_json(o, cfg, &fit[i], given));
  json_object_set_new(root, "layouts", list);
  if (json_dumpf(root, stdout, JSON_COMPACT) != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
    fail_collective(EXIT_IO_ERROR, "plan: cannot write the JSON to standard output");
  json_decref(root);
}

/* The layout the settings describe (--given), checked as train checks it. */
static plan_layout given_layout(const config *cfg, const plan_options *o) {
  plan_layout l = {.world = o->world, .tp = cfg->tp, .pp = cfg->pp, .sp = cfg->sp, .zero_stage = cfg->zero,
                   .micro_batch = cfg->micro_batch_size, .virtual_stages = cfg->pp_virtual,
                   .schedule = cfg->pp_schedule, .recompute = cfg->recompute, .sp_kind = cfg->sp_kind,
                   .tp_seq_shard = cfg->tp_seq_shard, .gpus_per_node = o->gpus_per_node};
  const char *dir;
  l.offload = (int)offload_kind_parse(cfg->offload_optimizer, &dir);
  char err[MESSAGE_BYTES];
  const bool factors = o->world % (l.tp * l.pp * l.sp) == 0;
  l.dp = factors ? o->world / (l.tp * l.pp * l.sp) : 1; /* not factoring: the grid check's message */
  int status = factors ? layout_rules_batch(cfg, l.dp, err, sizeof err) : 0;
  l.n_micro = cfg->batch_size / (l.dp * l.micro_batch);
  if (l.n_micro < 1) l.n_micro = 1;
  if (!status) status = plan_layout_check(cfg, &l, err, sizeof err);
  if (status) fail_collective(status, "plan: %s", err);
  return l;
}

static void load_config(config *cfg, int argc, char **argv, plan_options *o) {
  config_set_defaults(cfg);
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) o->config_path = argv[i + 1];
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--config=", 9) == 0) o->config_path = argv[i] + 9;
  if (!o->config_path) fail_collective(EXIT_USER_ERROR, "plan: --config MODEL.ini is required (see `tessera plan --help`)");
  char err[MESSAGE_BYTES];
  int status = config_load_file(cfg, o->config_path, err, sizeof err);
  if (status) fail_collective(status, "plan: %s", err);
  parse(argc, argv, o, cfg);
  if (o->world < 1) fail_collective(EXIT_USER_ERROR, "plan: --world N (the number of ranks, 1 or more) is required");
  if (o->global_batch) cfg->batch_size = o->global_batch;
  status = config_validate(cfg, err, sizeof err);
  if (status) fail_collective(status, "plan: %s", err);
  const char *dir;
  snprintf(o->nvme_spec, sizeof o->nvme_spec, "%s",
           offload_kind_parse(cfg->offload_optimizer, &dir) == OFFLOAD_NVME ? cfg->offload_optimizer : "nvme:DIR");
}

/* The least memory any of the layouts needs, GiB. */
static double smallest_gib(const config *cfg, const plan_layout *layouts, int n) {
  uint64_t least = UINT64_MAX;
  for (int i = 0; i < n; i++) {
    const uint64_t total = plan_predict_memory(cfg, &layouts[i]).total;
    if (total < least) least = total;
  }
  return (double)least / GiB;
}

/* Scores every layout, keeps the ones within the budget, best first. */
static int rank_layouts(const config *cfg, const plan_options *o, const plan_layout *layouts, int n, const void *machine,
                        scored **out) {
  scored *fit = malloc((size_t)(n > 0 ? n : 1) * sizeof *fit);
  if (!fit) fail_local(EXIT_USER_ERROR, "out of memory scoring %d layouts", n);
  int n_fit = 0;
  const double budget = o->budget_gib * GiB;
  for (int i = 0; i < n; i++) {
    const scored s = score(cfg, &layouts[i], machine);
    if ((double)s.mem.total <= budget) fit[n_fit++] = s;
  }
  qsort(fit, (size_t)n_fit, sizeof *fit, better_first);
  *out = fit;
  return n_fit;
}

#if PLAN_HAS_TIME
/* `plan --calibrate [--out FILE]`, under mpirun: this machine's rates as a
 * profile (plan_time.h), for the model of --config. */
static int calibrate(int argc, char **argv) {
  runtime rt;
  runtime_init(&argc, &argv, &rt);
  plan_options o = {.world = 1};
  config cfg;
  load_config(&cfg, argc, argv, &o);
  const char *out = o.calibrate_out ? o.calibrate_out : "machine.json";
  char err[MESSAGE_BYTES] = "";
  const int status = plan_calibrate(&cfg, out, err, sizeof err);
  if (status) fail_collective(status, "%s", rt.world_rank == 0 ? err : "plan --calibrate failed");
  if (rt.world_rank == 0) printf("plan: measured %d rank(s); wrote the machine profile %s\n", rt.world_size, out);
  runtime_finalize();
  return EXIT_OK;
}
#endif

int plan_command(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return usage(true);
#if PLAN_HAS_TIME
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--calibrate") == 0) return calibrate(argc, argv);
#endif
  plan_options o = {.top = 10, .budget_gib = 80};
  config cfg;
  load_config(&cfg, argc, argv, &o);
  bool given = false;
  for (int i = 1; i < argc; i++) given |= strcmp(argv[i], "--given") == 0;
  void *machine = NULL;
#if PLAN_HAS_TIME
  if (o.machine) {
    char err[MESSAGE_BYTES];
    char path[4096];
    machine_profile_resolve(o.machine, path, sizeof path); /* a shipped name, or a file */
    machine = machine_profile_load(path, err, sizeof err);
    if (!machine) fail_collective(EXIT_USER_ERROR, "plan: --machine: %s", err);
    /* the budget: the profile's device memory unless given */
    const machine_profile *m = machine;
    if (!o.budget_given && m->memory_bytes > 0) o.budget_gib = m->memory_bytes / GiB;
  }
#endif
  plan_layout *layouts;
  int n;
  if (given) {
    layouts = malloc(sizeof *layouts);
    if (!layouts) fail_local(EXIT_USER_ERROR, "out of memory");
    layouts[0] = given_layout(&cfg, &o), n = 1;
  } else {
    n = plan_enumerate_fixed(&cfg, o.world, o.gpus_per_node, cfg.batch_size, &o.fixed, &layouts);
    if (n == 0)
      fail_collective(EXIT_USER_ERROR, "plan: no layout of %d ranks can train this model with a global batch of %d "
                      "(train refuses every split: check n_head, n_layer, seq_len and the batch against the world size)",
                      o.world, cfg.batch_size);
  }
  scored *fit;
  const int n_fit = rank_layouts(&cfg, &o, layouts, n, machine, &fit);
  if (n_fit == 0)
    fail_collective(EXIT_USER_ERROR, "plan: none of the %d valid layouts of %d ranks fits %g GiB per rank (the "
                    "smallest needs %.4g GiB): use more ranks, a shorter seq_len%s or --memory-per-rank-gib", n,
                    o.world, o.budget_gib, smallest_gib(&cfg, layouts, n),
                    o.fixed.enumerate_offload ? "" : ", --offload (weigh optimizer offload)");
  if (o.json) print_json(&o, &cfg, fit, n_fit, n, given);
  else print_table(&o, fit, n_fit, n);
#if PLAN_HAS_TIME
  if (machine) machine_profile_free(machine);
#endif
  free(fit);
  free(layouts);
  return EXIT_OK;
}
