/* state_gather — see state_gather.h. */
#include "state_gather.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"

/* One pair of ranks per message, messages in loop order. */
#define STATE_GATHER_TAG 1

size_t ckpt_largest_tensor(const registry *reg) {
  size_t largest = 0;
  for (int k = 0; k < reg->n_params; k++)
    if (reg->params[k].n_local > largest) largest = reg->params[k].n_local;
  return largest;
}

void ckpt_gather_shards(grid *g, const model *m, const registry *whole, const int *owner, int n_states,
                        float *const *local, float *const *into, float *scratch) {
  if (g->dp_rank != 0 || g->sp_rank != 0) return;
  const int tp = g->shape.tp;
  const bool writer = g->world_rank == 0;
  for (int k = 0; k < whole->n_params; k++) {
    const param_spec *w = &whole->params[k];
    const bool split = w->tp_split_dim >= 0;
    const size_t n_sent = split ? w->n_local * (size_t)tp : w->n_local;
    const param_spec *mine = owner[k] == g->pp_rank ? registry_find(&m->layout.reg, w->name) : NULL;
    for (int st = 0; st < n_states; st++) {
      float *to = writer ? into[st] + (size_t)tp * w->offset : scratch;
      if (mine) {
        const float *from = local[st] + mine->offset;
        if (tp > 1 && split) comm_allgather_f32(&g->tp, from, to, mine->n_local);
        else if (writer) memcpy(to, from, mine->n_local * sizeof *to);
        if (owner[k] != 0 && g->tp_rank == 0)
          comm_send_f32(&g->pp, split && tp > 1 ? to : from, n_sent, 0, STATE_GATHER_TAG);
      } else if (writer) {
        comm_recv_f32(&g->pp, to, n_sent, owner[k], STATE_GATHER_TAG);
      }
    }
  }
}

/* Tensor w's logical values from its tp shards as ckpt_gather_shards left them. */
static void shards_to_logical(const param_spec *w, const float *shards, int tp, float *logical) {
  const int n_shards = w->tp_split_dim >= 0 ? tp : 1;
  for (int r = 0; r < n_shards; r++) {
    const param_spec shard = registry_shard_of_tp_rank(w, r);
    for (size_t i = 0; i < w->n_local; i++)
      if (!registry_is_padding(&shard, i)) logical[registry_logical_index(&shard, i)] = shards[(size_t)r * w->n_local + i];
  }
}

void checkpoint_dump_parameters(const char *path, grid *g, const model *m, const optimizer *opt) {
  const int tp = g->shape.tp;
  float *master = xmalloc(m->layout.reg.n_local_total * sizeof *master, "parameter dump");
  optimizer_gather(opt, OPT_MASTER, master); /* ZeRO ranges, over dp×sp */
  registry whole;
  model_whole_registry(m, &whole);
  int *owner = xmalloc((size_t)whole.n_params * sizeof *owner, "parameter dump");
  model_owner_stages(m, &whole, owner); /* collective over pp */
  const bool writer = g->world_rank == 0, first_replica = g->dp_rank == 0 && g->sp_rank == 0;
  FILE *out = NULL;
  if (writer && !(out = fopen(path, "wb"))) fail_local(EXIT_IO_ERROR, "cannot write parameters to '%s'", path);
  float *shards = writer ? xmalloc(whole.n_local_total * (size_t)tp * sizeof *shards, "parameter dump") : NULL;
  float *scratch = first_replica && !writer && tp > 1
                       ? xmalloc(ckpt_largest_tensor(&whole) * (size_t)tp * sizeof *scratch, "parameter dump")
                       : NULL;
  ckpt_gather_shards(g, m, &whole, owner, 1, &master, &shards, scratch);
  for (int k = 0; out && k < whole.n_params; k++) {
    const param_spec *w = &whole.params[k];
    float *logical = xcalloc((size_t)w->n_logical, sizeof *logical, "parameter dump");
    shards_to_logical(w, shards + (size_t)tp * w->offset, tp, logical);
    if (fwrite(logical, sizeof *logical, (size_t)w->n_logical, out) != (size_t)w->n_logical)
      fail_local(EXIT_IO_ERROR, "writing parameters to '%s' failed", path);
    free(logical);
  }
  if (out && fclose(out) != 0) fail_local(EXIT_IO_ERROR, "writing parameters to '%s' failed", path);
  free(shards);
  free(scratch);
  free(owner);
  registry_free(&whole);
  free(master);
}
