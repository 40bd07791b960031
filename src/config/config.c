/* config — see config.h. The key table below is the single source of truth
 * for every setting: its section, type, default, valid range and meaning. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"

typedef enum key_type { KEY_INT, KEY_INT64, KEY_DOUBLE, KEY_STRING, KEY_CHOICE, KEY_BOOL } key_type;

typedef struct key_spec {
  const char *name;
  const char *section;
  key_type type;
  size_t offset;
  const char *default_text;
  double min, max;      /* numeric keys: inclusive range */
  const char *choices;  /* KEY_CHOICE: "a|b|c"; the enum value is the index */
  const char *help;
} key_spec;

#define FIELD(f) offsetof(config, f)
#define BIG 9.0e18

static const key_spec key_table[] = {
  {"n_layer", "model", KEY_INT, FIELD(n_layer), "4", 1, 1024, NULL, "transformer blocks"},
  {"n_head", "model", KEY_INT, FIELD(n_head), "4", 1, 1024, NULL, "attention heads per block"},
  {"d_model", "model", KEY_INT, FIELD(d_model), "128", 1, 1 << 20, NULL, "hidden size (n_head divides it)"},
  {"vocab_size", "model", KEY_INT, FIELD(vocab_size), "257", 2, 1 << 24, NULL,
   "vocabulary size (257 for the byte tokenizer)"},
  {"seq_len", "model", KEY_INT, FIELD(seq_len), "128", 1, 1 << 20, NULL,
   "tokens per sequence; also the number of learned positions"},
  {"attention", "model", KEY_CHOICE, FIELD(attention), "softmax", 0, 0, "softmax|linear|hybrid",
   "causal softmax attention, linear attention (chunkwise, with decay), or a per-layer mix (layer_pattern)"},
  {"layer_pattern", "model", KEY_STRING, FIELD(layer_pattern), "", 0, 0, NULL,
   "hybrid attention: S (softmax) or L (linear) per layer, repeated over the layers, e.g. LLLS"},
  {"norm", "model", KEY_CHOICE, FIELD(norm), "layernorm", 0, 0, "layernorm|rmsnorm", "the blocks' and final norm"},
  {"mlp", "model", KEY_CHOICE, FIELD(mlp), "gelu", 0, 0, "gelu|swiglu", "the MLP: GPT-2's GELU or Llama's SwiGLU"},
  {"position", "model", KEY_CHOICE, FIELD(position), "learned", 0, 0, "learned|rope|none",
   "positions: learned embeddings, rotary (RoPE) on queries and keys, or none"},
  {"bias", "model", KEY_BOOL, FIELD(bias), "true", 0, 0, NULL,
   "biases in the attention and MLP products (GPT-2: true; Llama: false)"},
  {"ffn_hidden", "model", KEY_INT, FIELD(ffn_hidden), "0", 0, 1 << 24, NULL,
   "MLP hidden width (0: 4·d_model for GELU, 8·d_model/3 rounded up to 16 for SwiGLU)"},
  {"linear_decay", "model", KEY_CHOICE, FIELD(linear_decay), "slopes", 0, 0, "none|slopes",
   "linear attention decay: none, or fixed per-head slopes λ_h = exp(-2^(-decay_base·(h+1)/n_head))"},
  {"decay_base", "model", KEY_DOUBLE, FIELD(decay_base), "8", 0.001, 1000, NULL,
   "base of the per-head decay slopes (Lightning Attention and ALiBi use 8)"},
  {"linear_chunk", "model", KEY_INT, FIELD(linear_chunk), "64", 1, 1 << 16, NULL,
   "chunk size of the chunkwise linear attention (changes speed, not results)"},
  {"rope_theta", "model", KEY_DOUBLE, FIELD(rope_theta), "10000", 1, 1e12, NULL, "RoPE base"},
  {"tie_embeddings", "model", KEY_BOOL, FIELD(tie_embeddings), "true", 0, 0, NULL,
   "the output head is the token embedding (GPT-2: true) or its own matrix lm_head (Llama: false)"},
  {"norm_eps", "model", KEY_DOUBLE, FIELD(norm_eps), "1e-5", 1e-12, 1, NULL,
   "epsilon of the blocks' and final norm (GPT-2: 1e-5; Llama: 1e-5 or 1e-6)"},

  {"batch_size", "train", KEY_INT, FIELD(batch_size), "16", 1, 1 << 24, NULL,
   "global batch in sequences, summed over data-parallel ranks"},
  {"micro_batch_size", "train", KEY_INT, FIELD(micro_batch_size), "4", 1, 1 << 20, NULL,
   "sequences per forward/backward on one rank (gradient accumulation makes up the rest)"},
  {"steps", "train", KEY_INT64, FIELD(steps), "100", 0, BIG, NULL, "optimizer steps to train"},
  {"lr", "train", KEY_DOUBLE, FIELD(lr), "6e-4", 0, 10, NULL, "peak learning rate"},
  {"min_lr", "train", KEY_DOUBLE, FIELD(min_lr), "6e-5", 0, 10, NULL, "learning rate at the end of the cosine decay"},
  {"warmup_steps", "train", KEY_INT64, FIELD(warmup_steps), "10", 0, BIG, NULL,
   "steps of linear warmup from 0 to lr"},
  {"beta1", "train", KEY_DOUBLE, FIELD(beta1), "0.9", 0, 0.999999, NULL, "AdamW beta1"},
  {"beta2", "train", KEY_DOUBLE, FIELD(beta2), "0.95", 0, 0.999999, NULL, "AdamW beta2"},
  {"adam_eps", "train", KEY_DOUBLE, FIELD(adam_eps), "1e-8", 0, 1, NULL, "AdamW epsilon"},
  {"weight_decay", "train", KEY_DOUBLE, FIELD(weight_decay), "0.1", 0, 10, NULL,
   "decoupled weight decay, applied to matrices only (not biases, norms or position embeddings)"},
  {"grad_clip", "train", KEY_DOUBLE, FIELD(grad_clip), "1.0", 0, 1e30, NULL,
   "clip the global gradient norm to this (0: no clipping)"},
  {"seed", "train", KEY_INT64, FIELD(seed), "1234", 0, BIG, NULL, "seed of initialisation and data order"},

  {"data", "data", KEY_STRING, FIELD(data), "", 0, 0, NULL,
   "training data: a Megatron PREFIX (PREFIX.idx/.bin) or an llm.c .bin file"},
  {"val_data", "data", KEY_STRING, FIELD(val_data), "", 0, 0, NULL,
   "validation data; when empty, the last val_fraction of the training data"},
  {"val_fraction", "data", KEY_DOUBLE, FIELD(val_fraction), "0.05", 0, 0.5, NULL,
   "share of the training windows held out for validation when val_data is empty"},
  {"tokenizer", "data", KEY_STRING, FIELD(tokenizer), "", 0, 0, NULL,
   "tokenizer of data that records none (llm.c shards, other tools' datasets): GPT-2's encoder.json + "
   "vocab.bpe folder, or a tokenizer.json; a dataset's own PREFIX.tokenizer.json must agree with it"},

  {"val_every", "eval", KEY_INT64, FIELD(val_every), "0", 0, BIG, NULL,
   "validation loss every N steps (0: only at the end)"},
  {"val_sequences", "eval", KEY_INT, FIELD(val_sequences), "32", 0, 1 << 24, NULL,
   "held-out sequences in each validation (the same set whatever the layout)"},
  {"sample_every", "eval", KEY_INT64, FIELD(sample_every), "0", 0, BIG, NULL,
   "print a generated sample every N steps (0: only at the end)"},
  {"sample_tokens", "eval", KEY_INT, FIELD(sample_tokens), "128", 0, 1 << 20, NULL,
   "tokens to generate for each sample (0: no samples)"},
  {"sample_prompt", "eval", KEY_STRING, FIELD(sample_prompt), "The ", 0, 0, NULL,
   "text the samples start from"},

  {"backend", "run", KEY_CHOICE, FIELD(backend), "auto", 0, 0, "auto|cpu|cuda",
   "compute backend (auto: cuda when this build has it and every rank sees a GPU, else cpu)"},
  {"comm", "run", KEY_CHOICE, FIELD(comm_path), "auto", 0, 0, "auto|nccl|mpi",
   "how GPU buffers travel between ranks: nccl (on each group's own stream), mpi (staged through host "
   "memory; ranks may share a GPU), auto (nccl on cuda when every rank of a node has its own GPU, else mpi)"},
  {"tp", "run", KEY_INT, FIELD(tp), "1", 1, 1 << 16, NULL, "tensor-parallel ranks"},
  {"pp", "run", KEY_INT, FIELD(pp), "1", 1, 1 << 16, NULL, "pipeline stages"},
  {"sp", "run", KEY_INT, FIELD(sp), "1", 1, 1 << 16, NULL, "sequence-parallel ranks"},
  {"zero", "run", KEY_INT, FIELD(zero), "0", 0, 3, NULL, "ZeRO stage 0|1|2|3"},
  {"grad_bucket_mb", "run", KEY_DOUBLE, FIELD(grad_bucket_mb), "25", 0, 1e6, NULL,
   "ZeRO 0 and 1: the gradient all-reduce's buckets, in MiB of fp32 gradients (25: DDP's default), each started as soon as the backward has "
   "finished its gradients (0: one bucket, all-reduced after the backward, no overlap)"},
  {"sp_kind", "run", KEY_CHOICE, FIELD(sp_kind), "allgather", 0, 0, "ring|allgather|allscan|ulysses|tokenring",
   "sequence parallelism of the attention: ring (LASP state passing; ring attention with "
   "zig-zag chunks), allgather (LASP-2 chunk states; K and V gathered), allscan (ZeCO's All-Scan: "
   "the states pipelined in blocks; softmax layers as allgather), ulysses (DeepSpeed-Ulysses: "
   "all-to-all from sequence shards to head shards and back) or tokenring (TokenRing: queries travel "
   "the ring, partial outputs come straight back, zig-zag chunks; linear layers as ring)"},
  {"pp_schedule", "run", KEY_CHOICE, FIELD(pp_schedule), "1f1b", 0, 0, "gpipe|1f1b|interleaved",
   "pipeline schedule: GPipe (all forwards, then all backwards), 1F1B (PipeDream-flush) or "
   "interleaved 1F1B over --pp-virtual chunks per stage"},
  {"pp_virtual", "run", KEY_INT, FIELD(pp_virtual), "1", 1, 64, NULL,
   "model chunks per pipeline stage (the interleaved schedule needs 2 or more)"},
  {"pp_layers", "run", KEY_STRING, FIELD(pp_layers), "", 0, 0, NULL,
   "layers per pipeline chunk in order, e.g. 3,4,4,3 (empty: balanced by compute, counting the "
   "embedding and the head)"},
  {"recompute", "run", KEY_CHOICE, FIELD(recompute), "none", 0, 0, "none|selective|full",
   "activation recomputation: none, selective (the attention core is recomputed in the "
   "backward) or full (each block's forward is recomputed in its backward)"},
  {"head_chunk_rows", "run", KEY_INT, FIELD(head_chunk_rows), "0", 0, 1 << 30, NULL,
   "rows whose logits exist at once at the output head (0: all rows of a micro-batch); fewer "
   "saves memory and costs some speed, results change only by float rounding"},
  {"tp_seq_shard", "run", KEY_BOOL, FIELD(tp_seq_shard), "false", 0, 0, NULL,
   "Megatron sequence parallelism in the norm regions: shard activations along the sequence "
   "over tp (all-gather / reduce-scatter instead of all-reduce)"},
  {"profile", "run", KEY_BOOL, FIELD(profile), "false", 0, 0, NULL,
   "time each region of the model (norms, QKV, attention, MLP, head, communication, optimizer) "
   "with backend marks; a table at the end and profile_* keys in the metrics"},
  {"metrics", "run", KEY_STRING, FIELD(metrics), "runs/metrics.jsonl", 0, 0, NULL,
   "JSONL metrics file (one object per step, validation and summary lines; its folder is created)"},
  {"progress", "run", KEY_CHOICE, FIELD(progress), "auto", 0, 0, "auto|on|off",
   "progress line with ETA (auto: only when stdout is a terminal)"},
  {"log_every", "run", KEY_INT64, FIELD(log_every), "1", 1, BIG, NULL,
   "print a step line every N steps (and the first and last); the metrics file has every step"},
  {"peak_tflops", "run", KEY_DOUBLE, FIELD(peak_tflops), "0", 0, 1e9, NULL,
   "peak TFLOP/s per rank for MFU (0: measure sgemm at start-up)"},
  {"offload_optimizer", "run", KEY_STRING, FIELD(offload_optimizer), "none", 0, 0, NULL,
   "where the fp32 master weights and Adam moments of this rank's ZeRO range live: none (with the "
   "compute weights), host (host memory, updated by the host's AdamW) or nvme:DIR (a file per rank "
   "in DIR, read and written with O_DIRECT a chunk at a time)"},
  {"offload_chunk_mb", "run", KEY_DOUBLE, FIELD(offload_chunk_mb), "16", 0.001, 65536, NULL,
   "with offload_optimizer, MiB of each state (master, m, v) the update handles at a time; nvme keeps "
   "three such chunks of all three states in RAM"},
  {"save_dir", "run", KEY_STRING, FIELD(save_dir), "", 0, 0, NULL, "checkpoint directory"},
  {"save_every", "run", KEY_INT64, FIELD(save_every), "0", 0, BIG, NULL, "checkpoint every N steps"},
  {"resume", "run", KEY_STRING, FIELD(resume), "", 0, 0, NULL,
   "auto (the newest complete checkpoint in save_dir, or a fresh start) or a checkpoint file"},
  {"init_from", "run", KEY_STRING, FIELD(init_from), "", 0, 0, NULL,
   "start from the weights of this model at step 0 with a fresh optimizer: a tessera checkpoint (.h5), "
   "an llm.c model (.bin) or a Hugging Face folder; the model keys come from it"},
  {"async_save", "run", KEY_BOOL, FIELD(async_save), "false", 0, 0, NULL,
   "copy the state to host memory at the step boundary and write the checkpoint from a "
   "background thread while training goes on"},
  {"keep", "run", KEY_INT, FIELD(keep), "0", 0, 1 << 20, NULL,
   "keep only the newest K checkpoints in save_dir (0: keep all)"},
  {"stop_at_step", "run", KEY_INT64, FIELD(stop_at_step), "0", 0, BIG, NULL,
   "end this run after that step, keeping the schedule of `steps` (0: run to `steps`)"},
  {"watchdog", "run", KEY_DOUBLE, FIELD(watchdog), "0", 0, 1e9, NULL,
   "abort with a report when a collective makes no progress for this many seconds (0: off)"},
  {"watchdog_phase", "run", KEY_DOUBLE, FIELD(watchdog_phase), "0", 0, 1e9, NULL,
   "with a watchdog, how long ranks may wait for a slow phase of other ranks (a sample, a checkpoint "
   "save) before it reads as a hang (0: 10 x watchdog)"},
  {"dump_params", "run", KEY_STRING, FIELD(dump_params), "", 0, 0, NULL,
   "at the end, write every logical parameter (fp32 master, gathered) to this raw file"},
};
#define N_KEYS (sizeof key_table / sizeof key_table[0])
_Static_assert(N_KEYS <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");

static const key_spec *find_key(const char *name) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(key_table[i].name, name) == 0) return &key_table[i];
  return NULL;
}

