/* activations — every activation buffer of the stage, carved from two
 * arenas (act_t and f32_t), so the memory report counts them exactly:
 *   - the slots (model.h): per micro-batch in flight, the chunk's input,
 *     its output's gradient, and each block's saved activations as the
 *     recompute mode keeps them;
 *   - the scratch: what the slots do not keep, once, recomputed into
 *     before a backward;
 *   - the workspace: one block's backward buffers and the head's buffers.
 * The layout is computed twice by the same code: once to count, once to
 * assign pointers into the arenas allocated from that count.
 */
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "memory_tally.h"
#include "model_internal.h"

/* Hands out consecutive pieces of one arena, counting what it handed out. */
typedef struct carver {
  const backend *be;
  size_t act_elems, f32_elems;
  act_t *act_base;
  f32_t *f32_base;
} carver;

static act_t *carve_act(carver *c, size_t n) {
  act_t *p = c->act_base ? act_at(c->be, c->act_base, c->act_elems) : NULL;
  c->act_elems += n;
  return p;
}
static f32_t *carve_f32(carver *c, size_t n) {
  f32_t *p = c->f32_base ? f32_at(c->f32_base, c->f32_elems) : NULL;
  c->f32_elems += n;
  return p;
}
static size_t carved_bytes(const carver *c) {
  return c->act_elems * c->be->act_elem_bytes + c->f32_elems * sizeof(float);
}

/* One block's activations: the fields `keep` says a slot keeps are carved,
 * the others taken from the shared scratch set. */
typedef enum keep_kind { KEEP_ALL, KEEP_BUT_CORE, KEEP_OUTPUT, KEEP_SCRATCH_OF } keep_kind;

static void carve_block_acts(model *m, carver *c, block_acts *a, const block_acts *scratch, keep_kind keep) {
  const model_parallel *par = &m->par;
  const int T_local = m->acts.max_T / par->sp_size;
  const size_t BT = (size_t)m->acts.max_B * T_local, C = (size_t)m->shape.d_model, Cl = (size_t)par->C_local;
  const size_t BTl = par->seq_shard ? BT / (size_t)par->tp_size : BT;
  /* which fields this set carves: KEEP_SCRATCH_OF carves what the slots do
   * not keep under the model's recompute mode */
  bool core, rest, output;
  switch (keep) {
    case KEEP_ALL: core = rest = output = true; break;
    case KEEP_BUT_CORE: core = false, rest = output = true; break;
    case KEEP_OUTPUT: core = rest = false, output = true; break;
    default:
      core = m->recompute != RECOMPUTE_NONE;
      rest = m->recompute == RECOMPUTE_FULL;
      output = false;
  }
  if (scratch) *a = *scratch;
  if (rest) {
    a->ln1 = carve_act(c, BT * C);
    a->qkv = carve_act(c, BT * 3 * Cl);
    a->res2 = carve_act(c, BTl * C);
    a->ln2 = carve_act(c, BT * C);
    a->fch = carve_act(c, BT * (size_t)par->mlp_in_local);
    a->fch_gelu = carve_act(c, BT * (size_t)par->ffn_local);
    a->ln1_mean = carve_f32(c, BTl);
    a->ln1_rstd = carve_f32(c, BTl);
    a->ln2_mean = carve_f32(c, BTl);
    a->ln2_rstd = carve_f32(c, BTl);
    /* the states entering linear attention's pieces (sequence parallelism) */
    if (m->layout.any_linear && par->sp) a->att_state = carve_f32(c, model_linear_state_elems(m, m->acts.max_B));
  }
  if (core) {
    a->atty = carve_act(c, BT * Cl);
    if (m->layout.any_softmax) a->att_saved = carve_f32(c, model_softmax_saved_elems(m, m->acts.max_B, T_local));
    if (m->layout.any_linear) {
      a->att_raw = carve_act(c, BT * Cl);
      a->att_rstd = carve_f32(c, BT * (size_t)par->NH_local);
    }
  }
  if (output) a->res3 = carve_act(c, BTl * C);
}

/* The head's buffers and the backward's, shared by every block. */
static void carve_workspace(model *m, carver *c) {
  const model_parallel *par = &m->par;
  model_workspace *ws = &m->ws;
  const size_t BT = (size_t)m->acts.max_B * (size_t)(m->acts.max_T / par->sp_size), C = (size_t)m->shape.d_model;
  const size_t Cl = (size_t)par->C_local, V = (size_t)par->V_local;
  /* rows of the residual stream and norm statistics held here */
  const size_t BTl = par->seq_shard ? BT / (size_t)par->tp_size : BT;
  if (m->layout.stage.has_head) {
    ws->lnf = carve_act(c, BT * C);
    ws->logits = carve_act(c, (size_t)ws->head_rows * V);
    ws->lnf_mean = carve_f32(c, BTl);
    ws->lnf_rstd = carve_f32(c, BTl);
    ws->losses = carve_f32(c, (size_t)ws->head_rows);
    ws->ce_max = carve_f32(c, (size_t)ws->head_rows);
    ws->ce_stats = carve_f32(c, 2 * (size_t)ws->head_rows);
  }
  ws->d_resid = carve_act(c, BTl * C);
  ws->d_btc = carve_act(c, BT * C); /* also the forward's partial sums */
  ws->d_atty = carve_act(c, BT * Cl);
  ws->d_qkv = carve_act(c, BT * 3 * Cl);
  ws->d_bt4c = carve_act(c, BT * (size_t)par->mlp_in_local);
  ws->d_ffn_act = m->shape.mlp == MLP_SWIGLU ? carve_act(c, BT * (size_t)par->ffn_local) : NULL;
  ws->d_att_raw = m->layout.any_linear ? carve_act(c, BT * Cl) : NULL;
  if (par->seq_shard) {
    ws->d_full = carve_act(c, BT * C);
    ws->d_ln = carve_act(c, BTl * C); /* also the forward's local norm output */
    ws->ln_grad_scratch = carve_act(c, 2 * C);
  } else { /* without sharding, local rows are all rows: the buffers coincide */
    ws->d_full = ws->d_resid;
    ws->d_ln = ws->d_btc;
    ws->ln_grad_scratch = NULL;
  }
}

