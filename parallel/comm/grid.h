/* grid — this rank's place in the 4-D layout, and the one owner of its groups.
 *
 * World ranks are laid out with tensor parallelism innermost (neighbouring
 * ranks, usually one node's GPUs), then sequence, data, and pipeline
 * parallelism outermost:
 *     rank = ((pp_rank · dp + dp_rank) · sp + sp_rank) · tp + tp_rank
 * Every communicator tessera uses is created here, once (Megatron-core's
 * parallel_state habit): tp, sp, dp, pp, and dp×sp (the ranks that hold the
 * same weights and see different tokens: gradients of replicated parameters
 * and ZeRO partitions live there). Code that communicates is handed the
 * group it needs, so a signature shows which ranks it talks to. With
 * `--comm nccl` the grid also owns each group's NCCL communicator.
 */
#ifndef TESSERA_GRID_H
#define TESSERA_GRID_H

#include "comm.h"

typedef struct grid_shape {
  int tp, pp, sp, dp;
} grid_shape;

typedef struct grid {
  grid_shape shape;
  int world_rank, world_size;
  int tp_rank, sp_rank, dp_rank, pp_rank;
  comm world, tp, sp, dp, pp, dp_sp;
} grid;

/* dp = world / (tp·pp·sp). Returns 0, or EXIT_USER_ERROR with a message
 * naming the flags and the nearest valid choices when the world size does not
 * factor. Pure: no MPI, so every rank reaches the same verdict. */
int grid_check_shape(int world_size, int tp, int pp, int sp, grid_shape *shape, char *err,
                     size_t err_bytes);

#define GRID_N_GROUPS 6

/* Every group of the grid, for reports: world, tp, sp, dp, pp, dp_sp. */
void grid_groups(grid *g, comm *groups[GRID_N_GROUPS]);

/* Sets the hang watchdog and the slow-phase bound of every group (see comm.h). */
void grid_set_watchdog(grid *g, double seconds, double phase_seconds);

/* Builds every communicator (collective over MPI_COMM_WORLD). */
void grid_create(grid *g, grid_shape shape);
/* Frees every communicator, NCCL's included. */
void grid_free(grid *g);

/* `--comm nccl`: an NCCL communicator for each group whose device buffers
 * move in collectives or in messages that pair in call order — tp, sp and
 * dp×sp, where larger than one rank (collective over the world: every rank
 * calls it, in the same order). compute_stream is the backend's stream.
 * The pp group keeps MPI (staged through the host): the pipeline pre-posts
 * its receives and matches them by tag, and a stage's sends and receives
 * interleave in an order NCCL (which pairs by order, and whose send blocks
 * its stream until the peer receives) would deadlock on without pairing
 * each send with the next receive (Megatron's send_forward_recv_backward). */
void grid_enable_nccl(grid *g, void *compute_stream);

/* Coordinates of a world rank, and back. */
void grid_coordinates(const grid_shape *shape, int world_rank, int *tp_rank, int *sp_rank,
                      int *dp_rank, int *pp_rank);
int grid_world_rank(const grid_shape *shape, int tp_rank, int sp_rank, int dp_rank, int pp_rank);

#endif