bool config_has_key(const char *key) { return find_key(key) != NULL; }

bool config_key_is_switch(const char *key) {
  const key_spec *spec = find_key(key);
  return spec && spec->type == KEY_BOOL;
}

/* Index of `value` in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *value) {
  int index = 0;
  size_t value_len = strlen(value);
  for (const char *p = choices; *p; index++) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == value_len && strncmp(p, value, len) == 0) return index;
    if (!bar) break;
    p = bar + 1;
  }
  return -1;
}

int config_parse_int64(const char *what, const char *text, int64_t min, int64_t max, int64_t *value,
                       char *err, size_t err_bytes) {
  char *end = NULL;
  errno = 0;
  const long long parsed = strtoll(text, &end, 10);
  if (end == text || *end != '\0') {
    snprintf(err, err_bytes, "%s needs a whole number, got '%s'", what, text);
    return EXIT_USER_ERROR;
  }
  if (errno == ERANGE) { /* beyond long long: say so rather than show the clamped value */
    snprintf(err, err_bytes, "%s = %s is out of range [%lld, %lld]", what, text, (long long)min, (long long)max);
    return EXIT_USER_ERROR;
  }
  if (parsed < min || parsed > max) {
    snprintf(err, err_bytes, "%s = %lld is out of range [%lld, %lld]", what, parsed, (long long)min,
             (long long)max);
    return EXIT_USER_ERROR;
  }
  *value = (int64_t)parsed;
  return 0;
}

