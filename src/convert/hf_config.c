/* hf_config — see hf_config.h. Keys and defaults as transformers 5 writes
 * and reads them (GPT2Config, LlamaConfig). */
#include "hf_config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model_io_internal.h"

typedef struct config_reader {
  json_t *root;
  const char *path;
  char *err;
  size_t err_bytes;
  int status;
} config_reader;

/* A whole-number key (required when fallback < 0); records the first error. */
static int get_int(config_reader *r, const char *key, long long fallback) {
  json_t *v = json_object_get(r->root, key);
  if ((!v || json_is_null(v)) && fallback >= 0) return (int)fallback;
  if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 24)) {
    if (!r->status)
      snprintf(r->err, r->err_bytes, "'%s': %s must be a whole number from 1 to %d", r->path, key, 1 << 24);
    r->status = EXIT_USER_ERROR;
    return 1;
  }
  return (int)json_integer_value(v);
}

static double get_number(config_reader *r, json_t *object, const char *key, double fallback) {
  json_t *v = json_object_get(object, key);
  if (!v || json_is_null(v)) return fallback;
  if (!json_is_number(v)) {
    if (!r->status) snprintf(r->err, r->err_bytes, "'%s': %s must be a number", r->path, key);
    r->status = EXIT_USER_ERROR;
    return fallback;
  }
  return json_number_value(v);
}

/* A norm epsilon, in tessera's range (0, 1]. */
static double get_eps(config_reader *r, const char *key, double fallback) {
  const double eps = get_number(r, r->root, key, fallback);
  if (!(eps > 0 && eps <= 1)) {
    if (!r->status) snprintf(r->err, r->err_bytes, "'%s': %s %g is not in (0, 1]", r->path, key, eps);
    r->status = EXIT_USER_ERROR;
  }
  return eps;
}

static bool get_bool(config_reader *r, const char *key, bool fallback) {
  json_t *v = json_object_get(r->root, key);
  return v && json_is_boolean(v) ? json_is_true(v) : fallback;
}

static const char *get_string(config_reader *r, const char *key, const char *fallback) {
  json_t *v = json_object_get(r->root, key);
  return json_is_string(v) ? json_string_value(v) : fallback;
}

/* One refusal, unless an earlier one stands. */
#define REFUSE(...)                                                      \
  do {                                                                   \
    if (!r->status) {                                                    \
      char what_[512];                                                   \
      snprintf(what_, sizeof what_, __VA_ARGS__);                        \
      snprintf(r->err, r->err_bytes, "'%s': %s", r->path, what_);        \
    }                                                                    \
    r->status = EXIT_USER_ERROR;                                         \
  } while (0)