/* Lays out every activation; run once to count, once to assign. */
static void carve_activations(model *m, carver *c) {
  const size_t BT = (size_t)m->acts.max_B * (size_t)(m->acts.max_T / m->par.sp_size);
  const size_t BTl = m->par.seq_shard ? BT / (size_t)m->par.tp_size : BT, C = (size_t)m->shape.d_model;
  /* shared: what recomputation does not keep, the head, the backward's scratch */
  carve_block_acts(m, c, m->acts.scratch, NULL, KEEP_SCRATCH_OF);
  carve_workspace(m, c);
  const keep_kind keep = m->recompute == RECOMPUTE_NONE        ? KEEP_ALL
                         : m->recompute == RECOMPUTE_SELECTIVE ? KEEP_BUT_CORE
                                                               : KEEP_OUTPUT;
  for (int s = 0; s < m->acts.n_slots; s++) {
    const size_t before = carved_bytes(c);
    model_slot *slot = &m->acts.slots[s];
    slot->input = carve_act(c, BTl * C);
    slot->d_output = carve_act(c, BTl * C);
    for (int i = 0; i < m->layout.max_chunk_layers; i++) carve_block_acts(m, c, &slot->acts[i], m->acts.scratch, keep);
    m->acts.slot_activation_bytes = carved_bytes(c) - before;
  }
}

void activations_create(model *m, buffer_sizer *sizer, int n_slots, int head_chunk_rows) {
  const backend *be = m->be;
  model_activations *acts = &m->acts;
  const int max_B = acts->max_B, max_T = acts->max_T;
  if (m->layout.stage.has_head)
    m->ws.head_rows = model_head_chunk_rows(max_B * (max_T / m->par.sp_size), head_chunk_rows);
  acts->n_slots = n_slots > 0 ? n_slots : 1;
  acts->slots = xcalloc((size_t)acts->n_slots, sizeof *acts->slots, "activation slots");
  for (int s = 0; s < acts->n_slots; s++) {
    acts->slots[s].acts = xcalloc((size_t)m->layout.max_chunk_layers, sizeof(block_acts), "activation pointers");
    acts->slots[s].tokens = sizer_ids(sizer, (size_t)max_B * max_T, MEMORY_OTHER, "input tokens");
  }
  acts->scratch = xcalloc(1, sizeof *acts->scratch, "activation pointers");
  carver count = {.be = be};
  carve_activations(m, &count);
  carver assign = {.be = be};
  assign.act_base = sizer_act(sizer, count.act_elems, MEMORY_ACTIVATIONS, "activations");
  assign.f32_base = sizer_f32(sizer, count.f32_elems, MEMORY_ACTIVATIONS, "activation statistics");
  acts->arena[0] = assign.act_base;
  acts->arena[1] = assign.f32_base;
  if (!m->counting) carve_activations(m, &assign);
  acts->activation_bytes = carved_bytes(&count);

  model_workspace *ws = &m->ws;
  ws->targets = sizer_ids(sizer, (size_t)max_B * max_T, MEMORY_OTHER, "target tokens");
  ws->positions = sizer_ids(sizer, (size_t)max_B * max_T, MEMORY_OTHER, "position ids");
  if (!m->counting) ws->host_losses = xmalloc((size_t)max_B * max_T * sizeof(float), "losses");
}

void activations_free(model *m) {
  const backend *be = m->be;
  model_activations *acts = &m->acts;
  if (acts->arena[0]) be->free_buffer(acts->arena[0]);
  if (acts->arena[1]) be->free_buffer(acts->arena[1]);
  for (int s = 0; s < acts->n_slots; s++) {
    if (acts->slots[s].tokens) be->free_buffer(acts->slots[s].tokens);
    free(acts->slots[s].acts);
  }
  free(acts->slots);
  free(acts->scratch);
  if (m->ws.targets) be->free_buffer(m->ws.targets);
  if (m->ws.positions) be->free_buffer(m->ws.positions);
  free(m->ws.host_losses);
  memset(acts, 0, sizeof *acts);
  memset(&m->ws, 0, sizeof m->ws);
}