int config_parse_double(const char *what, const char *text, double min, double max, double *value, char *err,
                        size_t err_bytes) {
  char *end = NULL;
  errno = 0;
  const double parsed = strtod(text, &end);
  if (end == text || *end != '\0' || !isfinite(parsed) || (errno && errno != ERANGE)) {
    snprintf(err, err_bytes, "%s needs a number, got '%s'", what, text);
    return EXIT_USER_ERROR;
  }
  /* ERANGE with a finite result is an underflow: a value closer to 0 than
   * any double, which the range check below judges by its rounded value */
  if (parsed < min || parsed > max) {
    snprintf(err, err_bytes, "%s = %g is out of range [%g, %g]", what, parsed, min, max);
    return EXIT_USER_ERROR;
  }
  *value = parsed;
  return 0;
}

static int set_from_spec(config *cfg, const key_spec *spec, const char *value, const char *origin,
                         char *err, size_t err_bytes) {
  char *field = (char *)cfg + spec->offset;
  char what[JOINED_PATH_BYTES + 80];
  snprintf(what, sizeof what, "%s: '%s'", origin, spec->name);
  switch (spec->type) {
    case KEY_INT:
    case KEY_INT64: {
      int64_t parsed = 0;
      const int status = config_parse_int64(what, value, (int64_t)spec->min, (int64_t)spec->max, &parsed, err,
                                            err_bytes);
      if (status) return status;
      if (spec->type == KEY_INT) *(int *)field = (int)parsed;
      else *(int64_t *)field = parsed;
      return 0;
    }
    case KEY_DOUBLE:
      return config_parse_double(what, value, spec->min, spec->max, (double *)field, err, err_bytes);
    case KEY_STRING: {
      size_t capacity = strcmp(spec->name, "sample_prompt") == 0 ? sizeof cfg->sample_prompt
                                                                 : sizeof cfg->data;
      if (strlen(value) >= capacity) {
        snprintf(err, err_bytes, "%s: '%s' is longer than %zu characters", origin, spec->name,
                 capacity - 1);
        return EXIT_USER_ERROR;
      }
      strcpy(field, value);
      return 0;
    }
    case KEY_BOOL: {
      int index = choice_index("false|true|0|1|off|on|no|yes", value);
      if (index < 0) {
        snprintf(err, err_bytes, "%s: '%s' must be true or false, got '%s'", origin, spec->name, value);
        return EXIT_USER_ERROR;
      }
      *(bool *)field = index % 2 == 1;
      return 0;
    }
    case KEY_CHOICE: {
      int index = choice_index(spec->choices, value);
      if (index < 0) {
        snprintf(err, err_bytes, "%s: '%s' must be one of %s, got '%s'", origin, spec->name,
                 spec->choices, value);
        return EXIT_USER_ERROR;
      }
      *(int *)field = index;
      return 0;
    }
  }
  return EXIT_INTERNAL_ERROR;
}

