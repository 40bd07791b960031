/* zero — see zero.h. */
#include "zero.h"

#include <string.h>

#include "fail.h"
#include "memory_tally.h"

/* The tied embedding's gradient travels between the pipeline's ends with
 * this tag; pipeline activations use tags below 2·(number of chunks). */
#define TIED_GRAD_TAG 32000

size_t flat_layout_embeddings_end(const flat_layout *l) { return l->blocks_start; }
size_t flat_layout_final_norm_start(const flat_layout *l) {
  return l->blocks_start + (size_t)l->n_blocks * l->block_elems;
}
size_t flat_layout_block_start(const flat_layout *l, int block) {
  return l->blocks_start + (size_t)block * l->block_elems;
}

void zero_create(zero *z, const zero_setup *s) {
  memset(z, 0, sizeof *z);
  ENSURE(s->stage >= 0 && s->stage <= 3, "ZeRO stage %d", s->stage);
  z->stage = s->stage;
  z->group = s->group;
  z->shard_group = s->stage >= 1 && s->group->size > 1 ? s->group : NULL;
  z->pp = s->pp && s->pp->size > 1 ? s->pp : NULL;
  z->be = s->be;
  z->layout = s->layout;
  z->grads = s->grads;
  z->params = s->params;
  for (int w = 0; w < 2; w++) z->grad_windows[w] = s->grad_windows[w], z->param_windows[w] = s->param_windows[w];
  const backend *be = s->be;
  buffer_sizer allocating = buffer_sizer_allocating(be);
  buffer_sizer *sizer = s->sizer ? s->sizer : &allocating;
  const bool counting = !sizer->allocate;
  zero_partition_make(&z->part, s->layout.n_elems, z->shard_group ? z->shard_group->size : 1,
                      z->shard_group ? z->shard_group->rank : 0);
  if (z->stage >= 2) {
    z->shard_grads = sizer_act(sizer, z->part.n_own, MEMORY_GRADS, "gradient shard");
    if (!counting) be->zero_act(z->shard_grads, z->part.n_own);
    /* the largest range one reduce-scatter covers: a block, the embeddings,
     * or what follows the blocks (the final norm, an untied head) */
    size_t largest = flat_layout_embeddings_end(&z->layout);
    const size_t tail = z->layout.n_elems - flat_layout_final_norm_start(&z->layout);
    if (z->layout.block_elems > largest) largest = z->layout.block_elems;
    if (tail > largest) largest = tail;
    shard_sync_create(&z->scatter, z->group, sizer, &z->part, z->shard_grads, largest);
  } else {
    grad_sync_create(&z->buckets, z->group, be, z->grads, z->layout.n_elems, s->bucket_elems);
  }
  if (z->stage >= 3) {
    z->compute_shard = sizer_act(sizer, z->part.n_own, MEMORY_WEIGHTS, "weight shard");
    if (!counting) be->act_from_host(z->compute_shard, s->host_init + z->part.start, z->part.n_own);
    param_gather_create(&z->gather, z->group, be, &z->part, z->compute_shard);
  }
  /* kept, not allocated per step: on a GPU a free synchronises the device */
  if (z->pp && z->layout.tied_peer >= 0)
    z->tied_peer_grad = sizer_act(sizer, z->layout.tied_elems, MEMORY_OTHER, "tied embedding gradient");
}

void zero_free(zero *z) {
  const backend *be = z->be;
  if (z->stage >= 2) shard_sync_free(&z->scatter);
  else grad_sync_free(&z->buckets);
  if (z->stage >= 3) param_gather_free(&z->gather);
  if (z->shard_grads) be->free_buffer(z->shard_grads);
  if (z->compute_shard) be->free_buffer(z->compute_shard);
  if (z->tied_peer_grad) be->free_buffer(z->tied_peer_grad);
  zero_partition_free(&z->part);
  memset(z, 0, sizeof *z);
}

