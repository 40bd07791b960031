/* config — every setting of a run, from an INI file and the command line.
 *
 * One table (config.c) names each key, its section, type, default, range and
 * help text; the INI parser, the `--key=value` overrides, `tessera train
 * --help` and doc/user-guide.md all follow it, so a key exists in exactly one
 * place. Strings that select behaviour become enums here, once; hot code
 * switches on enums. Unknown keys, malformed values and out-of-range numbers
 * are user errors that name the key and the file (or the option).
 *
 * Parsing never exits: it returns a message, so that every MPI rank (which
 * parses the same input) can report the error once, from rank 0.
 */
#ifndef TESSERA_CONFIG_H
#define TESSERA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fail.h"
#include "model_shape.h"

typedef enum backend_choice { BACKEND_CHOICE_AUTO, BACKEND_CHOICE_CPU, BACKEND_CHOICE_CUDA } backend_choice;
typedef enum comm_choice { COMM_CHOICE_AUTO, COMM_CHOICE_NCCL, COMM_CHOICE_MPI } comm_choice;
typedef enum progress_choice { PROGRESS_AUTO, PROGRESS_ON, PROGRESS_OFF } progress_choice;
/* the same order as pipe_schedule_kind and recompute_kind */
typedef enum pp_schedule_choice { PP_SCHEDULE_GPIPE, PP_SCHEDULE_1F1B, PP_SCHEDULE_INTERLEAVED } pp_schedule_choice;
typedef enum recompute_choice { RECOMPUTE_CHOICE_NONE, RECOMPUTE_CHOICE_SELECTIVE, RECOMPUTE_CHOICE_FULL } recompute_choice;
typedef enum attention_choice { ATTENTION_SOFTMAX, ATTENTION_LINEAR, ATTENTION_HYBRID } attention_choice;
/* the same order as norm_kind, mlp_kind, position_kind and sp_kind */
typedef enum norm_choice { NORM_CHOICE_LAYERNORM, NORM_CHOICE_RMSNORM } norm_choice;
typedef enum mlp_choice { MLP_CHOICE_GELU, MLP_CHOICE_SWIGLU } mlp_choice;
typedef enum position_choice { POSITION_CHOICE_LEARNED, POSITION_CHOICE_ROPE, POSITION_CHOICE_NONE } position_choice;
typedef enum decay_choice { DECAY_CHOICE_NONE, DECAY_CHOICE_SLOPES } decay_choice;
typedef enum sp_kind_choice {
  SP_KIND_CHOICE_RING,
  SP_KIND_CHOICE_ALLGATHER,
  SP_KIND_CHOICE_ALLSCAN,
  SP_KIND_CHOICE_ULYSSES,
  SP_KIND_CHOICE_TOKENRING
} sp_kind_choice;

/* room for the key table (config.c checks it) */
#define CONFIG_MAX_KEYS 128

typedef struct config {
  /* [model] */
  int n_layer, n_head, d_model, vocab_size, seq_len;
  int attention;         /* attention_choice */
  char layer_pattern[PATH_BYTES]; /* hybrid: per-layer S|L, repeated */
  int norm, mlp, position; /* norm_choice, mlp_choice, position_choice */
  bool bias;
  int ffn_hidden;        /* 0: the MLP's default width */
  int linear_decay;      /* decay_choice */
  double decay_base, rope_theta;
  int linear_chunk;
  bool tie_embeddings;   /* the output head is wte (GPT-2) or its own lm_head (false) */
  double norm_eps;
  /* [train] */
  int batch_size;        /* global batch in sequences, over all data-parallel ranks */
  int micro_batch_size;  /* sequences per forward/backward on one rank */
  int64_t steps;
  double lr, min_lr;
  int64_t warmup_steps;
  double beta1, beta2, adam_eps, weight_decay, grad_clip;
  int64_t seed;
  /* [data] */
  char data[PATH_BYTES], val_data[PATH_BYTES];
  char tokenizer[PATH_BYTES]; /* of data that records none; "" when not set */
  double val_fraction;
  /* [eval] */
  int64_t val_every, sample_every;
  int val_sequences, sample_tokens;
  char sample_prompt[256];
  /* [run] */
  backend_choice backend;
  int comm_path;         /* comm_choice (the key `comm`) */
  int tp, pp, sp, zero;
  double grad_bucket_mb; /* 0: one bucket */
  int sp_kind;           /* sp_kind_choice */
  bool tp_seq_shard;
  int pp_schedule;       /* pp_schedule_choice */
  int pp_virtual;        /* model chunks per stage (interleaved schedule) */
  char pp_layers[PATH_BYTES];  /* explicit layers per chunk, "3,4,4,3"; empty: balanced */
  int recompute;         /* recompute_choice */
  int head_chunk_rows;   /* rows of logits at a time at the head (0: all) */
  bool profile;          /* time per region of the model */
  char metrics[PATH_BYTES];
  progress_choice progress;
  int64_t log_every;
  double peak_tflops;    /* 0: measure sgemm peak at start-up */
  char save_dir[PATH_BYTES];
  int64_t save_every;
  char resume[PATH_BYTES];
  char init_from[PATH_BYTES];
  char offload_optimizer[PATH_BYTES]; /* none | host | nvme:DIR */
  double offload_chunk_mb;
  bool async_save;
  int64_t stop_at_step;
  int keep;
  char dump_params[PATH_BYTES];
  double watchdog;
  double watchdog_phase;
  /* which keys the file or the command line set (by key-table index):
   * --init-from takes the model keys from the source, and refuses the ones
   * set otherwise */
  bool key_set[CONFIG_MAX_KEYS];
} config;