int config_set(config *cfg, const char *key, const char *value, const char *origin, char *err,
               size_t err_bytes) {
  const key_spec *spec = find_key(key);
  if (!spec) {
    snprintf(err, err_bytes, "%s: unknown key '%s' (see `tessera train --help` for the keys)", origin,
             key);
    return EXIT_USER_ERROR;
  }
  const int status = set_from_spec(cfg, spec, value, origin, err, err_bytes);
  if (!status) cfg->key_set[spec - key_table] = true;
  return status;
}

bool config_key_was_set(const config *cfg, const char *key) {
  const key_spec *spec = find_key(key);
  return spec && cfg->key_set[spec - key_table];
}

void config_set_defaults(config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  char err[256];
  for (size_t i = 0; i < N_KEYS; i++)
    if (set_from_spec(cfg, &key_table[i], key_table[i].default_text, "default", err, sizeof err))
      fail_local(EXIT_INTERNAL_ERROR, "bad default: %s", err);
}

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
  return s;
}

static bool section_known(const char *name) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(key_table[i].section, name) == 0) return true;
  return false;
}

/* A config file must be a regular file: a FIFO or a terminal would be read
 * until someone writes an end to it, a device forever, a directory not at
 * all. Checked before opening (opening a FIFO blocks) and again on the open
 * descriptor, which O_NONBLOCK keeps from waiting on a writer. */
