/* architecture — see architecture.h. */
#include "architecture.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const norm_names[] = {"layernorm", "rmsnorm"};
static const char *const mlp_names[] = {"gelu", "swiglu"};
static const char *const position_names[] = {"learned", "rope", "none"};
static const char *const position_words[] = {"learned positions", "rotary positions", "no positions"};

model_shape architecture_from_config(const config *cfg) {
  model_shape s = model_shape_gpt2(cfg->n_layer, cfg->n_head, cfg->d_model, cfg->vocab_size, cfg->seq_len);
  s.ffn_hidden = cfg->ffn_hidden;
  s.norm = (norm_kind)cfg->norm;
  s.mlp = (mlp_kind)cfg->mlp;
  s.position = (position_kind)cfg->position;
  s.no_bias = !cfg->bias;
  const char *pattern = cfg->attention == ATTENTION_LINEAR ? "L" : cfg->attention == ATTENTION_HYBRID ? cfg->layer_pattern : "";
  snprintf(s.layer_pattern, sizeof s.layer_pattern, "%.63s", pattern); /* config_validate: at most 63 */
  s.decay_base = cfg->linear_decay == DECAY_CHOICE_SLOPES ? cfg->decay_base : 0;
  s.rope_theta = cfg->rope_theta;
  s.linear_chunk = cfg->linear_chunk;
  return s;
}

/* the pattern written out per layer: "SSLL..." */
static void expanded_pattern(const model_shape *s, char *out, size_t out_bytes) {
  size_t n = 0;
  for (int l = 0; l < s->n_layer && n + 1 < out_bytes; l++) out[n++] = model_layer_is_linear(s, l) ? 'L' : 'S';
  out[n] = '\0';
}

static bool any_linear(const model_shape *s) {
  for (int l = 0; l < s->n_layer; l++)
    if (model_layer_is_linear(s, l)) return true;
  return false;
}

static double effective_theta(const model_shape *s) { return s->rope_theta > 0 ? s->rope_theta : 10000.0; }

void architecture_write(ckpt_file *f, const model_shape *s) {
  ckpt_attr_write_i64(f, "n_layer", s->n_layer);
  ckpt_attr_write_i64(f, "n_head", s->n_head);
  ckpt_attr_write_i64(f, "d_model", s->d_model);
  ckpt_attr_write_i64(f, "vocab_size", s->vocab_size);
  ckpt_attr_write_i64(f, "seq_len", s->seq_len);
  ckpt_attr_write_i64(f, "ffn_hidden", model_ffn_hidden(s));
  ckpt_attr_write_str(f, "norm", norm_names[s->norm]);
  ckpt_attr_write_str(f, "mlp", mlp_names[s->mlp]);
  ckpt_attr_write_str(f, "position", position_names[s->position]);
  ckpt_attr_write_i64(f, "bias", !s->no_bias);
  char pattern[4096];
  expanded_pattern(s, pattern, sizeof pattern);
  ckpt_attr_write_str(f, "layer_attention", pattern);
  ckpt_attr_write_f64(f, "decay_base", s->decay_base);
  ckpt_attr_write_f64(f, "rope_theta", effective_theta(s));
  ckpt_attr_write_i64(f, "linear_chunk", s->linear_chunk > 0 ? s->linear_chunk : 64);
}

static int index_of(const char *const *names, int n, const char *value) {
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], value) == 0) return i;
  return -1;
}

