/* backend_select — which backend computes a run and which path GPU buffers
 * take between its ranks (`backend` and `comm` in the config), decided the
 * same way on every rank.
 *
 *   backend = auto   cuda when this build has the CUDA backend and every
 *                    rank sees a GPU; else cpu (a job never mixes them)
 *           = cuda   a user error on any rank without one
 *   comm    = auto   nccl on cuda when the build has NCCL and every rank of
 *                    each node has a GPU of its own (their PCI bus ids
 *                    differ: ranks per node <= GPUs per node); else mpi
 *           = nccl   a user error on the CPU backend, in a build without
 *                    NCCL, or where ranks share a GPU (NCCL refuses that)
 *           = mpi    GPU buffers staged through host memory
 *                    (parallel/comm/device_comm.h); CPU buffers go to MPI as
 *                    they are, whatever `comm` says
 * With nccl, the grid gets its NCCL communicators here
 * (grid_enable_nccl). Every rank agrees through world all-reduces, so an
 * error is reported once and never leaves a rank behind. Each rank's GPU is
 * the one of its node-local rank (kernels/cuda/backend_cuda.cu).
 */
#ifndef TESSERA_BACKEND_SELECT_H
#define TESSERA_BACKEND_SELECT_H

#include <stdbool.h>

#include "backend.h"
#include "config.h"
#include "grid.h"

typedef struct backend_selection {
  const backend *be;
  bool nccl;              /* GPU collectives through NCCL; else MPI */
  char device[160];       /* what computes, for the report (rank 0's) */
  char comm_path[160];    /* how buffers travel, for the report */
} backend_selection;

/* Collective over the world; errors go through fail_collective. */
void backend_select(const config *cfg, grid *g, backend_selection *out);

#endif