static FILE *open_config_file(const char *path, char *err, size_t err_bytes) {
  struct stat info;
  if (stat(path, &info) != 0) {
    snprintf(err, err_bytes, "cannot open config file '%s': %s", path, strerror(errno));
    return NULL;
  }
  const int fd = S_ISREG(info.st_mode) ? open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) : -1;
  if (S_ISREG(info.st_mode) && fd < 0) {
    snprintf(err, err_bytes, "cannot open config file '%s': %s", path, strerror(errno));
    return NULL;
  }
  if (fd >= 0 && fstat(fd, &info) != 0) info.st_mode = 0; /* replaced since the stat: judged not regular */
  if (!S_ISREG(info.st_mode)) {
    if (S_ISDIR(info.st_mode)) snprintf(err, err_bytes, "config file '%s' is a directory, not a file", path);
    else
      snprintf(err, err_bytes, "config file '%s' is not a regular file (a FIFO, device or socket): give an INI file",
               path);
    if (fd >= 0) close(fd);
    return NULL;
  }
  FILE *file = fdopen(fd, "r");
  if (!file) {
    snprintf(err, err_bytes, "cannot open config file '%s': %s", path, strerror(errno));
    close(fd);
  }
  return file;
}

typedef enum line_status { LINE_OK, LINE_END, LINE_TOO_LONG, LINE_NUL } line_status;