static void read_gpt2(config_reader *r, hf_model_info *info) {
  model_shape *s = &info->shape;
  *s = model_shape_gpt2(get_int(r, "n_layer", -1), get_int(r, "n_head", -1), get_int(r, "n_embd", -1),
                        get_int(r, "vocab_size", -1), get_int(r, "n_positions", -1));
  s->ffn_hidden = get_int(r, "n_inner", 4LL * s->d_model);
  const char *act = get_string(r, "activation_function", "gelu_new");
  if (strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
    REFUSE("activation_function '%s': tessera's GELU is the tanh approximation (gelu_new, gelu_pytorch_tanh)", act);
  if (!get_bool(r, "scale_attn_weights", true)) REFUSE("scale_attn_weights false: tessera scales scores by 1/sqrt(d)");
  if (get_bool(r, "scale_attn_by_inverse_layer_idx", false))
    REFUSE("scale_attn_by_inverse_layer_idx true is not supported");
  s->norm_eps = get_eps(r, "layer_norm_epsilon", 1e-5);
  s->untied_head = !get_bool(r, "tie_word_embeddings", true);
}

/* RoPE: transformers 5's rope_parameters, or the older rope_theta and rope_scaling. */
static void read_rope(config_reader *r, model_shape *s) {
  json_t *params = json_object_get(r->root, "rope_parameters"), *scaling = json_object_get(r->root, "rope_scaling");
  s->rope_theta = get_number(r, r->root, "rope_theta", 10000.0);
  json_t *rope = json_is_object(params) ? params : json_is_object(scaling) ? scaling : NULL;
  if (!rope) return;
  s->rope_theta = get_number(r, rope, "rope_theta", s->rope_theta);
  json_t *type = json_object_get(rope, "rope_type");
  if (!type) type = json_object_get(rope, "type");
  if (rope == scaling || (json_is_string(type) && strcmp(json_string_value(type), "default") != 0))
    REFUSE("RoPE scaling (rope_type '%s') is not supported: tessera computes plain RoPE",
           json_is_string(type) ? json_string_value(type) : "?");
}

static void read_llama(config_reader *r, hf_model_info *info) {
  model_shape *s = &info->shape;
  *s = model_shape_gpt2(get_int(r, "num_hidden_layers", -1), get_int(r, "num_attention_heads", -1),
                        get_int(r, "hidden_size", -1), get_int(r, "vocab_size", -1),
                        get_int(r, "max_position_embeddings", -1));
  s->norm = NORM_RMSNORM, s->mlp = MLP_SWIGLU, s->position = POSITION_ROPE;
  s->ffn_hidden = get_int(r, "intermediate_size", -1);
  const int kv_heads = get_int(r, "num_key_value_heads", s->n_head);
  if (kv_heads != s->n_head)
    REFUSE("num_key_value_heads %d differs from num_attention_heads %d: grouped-query attention is not supported",
           kv_heads, s->n_head);
  if (s->d_model % s->n_head) REFUSE("num_attention_heads %d does not divide hidden_size %d", s->n_head, s->d_model);
  else if (get_int(r, "head_dim", s->d_model / s->n_head) != s->d_model / s->n_head)
    REFUSE("head_dim differs from hidden_size / num_attention_heads = %d", s->d_model / s->n_head);
  const char *act = get_string(r, "hidden_act", "silu");
  if (strcmp(act, "silu") != 0) REFUSE("hidden_act '%s': tessera's SwiGLU uses silu", act);
  const bool attention_bias = get_bool(r, "attention_bias", false), mlp_bias = get_bool(r, "mlp_bias", false);
  if (attention_bias != mlp_bias)
    REFUSE("attention_bias %s with mlp_bias %s: tessera has biases in both or neither", attention_bias ? "true" : "false",
           mlp_bias ? "true" : "false");
  s->no_bias = !attention_bias;
  read_rope(r, s);
  s->norm_eps = get_eps(r, "rms_norm_eps", 1e-6);
  s->untied_head = !get_bool(r, "tie_word_embeddings", false);
}

/* The architecture the file names: 0, or EXIT_USER_ERROR. */
static int read_arch(config_reader *r, hf_arch *arch) {
  json_t *list = json_object_get(r->root, "architectures");
  const char *name = json_is_array(list) && json_is_string(json_array_get(list, 0))
                         ? json_string_value(json_array_get(list, 0))
                         : NULL;
  const char *type = get_string(r, "model_type", "");
  if (name ? strcmp(name, "GPT2LMHeadModel") == 0 || strcmp(name, "GPT2Model") == 0 : strcmp(type, "gpt2") == 0)
    *arch = HF_GPT2;
  else if (name ? strcmp(name, "LlamaForCausalLM") == 0 : strcmp(type, "llama") == 0)
    *arch = HF_LLAMA;
  else {
    snprintf(r->err, r->err_bytes,
             "'%s': unknown architecture '%s' (model_type '%s'): tessera converts GPT2LMHeadModel and "
             "LlamaForCausalLM",
             r->path, name ? name : "none named", type);
    return EXIT_USER_ERROR;
  }
  return 0;
}

int hf_config_read(const char *dir, hf_model_info *info, char *err, size_t err_bytes) {
  char path[JOINED_PATH_BYTES];
  snprintf(path, sizeof path, "%s/config.json", dir);
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (!root || !json_is_object(root)) {
    const bool exists = access(path, F_OK) == 0;
    if (exists) snprintf(err, err_bytes, "'%s' is not a JSON object (%s)", path, root ? "another JSON value" : jerr.text);
    else snprintf(err, err_bytes, "'%s' has no config.json: it is not a Hugging Face model folder", dir);
    json_decref(root);
    return exists ? EXIT_IO_ERROR : EXIT_USER_ERROR;
  }
  config_reader r = {root, path, err, err_bytes, 0};
  memset(info, 0, sizeof *info);
  r.status = read_arch(&r, &info->arch);
  if (!r.status) {
    if (info->arch == HF_GPT2) read_gpt2(&r, info);
    else read_llama(&r, info);
  }
  json_decref(root);
  return r.status;
}

int hf_arch_of_shape(const model_shape *s, hf_arch *arch, char *err, size_t err_bytes) {
  if (model_io_check_gpt2(s, "GPT2LMHeadModel", err, err_bytes) == 0) {
    *arch = HF_GPT2;
    return 0;
  }
  if (s->norm == NORM_RMSNORM && s->mlp == MLP_SWIGLU && s->position == POSITION_ROPE && !model_has_linear(s)) {
    *arch = HF_LLAMA;
    return 0;
  }
  char description[MESSAGE_BYTES];
  model_shape_describe(s, description, sizeof description);
  snprintf(err, err_bytes,
           "no Hugging Face architecture holds this model (%s): GPT2LMHeadModel needs LayerNorm, GELU, learned "
           "positions, biases; LlamaForCausalLM RMSNorm, SwiGLU, RoPE; both softmax attention in every layer",
           description);
  return EXIT_USER_ERROR;
}

static json_t *gpt2_config(const model_shape *s) {
  json_t *c = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i}", "architectures", "GPT2LMHeadModel", "model_type",
                        "gpt2", "vocab_size", s->vocab_size, "n_positions", s->seq_len, "n_embd", s->d_model,
                        "n_layer", s->n_layer, "n_head", s->n_head);
  json_object_set_new(c, "n_inner", model_ffn_hidden(s) == 4 * s->d_model ? json_null() : json_integer(model_ffn_hidden(s)));
  json_object_set_new(c, "activation_function", json_string("gelu_new"));
  json_object_set_new(c, "layer_norm_epsilon", json_real(model_norm_eps(s)));
  json_object_set_new(c, "scale_attn_weights", json_true());
  json_object_set_new(c, "scale_attn_by_inverse_layer_idx", json_false());
  json_object_set_new(c, "reorder_and_upcast_attn", json_false());
  /* tessera trains without dropout */
  const char *dropouts[] = {"resid_pdrop", "embd_pdrop", "attn_pdrop"};
  for (int i = 0; i < 3; i++) json_object_set_new(c, dropouts[i], json_real(0.0));
  return c;
}