int architecture_read(ckpt_file *f, model_shape *s, char *err, size_t err_bytes) {
  int64_t v[5];
  const char *sizes[5] = {"n_layer", "n_head", "d_model", "vocab_size", "seq_len"};
  for (int i = 0; i < 5; i++)
    if (ckpt_attr_read_i64(f, sizes[i], &v[i]) != 0 || v[i] < 1 || v[i] > (1 << 24)) {
      snprintf(err, err_bytes, "checkpoint '%s' has no valid %s attribute", f->path, sizes[i]);
      return -1;
    }
  *s = model_shape_gpt2((int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4]);
  if (s->d_model % s->n_head != 0) {
    snprintf(err, err_bytes, "checkpoint '%s': n_head %d does not divide d_model %d", f->path, s->n_head, s->d_model);
    return -1;
  }
  int64_t i64;
  double f64;
  char text[4096];
  if (ckpt_attr_read_str(f, "norm", text, sizeof text) == 0) s->norm = (norm_kind)index_of(norm_names, 2, text);
  if (ckpt_attr_read_str(f, "mlp", text, sizeof text) == 0) s->mlp = (mlp_kind)index_of(mlp_names, 2, text);
  if (ckpt_attr_read_str(f, "position", text, sizeof text) == 0)
    s->position = (position_kind)index_of(position_names, 3, text);
  if ((int)s->norm < 0 || (int)s->mlp < 0 || (int)s->position < 0) {
    snprintf(err, err_bytes, "checkpoint '%s' names a norm, MLP or position kind this tessera does not know", f->path);
    return -1;
  }
  if (ckpt_attr_read_i64(f, "ffn_hidden", &i64) == 0) s->ffn_hidden = (int)i64;
  if (ckpt_attr_read_i64(f, "bias", &i64) == 0) s->no_bias = i64 == 0;
  if (ckpt_attr_read_str(f, "layer_attention", text, sizeof text) == 0) {
    if ((int)strlen(text) != s->n_layer || strspn(text, "SL") != strlen(text)) {
      snprintf(err, err_bytes, "checkpoint '%s': layer_attention '%s' is not one S or L per layer", f->path, text);
      return -1;
    }
    /* the expanded pattern is its own pattern; all S is the default */
    if (strchr(text, 'L')) {
      if (strlen(text) >= sizeof s->layer_pattern) {
        snprintf(err, err_bytes, "checkpoint '%s': %d layers of mixed attention exceed this build's %d", f->path,
                 s->n_layer, MODEL_PATTERN_BYTES - 1);
        return -1;
      }
      snprintf(s->layer_pattern, sizeof s->layer_pattern, "%s", text);
    }
  }
  if (ckpt_attr_read_f64(f, "decay_base", &f64) == 0) s->decay_base = f64;
  if (ckpt_attr_read_f64(f, "rope_theta", &f64) == 0) s->rope_theta = f64;
  if (ckpt_attr_read_i64(f, "linear_chunk", &i64) == 0) s->linear_chunk = (int)i64;
  return 0;
}

#define APPEND(...)                                                                   \
  do {                                                                                \
    size_t used_ = strlen(out);                                                       \
    snprintf(out + used_, out_bytes - used_, "%s", used_ ? "; " : "");                \
    used_ = strlen(out);                                                              \
    snprintf(out + used_, out_bytes - used_, __VA_ARGS__);                            \
  } while (0)

void architecture_differences(const model_shape *a, const model_shape *b, char *out, size_t out_bytes) {
  out[0] = '\0';
  const struct { const char *name; long long saved, now; } ints[] = {
      {"n_layer", a->n_layer, b->n_layer},       {"n_head", a->n_head, b->n_head},
      {"d_model", a->d_model, b->d_model},       {"vocab_size", a->vocab_size, b->vocab_size},
      {"seq_len", a->seq_len, b->seq_len},       {"ffn_hidden", model_ffn_hidden(a), model_ffn_hidden(b)},
      {"bias", !a->no_bias, !b->no_bias}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    if (ints[i].saved != ints[i].now)
      APPEND("%s %lld in the checkpoint, %lld now", ints[i].name, ints[i].saved, ints[i].now);
  if (a->norm != b->norm) APPEND("norm %s in the checkpoint, %s now", norm_names[a->norm], norm_names[b->norm]);
  if (a->mlp != b->mlp) APPEND("mlp %s in the checkpoint, %s now", mlp_names[a->mlp], mlp_names[b->mlp]);
  if (a->position != b->position)
    APPEND("position %s in the checkpoint, %s now", position_names[a->position], position_names[b->position]);
  char pa[4096], pb[4096];
  expanded_pattern(a, pa, sizeof pa);
  expanded_pattern(b, pb, sizeof pb);
  if (strcmp(pa, pb) != 0) APPEND("attention per layer %s in the checkpoint, %s now", pa, pb);
  if ((any_linear(a) || any_linear(b)) && fabs(a->decay_base - b->decay_base) > 1e-12)
    APPEND("decay_base %g in the checkpoint, %g now (0: no decay)", a->decay_base, b->decay_base);
  if ((a->position == POSITION_ROPE || b->position == POSITION_ROPE) &&
      fabs(effective_theta(a) - effective_theta(b)) > 1e-9 * effective_theta(b))
    APPEND("rope_theta %g in the checkpoint, %g now", effective_theta(a), effective_theta(b));
}

void architecture_describe(const model_shape *s, char *out, size_t out_bytes) {
  char pattern[4096];
  expanded_pattern(s, pattern, sizeof pattern);
  const char *attention = strchr(pattern, 'L') ? (strchr(pattern, 'S') ? "hybrid" : "linear") : "softmax";
  snprintf(out, out_bytes, "%s, %s MLP (width %d), %s, %s, %s attention%s%s", norm_names[s->norm],
           s->mlp == MLP_SWIGLU ? "SwiGLU" : "GELU", model_ffn_hidden(s), position_words[s->position],
           s->no_bias ? "no biases" : "biases", attention, strchr(pattern, 'L') ? " " : "",
           strchr(pattern, 'L') ? pattern : "");
}