/* One line without its '\n'. Read byte by byte so that a NUL byte (a binary
 * file given as config) is seen and reported rather than silently ending
 * the line, as fgets + strlen would; *column is the NUL's (1-based). */
static line_status read_line(FILE *file, char *line, size_t line_bytes, size_t *column) {
  size_t n = 0;
  int c;
  while ((c = getc(file)) != EOF && c != '\n') {
    if (c == '\0') {
      *column = n + 1;
      return LINE_NUL;
    }
    if (n + 1 >= line_bytes) return LINE_TOO_LONG;
    line[n++] = (char)c;
  }
  line[n] = '\0';
  return c == EOF && n == 0 ? LINE_END : LINE_OK;
}

/* Whether text[at] (a '#' or ';') starts a comment after a value: it stands
 * alone, with whitespace before it and whitespace or the end after it. So
 * `steps = 100   # short` is 100 while `The #1 dog` and `a;b` are kept. */
static bool comment_starts(const char *text, size_t at) {
  return (text[at] == '#' || text[at] == ';') && at > 0 && isspace((unsigned char)text[at - 1]) &&
         (text[at + 1] == '\0' || isspace((unsigned char)text[at + 1]));
}

/* The value after '=' with its comment removed. In double quotes it is
 * everything between them, verbatim; only a comment may follow. */
static int value_of(char *text, const char *origin, char **value, char *err, size_t err_bytes) {
  text = trim(text);
  if (*text == '"') {
    char *close = strchr(text + 1, '"');
    if (!close) {
      snprintf(err, err_bytes, "%s: the quoted value %s has no closing \"", origin, text);
      return EXIT_USER_ERROR;
    }
    *close = '\0';
    const char *rest = close + 1;
    while (isspace((unsigned char)*rest)) rest++;
    if (*rest && *rest != '#' && *rest != ';') {
      snprintf(err, err_bytes, "%s: text '%s' after the closing \" (only a comment may follow)", origin, rest);
      return EXIT_USER_ERROR;
    }
    *value = text + 1;
    return 0;
  }
  for (size_t at = 0; text[at]; at++)
    if (comment_starts(text, at)) {
      text[at] = '\0';
      break;
    }
  *value = trim(text);
  return 0;
}

/* "[name]", optionally followed by a comment, into section. */
static int section_header(char *text, const char *origin, char *section, size_t section_bytes, char *err,
                          size_t err_bytes) {
  char *close = strchr(text, ']');
  const char *rest = close ? close + 1 : "";
  while (isspace((unsigned char)*rest)) rest++;
  if (!close || (*rest && *rest != '#' && *rest != ';')) {
    snprintf(err, err_bytes, "%s: malformed section header '%s' (expected [name])", origin, text);
    return EXIT_USER_ERROR;
  }
  *close = '\0';
  snprintf(section, section_bytes, "%s", trim(text + 1));
  if (!section_known(section)) {
    snprintf(err, err_bytes, "%s: unknown section [%s] (sections: model, train, data, eval, run)", origin, section);
    return EXIT_USER_ERROR;
  }
  return 0;
}