static json_t *llama_config(const model_shape *s) {
  json_t *c = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "architectures", "LlamaForCausalLM",
                        "model_type", "llama", "vocab_size", s->vocab_size, "hidden_size", s->d_model,
                        "intermediate_size", model_ffn_hidden(s), "num_hidden_layers", s->n_layer,
                        "num_attention_heads", s->n_head, "num_key_value_heads", s->n_head, "head_dim",
                        model_head_size(s), "max_position_embeddings", s->seq_len);
  json_object_set_new(c, "hidden_act", json_string("silu"));
  json_object_set_new(c, "rms_norm_eps", json_real(model_norm_eps(s)));
  json_object_set_new(c, "rope_theta", json_real(model_rope_theta(s)));
  json_object_set_new(c, "rope_parameters", json_pack("{s:f, s:s}", "rope_theta", model_rope_theta(s), "rope_type", "default"));
  json_object_set_new(c, "attention_bias", json_boolean(!s->no_bias));
  json_object_set_new(c, "mlp_bias", json_boolean(!s->no_bias));
  json_object_set_new(c, "attention_dropout", json_real(0.0));
  return c;
}

int hf_config_write(const char *path, hf_arch arch, const model_shape *s, char *err, size_t err_bytes) {
  json_t *c = arch == HF_GPT2 ? gpt2_config(s) : llama_config(s);
  json_object_set_new(c, "tie_word_embeddings", json_boolean(!s->untied_head));
  json_object_set_new(c, "initializer_range", json_real(0.02));
  json_object_set_new(c, "use_cache", json_true());
  /* transformers 4 reads torch_dtype, 5 dtype */
  json_object_set_new(c, "torch_dtype", json_string("float32"));
  json_object_set_new(c, "dtype", json_string("float32"));
  const int failed = json_dump_file(c, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(c);
  if (!failed) return 0;
  snprintf(err, err_bytes, "cannot write '%s'", path);
  return EXIT_IO_ERROR;
}
