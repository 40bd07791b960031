/* ckpt_attributes — see ckpt_attributes.h. */
#include "ckpt_attributes.h"

#include <stdio.h>
#include <string.h>

#include "ckpt_names.h"

/* The attribute strings: one letter per layer, a kind's name. */
#define ATTRIBUTE_TEXT_BYTES 4096

void ckpt_write_model_shape(ckpt_file *f, const model_shape *s) {
  ckpt_attr_write_i64(f, "n_layer", s->n_layer);
  ckpt_attr_write_i64(f, "n_head", s->n_head);
  ckpt_attr_write_i64(f, "d_model", s->d_model);
  ckpt_attr_write_i64(f, "vocab_size", s->vocab_size);
  ckpt_attr_write_i64(f, "seq_len", s->seq_len);
  ckpt_attr_write_i64(f, "ffn_hidden", model_ffn_hidden(s));
  ckpt_attr_write_str(f, "norm", model_norm_name(s->norm));
  ckpt_attr_write_str(f, "mlp", model_mlp_name(s->mlp));
  ckpt_attr_write_str(f, "position", model_position_name(s->position));
  ckpt_attr_write_i64(f, "bias", !s->no_bias);
  char pattern[ATTRIBUTE_TEXT_BYTES];
  model_expanded_pattern(s, pattern, sizeof pattern);
  ckpt_attr_write_str(f, "layer_attention", pattern);
  ckpt_attr_write_f64(f, "decay_base", s->decay_base);
  ckpt_attr_write_f64(f, "rope_theta", model_rope_theta(s));
  ckpt_attr_write_i64(f, "linear_chunk", model_linear_chunk(s));
  ckpt_attr_write_i64(f, "tie_embeddings", !s->untied_head);
  ckpt_attr_write_f64(f, "norm_eps", model_norm_eps(s));
}

/* The per-layer attention kinds, "SSLL...": the expanded pattern is its
 * own pattern; all S is the default. */
static int read_layer_pattern(ckpt_file *f, model_shape *s, char *err, size_t err_bytes) {
  char text[ATTRIBUTE_TEXT_BYTES];
  if (ckpt_attr_read_str(f, "layer_attention", text, sizeof text) != 0) return 0;
  if ((int)strlen(text) != s->n_layer || strspn(text, "SL") != strlen(text)) {
    snprintf(err, err_bytes, "checkpoint '%s': layer_attention '%s' is not one S or L per layer", f->path, text);
    return -1;
  }
  if (!strchr(text, 'L')) return 0;
  if (strlen(text) >= sizeof s->layer_pattern) {
    snprintf(err, err_bytes, "checkpoint '%s': %d layers of mixed attention exceed this build's %d", f->path,
             s->n_layer, MODEL_PATTERN_BYTES - 1);
    return -1;
  }
  snprintf(s->layer_pattern, sizeof s->layer_pattern, "%s", text);
  return 0;
}

int ckpt_read_model_shape(ckpt_file *f, model_shape *s, char *err, size_t err_bytes) {
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
  char text[ATTRIBUTE_TEXT_BYTES];
  if (ckpt_attr_read_str(f, "norm", text, sizeof text) == 0) s->norm = (norm_kind)model_norm_from_name(text);
  if (ckpt_attr_read_str(f, "mlp", text, sizeof text) == 0) s->mlp = (mlp_kind)model_mlp_from_name(text);
  if (ckpt_attr_read_str(f, "position", text, sizeof text) == 0)
    s->position = (position_kind)model_position_from_name(text);
  if ((int)s->norm < 0 || (int)s->mlp < 0 || (int)s->position < 0) {
    snprintf(err, err_bytes, "checkpoint '%s' names a norm, MLP or position kind this tessera does not know", f->path);
    return -1;
  }
  if (ckpt_attr_read_i64(f, "ffn_hidden", &i64) == 0) s->ffn_hidden = (int)i64;
  if (ckpt_attr_read_i64(f, "bias", &i64) == 0) s->no_bias = i64 == 0;
  if (read_layer_pattern(f, s, err, err_bytes) != 0) return -1;
  if (ckpt_attr_read_f64(f, "decay_base", &f64) == 0) s->decay_base = f64;
  if (ckpt_attr_read_f64(f, "rope_theta", &f64) == 0) s->rope_theta = f64;
  if (ckpt_attr_read_i64(f, "linear_chunk", &i64) == 0) s->linear_chunk = (int)i64;
  /* files written before these two existed: GPT-2's tie and ε 1e-5 (the
   * zeroed shape's meaning) */
  if (ckpt_attr_read_i64(f, "tie_embeddings", &i64) == 0) s->untied_head = i64 == 0;
  if (ckpt_attr_read_f64(f, "norm_eps", &f64) == 0) {
    if (!(f64 > 0 && f64 <= 1)) {
      snprintf(err, err_bytes, "checkpoint '%s': norm_eps %g is not in (0, 1]", f->path, f64);
      return -1;
    }
    s->norm_eps = f64;
  }
  return 0;
}