const act_t *zero_range_grads(const zero *z) {
  return z->shard_grads ? z->shard_grads : act_at(z->be, z->grads, z->part.start);
}
act_t *zero_range_params(const zero *z) {
  return z->compute_shard ? z->compute_shard : act_at(z->be, z->params, z->part.start);
}
bool zero_sharded_grads(const zero *z) { return z->shard_grads != NULL; }

/* ---------------------------------------------------------------- a step */

void zero_begin_step(zero *z) {
  if (z->shard_grads) z->be->zero_act(z->shard_grads, z->part.n_own);
}

void zero_need_block(zero *z, int block, int next) {
  if (z->stage < 3) return;
  const flat_layout *l = &z->layout;
  param_gather_need(&z->gather, block % 2, block, z->param_windows[block % 2], flat_layout_block_start(l, block),
                    l->block_elems);
  if (next >= 0)
    param_gather_prefetch(&z->gather, next % 2, next, z->param_windows[next % 2], flat_layout_block_start(l, next),
                          l->block_elems);
}

void zero_window_reuse(zero *z, int window) {
  if (z->stage >= 2) shard_sync_finish(&z->scatter, window);
}

void zero_block_backward_done(zero *z, int block, bool final) {
  const size_t start = flat_layout_block_start(&z->layout, block);
  if (z->stage >= 2) shard_sync_start(&z->scatter, block % 2, z->grad_windows[block % 2], start, z->layout.block_elems);
  else if (final) grad_sync_ready_from(&z->buckets, start);
}

/* The tied embedding: the first and last stage add their gradients. */
static void sum_tied_gradients(zero *z) {
  if (!z->tied_peer_grad) return;
  ENSURE(z->stage < 2, "a tied embedding across stages needs flat gradients");
  const backend *be = z->be;
  const flat_layout *l = &z->layout;
  act_t *grad = act_at(be, z->grads, l->tied_offset);
  dcomm_request exchange;
  dcomm_exchange_act_start(z->pp, be, grad, l->tied_peer, z->tied_peer_grad, l->tied_peer, l->tied_elems,
                           TIED_GRAD_TAG, &exchange);
  dcomm_wait(&exchange);
  /* a + b on one end, b + a on the other: the same float (fp32 addition
   * commutes; on bf16 both ends round the same fp32 sum), so the copies stay equal */
  be->accumulate(grad, z->tied_peer_grad, l->tied_elems);
}

void zero_finish_gradients(zero *z) {
  sum_tied_gradients(z);
  if (z->stage < 2) {
    grad_sync_ready_from(&z->buckets, 0); /* the embeddings' buckets, held back for the tied sum */
    grad_sync_finish(&z->buckets);
    return;
  }
  /* the windows in flight, then the embeddings' and final norm's gradients,
   * accumulated locally over the micro-batches (back to back in z->grads) */
  shard_sync_finish(&z->scatter, 0);
  shard_sync_finish(&z->scatter, 1);
  const size_t embeddings_end = flat_layout_embeddings_end(&z->layout);
  const size_t final_norm_start = flat_layout_final_norm_start(&z->layout);
  shard_sync_range(&z->scatter, z->grads, 0, embeddings_end);
  shard_sync_range(&z->scatter, act_at(z->be, z->grads, embeddings_end), final_norm_start,
                   z->layout.n_elems - final_norm_start);
}

void zero_refetch_outer_params(zero *z) {
  if (z->stage < 3) return;
  const size_t embeddings_end = flat_layout_embeddings_end(&z->layout);
  const size_t final_norm_start = flat_layout_final_norm_start(&z->layout);
  param_gather_invalidate(&z->gather); /* the windows' blocks are stale */
  param_gather_range(&z->gather, z->params, 0, embeddings_end);
  param_gather_range(&z->gather, act_at(z->be, z->params, embeddings_end), final_norm_start,
                     z->layout.n_elems - final_norm_start);
}

void zero_share_params(zero *z) {
  if (z->stage >= 3) zero_refetch_outer_params(z);
  else if (z->shard_group)
    dcomm_allgatherv_inplace_act(z->shard_group, z->be, z->params, z->part.counts, z->part.displs);
}
