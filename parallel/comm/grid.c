/* grid — see grid.h. */
#include "grid.h"

#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "mpi_check.h"
#include "nccl_comm.h"

void grid_coordinates(const grid_shape *s, int world_rank, int *tp_rank, int *sp_rank,
                      int *dp_rank, int *pp_rank) {
  *tp_rank = world_rank % s->tp;
  *sp_rank = world_rank / s->tp % s->sp;
  *dp_rank = world_rank / (s->tp * s->sp) % s->dp;
  *pp_rank = world_rank / (s->tp * s->sp * s->dp);
}

int grid_world_rank(const grid_shape *s, int tp_rank, int sp_rank, int dp_rank, int pp_rank) {
  return ((pp_rank * s->dp + dp_rank) * s->sp + sp_rank) * s->tp + tp_rank;
}

int grid_check_shape(int world_size, int tp, int pp, int sp, grid_shape *shape, char *err,
                     size_t err_bytes) {
  const int model_ranks = tp * pp * sp;
  if (world_size % model_ranks != 0) {
    /* nearest world sizes that this tp·pp·sp fits */
    int below = world_size / model_ranks * model_ranks, above = below + model_ranks;
    snprintf(err, err_bytes,
             "%d ranks cannot be split as --tp %d x --pp %d x --sp %d (= %d) times a data-parallel "
             "size: run on a multiple of %d ranks (e.g. %d or %d), or change --tp/--pp/--sp",
             world_size, tp, pp, sp, model_ranks, model_ranks, below > 0 ? below : above, above);
    return EXIT_USER_ERROR;
  }
  *shape = (grid_shape){.tp = tp, .pp = pp, .sp = sp, .dp = world_size / model_ranks};
  return 0;
}

void grid_create(grid *g, grid_shape shape) {
  memset(g, 0, sizeof *g);
  g->shape = shape;
  comm_create(&g->world, MPI_COMM_WORLD, "world");
  g->world_rank = g->world.rank;
  g->world_size = g->world.size;
  ENSURE(shape.tp * shape.pp * shape.sp * shape.dp == g->world_size, "grid %dx%dx%dx%d != world %d",
         shape.tp, shape.pp, shape.sp, shape.dp, g->world_size);
  grid_coordinates(&shape, g->world_rank, &g->tp_rank, &g->sp_rank, &g->dp_rank, &g->pp_rank);
  const int tp = g->tp_rank, sp = g->sp_rank, dp = g->dp_rank, pp = g->pp_rank;
  const grid_shape *s = &shape;
  /* color = the coordinates the group shares; key = the coordinate it spans */
  comm_split(&g->tp, &g->world, (pp * s->dp + dp) * s->sp + sp, tp, "tp");
  comm_split(&g->sp, &g->world, (pp * s->dp + dp) * s->tp + tp, sp, "sp");
  comm_split(&g->dp, &g->world, (pp * s->sp + sp) * s->tp + tp, dp, "dp");
  comm_split(&g->pp, &g->world, (dp * s->sp + sp) * s->tp + tp, pp, "pp");
  comm_split(&g->dp_sp, &g->world, pp * s->tp + tp, dp * s->sp + sp, "dp_sp");
}

void grid_groups(grid *g, comm *groups[GRID_N_GROUPS]) {
  comm *all[GRID_N_GROUPS] = {&g->world, &g->tp, &g->sp, &g->dp, &g->pp, &g->dp_sp};
  for (int i = 0; i < GRID_N_GROUPS; i++) groups[i] = all[i];
}

void grid_set_watchdog(grid *g, double seconds, double phase_seconds) {
  comm *groups[GRID_N_GROUPS];
  grid_groups(g, groups);
  for (int i = 0; i < GRID_N_GROUPS; i++) comm_set_watchdog(groups[i], seconds, phase_seconds);
}

void grid_enable_nccl(grid *g, void *compute_stream) {
  if (comm_test_delay_us() > 0)
    fail_collective(EXIT_USER_ERROR, "TESSERA_TEST_COMM_DELAY_US delays MPI's calls only: use --comm mpi with it");
  comm *groups[] = {&g->tp, &g->sp, &g->dp_sp};
  for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
    if (groups[i]->size > 1) nccl_group_create(groups[i], compute_stream);
}

void grid_free(grid *g) {
  comm *groups[GRID_N_GROUPS];
  grid_groups(g, groups);
  for (int i = 0; i < GRID_N_GROUPS; i++) nccl_group_free(groups[i]);
  comm_free(&g->dp_sp);
  comm_free(&g->pp);
  comm_free(&g->dp);
  comm_free(&g->sp);
  comm_free(&g->tp);
  comm_free(&g->world);
}