void ckpt_write_run_attributes(ckpt_file *f, const ckpt_run_info *info, const grid *g, int64_t step,
                               int64_t optimizer_step) {
  ckpt_attr_write_str(f, "format", CKPT_FORMAT_NAME);
  ckpt_attr_write_i64(f, "format_version", CKPT_FORMAT_VERSION);
  ckpt_attr_write_str(f, "tessera_version", info->version);
  ckpt_attr_write_i64(f, "step", step);
  ckpt_attr_write_i64(f, "tokens", step * (int64_t)info->batch_size * info->shape.seq_len);
  ckpt_attr_write_i64(f, "data_position", step * (int64_t)info->batch_size);
  ckpt_attr_write_i64(f, "seed", info->seed);
  ckpt_write_model_shape(f, &info->shape);
  ckpt_attr_write_i64(f, "optimizer_step", optimizer_step);
  ckpt_attr_write_f64(f, "beta1", info->adam.beta1);
  ckpt_attr_write_f64(f, "beta2", info->adam.beta2);
  ckpt_attr_write_f64(f, "adam_eps", info->adam.eps);
  ckpt_attr_write_f64(f, "weight_decay", info->adam.weight_decay);
  ckpt_attr_write_f64(f, "grad_clip", info->adam.grad_clip);
  ckpt_attr_write_f64(f, "lr", info->schedule.peak_lr);
  ckpt_attr_write_f64(f, "min_lr", info->schedule.min_lr);
  ckpt_attr_write_i64(f, "warmup_steps", info->schedule.warmup_steps);
  ckpt_attr_write_i64(f, "total_steps", info->schedule.total_steps);
  ckpt_attr_write_i64(f, "batch_size", info->batch_size);
  ckpt_attr_write_i64(f, "saved_world", g->world_size);
  ckpt_attr_write_i64(f, "saved_tp", g->shape.tp);
  ckpt_attr_write_i64(f, "saved_dp", g->shape.dp);
  ckpt_attr_write_i64(f, "saved_pp", g->shape.pp);
  ckpt_attr_write_i64(f, "saved_sp", g->shape.sp);
  ckpt_attr_write_i64(f, "saved_zero", info->zero);
}

void ckpt_write_weights_only_attributes(ckpt_file *f, const model_shape *shape, const char *version) {
  ckpt_attr_write_str(f, "format", CKPT_FORMAT_NAME);
  ckpt_attr_write_i64(f, "format_version", CKPT_FORMAT_VERSION);
  ckpt_attr_write_str(f, "tessera_version", version);
  ckpt_attr_write_i64(f, "weights_only", 1);
  ckpt_attr_write_i64(f, "step", 0);
  ckpt_attr_write_i64(f, "tokens", 0);
  ckpt_attr_write_i64(f, "data_position", 0);
  ckpt_attr_write_i64(f, "optimizer_step", 0);
  ckpt_write_model_shape(f, shape);
}

bool ckpt_is_weights_only(ckpt_file *f) {
  int64_t v = 0;
  return ckpt_attr_read_i64(f, "weights_only", &v) == 0 && v == 1;
}