/* What the lines read so far set: the section and the line of each key,
 * since a key given twice is an error naming both lines. */
typedef struct ini_state {
  char section[64];
  int key_line[N_KEYS];
} ini_state;

static int parse_line(config *cfg, ini_state *state, char *text, int line_number, const char *origin, char *err,
                      size_t err_bytes) {
  text = trim(text);
  if (*text == '\0' || *text == '#' || *text == ';') return 0;
  if (*text == '[') return section_header(text, origin, state->section, sizeof state->section, err, err_bytes);
  char *equals = strchr(text, '=');
  if (!equals) {
    snprintf(err, err_bytes, "%s: expected 'key = value', got '%s'", origin, text);
    return EXIT_USER_ERROR;
  }
  *equals = '\0';
  char *key = trim(text), *value = NULL;
  int status = value_of(equals + 1, origin, &value, err, err_bytes);
  if (status) return status;
  const key_spec *spec = find_key(key);
  if (spec && state->section[0] && strcmp(spec->section, state->section) != 0) {
    snprintf(err, err_bytes, "%s: key '%s' belongs in section [%s], not [%s]", origin, key, spec->section,
             state->section);
    return EXIT_USER_ERROR;
  }
  if (spec && state->key_line[spec - key_table]) {
    snprintf(err, err_bytes, "%s: key '%s' is set twice, on line %d and on line %d; keep one", origin, key,
             state->key_line[spec - key_table], line_number);
    return EXIT_USER_ERROR;
  }
  status = config_set(cfg, key, value, origin, err, err_bytes);
  if (!status) state->key_line[spec - key_table] = line_number;
  return status;
}

int config_load_file(config *cfg, const char *path, char *err, size_t err_bytes) {
  FILE *file = open_config_file(path, err, err_bytes);
  if (!file) return EXIT_USER_ERROR;
  static const char bom[] = "\xEF\xBB\xBF"; /* UTF-8's byte order mark, which some editors write */
  char line[8192], origin[JOINED_PATH_BYTES];
  ini_state state = {.section = ""};
  int line_number = 0, status = 0;
  size_t column = 0;
  line_status got;
  while (!status && (got = read_line(file, line, sizeof line, &column)) != LINE_END) {
    line_number++;
    snprintf(origin, sizeof origin, "%s:%d", path, line_number);
    if (got == LINE_TOO_LONG) {
      snprintf(err, err_bytes, "%s: line longer than %zu characters", origin, sizeof line - 1);
      status = EXIT_USER_ERROR;
    } else if (got == LINE_NUL) {
      snprintf(err, err_bytes, "%s: a NUL byte at column %zu: a config file is text", origin, column);
      status = EXIT_USER_ERROR;
    } else {
      const size_t skip = line_number == 1 && strncmp(line, bom, 3) == 0 ? 3 : 0;
      status = parse_line(cfg, &state, line + skip, line_number, origin, err, err_bytes);
    }
  }
  if (!status && ferror(file)) {
    snprintf(err, err_bytes, "error reading config file '%s': %s", path, strerror(errno));
    status = EXIT_IO_ERROR;
  }
  fclose(file);
  return status;
}