void config_set_defaults(config *cfg);

/* Reads an INI file ([section] headers, `key = value`, `#`/`;` comments).
 * The file must be a regular file (a FIFO or device is refused, never read);
 * a UTF-8 BOM is skipped; a NUL byte, a key set twice (both lines named),
 * an unclosed quote are errors. Comments: a line starting with # or ;, or,
 * after a value, a # or ; standing alone (whitespace before, whitespace or
 * the end after), so `The #1 dog` is kept; "quoted" values are verbatim.
 * Returns 0, or the exit status with a one-line message in err. */
int config_load_file(config *cfg, const char *path, char *err, size_t err_bytes);

/* Sets one key from text (as `--key=value` gives it). `origin` names where the
 * text came from, for messages ("--lr", "tiny.ini:12"). */
int config_set(config *cfg, const char *key, const char *value, const char *origin, char *err,
               size_t err_bytes);

/* The one checked parser of every number a user types: the keys' values and
 * every command's numeric options. `text` must be all digits (a double:
 * strtod's whole syntax, finite), within [min, max]. Returns 0, or
 * EXIT_USER_ERROR with "WHAT needs a whole number, got 'TEXT'" or
 * "WHAT = N is out of range [MIN, MAX]" in err; WHAT names the option
 * ("sample: --tokens", "tiny.ini:12: 'lr'"). */
int config_parse_int64(const char *what, const char *text, int64_t min, int64_t max, int64_t *value,
                       char *err, size_t err_bytes);
int config_parse_double(const char *what, const char *text, double min, double max, double *value, char *err,
                        size_t err_bytes);

/* True when `key` names a setting (so `--key value` can take the next argv). */
bool config_has_key(const char *key);
/* True when `key` is a switch: `--key` alone means `--key=true`. */
bool config_key_is_switch(const char *key);

/* Cross-key checks that need no layout (heads divide d_model, ...). */
int config_validate(const config *cfg, char *err, size_t err_bytes);

/* The model the [model] keys describe: the one derivation a run makes
 * (config_shape.c), handed to everything that needs the model's shape. */
model_shape config_model_shape(const config *cfg);

/* The [model] keys of `shape` (a checkpoint's model, for a command that runs
 * it): config_model_shape of the result describes the same model. */
void config_set_model_shape(config *cfg, const model_shape *shape);

/* Whether the file or the command line set `key`. */
bool config_key_was_set(const config *cfg, const char *key);

/* --init-from: the model keys become those of `source` (the model being
 * started from). Model keys the user set to other values are listed in
 * differences ("n_layer 12 in the model, 4 set; ...", empty when none):
 * the caller refuses them. A model without learned positions may be
 * trained at a seq_len of the user's choosing. */
void config_adopt_model_shape(config *cfg, const model_shape *source, char *differences, size_t differences_bytes);

/* Writes every key = value, grouped by section, as an INI file would hold it. */
void config_print(const config *cfg, void *file /* FILE* */);

/* Writes `--key=VALUE  help (default)` lines for --help. */
void config_print_help(void *file /* FILE* */);
/* The same lines for the NULL-terminated list `keys` only. */
void config_print_keys_help(void *file /* FILE* */, const char *const *keys);

#endif