int config_validate(const config *cfg, char *err, size_t err_bytes) {
  if (cfg->d_model % cfg->n_head != 0) {
    snprintf(err, err_bytes, "d_model = %d is not divisible by n_head = %d; choose n_head dividing d_model",
             cfg->d_model, cfg->n_head);
    return EXIT_USER_ERROR;
  }
  if (cfg->min_lr > cfg->lr) {
    snprintf(err, err_bytes, "min_lr = %g is larger than lr = %g", cfg->min_lr, cfg->lr);
    return EXIT_USER_ERROR;
  }
  if (cfg->attention == ATTENTION_HYBRID) {
    const size_t n = strlen(cfg->layer_pattern);
    if (n == 0 || n >= 64 || strspn(cfg->layer_pattern, "SL") != n) {
      snprintf(err, err_bytes,
               "attention = hybrid needs layer_pattern: 1 to 63 letters S (softmax) or L (linear), e.g. LLLS; got '%s'",
               cfg->layer_pattern);
      return EXIT_USER_ERROR;
    }
  } else if (cfg->layer_pattern[0]) {
    snprintf(err, err_bytes, "layer_pattern '%s' is only read with attention = hybrid", cfg->layer_pattern);
    return EXIT_USER_ERROR;
  }
  if (cfg->batch_size % cfg->micro_batch_size != 0) {
    snprintf(err, err_bytes,
             "batch_size = %d is not divisible by micro_batch_size = %d; choose a batch_size that is a multiple of it",
             cfg->batch_size, cfg->micro_batch_size);
    return EXIT_USER_ERROR;
  }
  if (strcmp(cfg->offload_optimizer, "none") != 0 && strcmp(cfg->offload_optimizer, "host") != 0 &&
      !(strncmp(cfg->offload_optimizer, "nvme:", 5) == 0 && cfg->offload_optimizer[5])) {
    snprintf(err, err_bytes, "offload_optimizer = '%s': use none, host or nvme:DIR (a folder for the per-rank files)",
             cfg->offload_optimizer);
    return EXIT_USER_ERROR;
  }
  return 0;
}

/* Whether a string value reads back differently unquoted (config_print
 * writes what config_load_file reads): edge spaces, a leading quote, a
 * comment character standing alone. */
static bool needs_quotes(const char *text) {
  const size_t n = strlen(text);
  if (n && (isspace((unsigned char)text[0]) || isspace((unsigned char)text[n - 1]) || text[0] == '"')) return true;
  for (size_t at = 0; at < n; at++)
    if (comment_starts(text, at)) return true;
  return false;
}

static void print_value(const config *cfg, const key_spec *spec, FILE *out) {
  const char *field = (const char *)cfg + spec->offset;
  switch (spec->type) {
    case KEY_INT: fprintf(out, "%d", *(const int *)field); break;
    case KEY_INT64: fprintf(out, "%lld", (long long)*(const int64_t *)field); break;
    case KEY_DOUBLE: fprintf(out, "%.9g", *(const double *)field); break;
    case KEY_STRING: fprintf(out, needs_quotes(field) ? "\"%s\"" : "%s", field); break;
    case KEY_BOOL: fputs(*(const bool *)field ? "true" : "false", out); break;
    case KEY_CHOICE: {
      int index = *(const int *)field;
      const char *p = spec->choices;
      for (int i = 0; i < index && p; i++) p = strchr(p, '|') + 1;
      const char *bar = strchr(p, '|');
      fprintf(out, "%.*s", bar ? (int)(bar - p) : (int)strlen(p), p);
      break;
    }
  }
}

void config_print(const config *cfg, void *file) {
  FILE *out = file;
  const char *section = "";
  for (size_t i = 0; i < N_KEYS; i++) {
    if (strcmp(section, key_table[i].section) != 0) {
      section = key_table[i].section;
      fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
    }
    fprintf(out, "%s = ", key_table[i].name);
    print_value(cfg, &key_table[i], out);
    fputc('\n', out);
  }
}

static void print_key_help(FILE *out, const key_spec *spec) {
  char left[64];
  snprintf(left, sizeof left, "--%s=%s", spec->name,
           spec->type == KEY_CHOICE ? spec->choices
           : spec->type == KEY_BOOL ? "true|false"
           : spec->type == KEY_STRING ? "TEXT"
           : spec->type == KEY_DOUBLE ? "X" : "N");
  fprintf(out, "  %-28s %s (default: %s)\n", left, spec->help,
          spec->default_text[0] ? spec->default_text : "none");
}

void config_print_help(void *file) {
  FILE *out = file;
  const char *section = "";
  for (size_t i = 0; i < N_KEYS; i++) {
    const key_spec *spec = &key_table[i];
    if (strcmp(section, spec->section) != 0) {
      section = spec->section;
      fprintf(out, "\n  [%s]\n", section);
    }
    print_key_help(out, spec);
  }
}

void config_print_keys_help(void *file, const char *const *keys) {
  for (size_t k = 0; keys[k]; k++)
    for (size_t i = 0; i < N_KEYS; i++)
      if (strcmp(key_table[i].name, keys[k]) == 0) print_key_help(file, &key_table[i]);
}
