/* backend_select — see backend_select.h. */
#include "backend_select.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "nccl_comm.h"
#include "runtime.h"

/* How many ranks of the world say yes (an all-reduce over the world). */
static int64_t count_yes(grid *g, bool yes) {
  double n = yes ? 1 : 0; /* exact: counts far below 2^53 */
  comm_allreduce_sum_f64(&g->world, &n, 1);
  return (int64_t)n;
}

static const backend *choose_backend(const config *cfg, grid *g) {
  if (cfg->backend == BACKEND_CHOICE_CPU) return backend_cpu();
  const backend *cuda = backend_cuda();
  const int64_t with_gpu = count_yes(g, cuda != NULL), world = g->world_size;
  if (cfg->backend == BACKEND_CHOICE_AUTO) return with_gpu == world ? cuda : backend_cpu();
  if (!backend_cuda_built())
    fail_collective(EXIT_USER_ERROR,
                    "--backend cuda: this build has no CUDA backend (configure found no nvcc, cuBLAS and NCCL); "
                    "use --backend cpu, or rebuild with the CUDA toolkit");
  if (with_gpu < world)
    fail_collective(EXIT_USER_ERROR,
                    "--backend cuda: %lld of %lld ranks see no GPU (CUDA_VISIBLE_DEVICES, driver); run where every "
                    "rank has a GPU, or use --backend cpu",
                    (long long)(world - with_gpu), (long long)world);
  return cuda;
}

void backend_select(const config *cfg, grid *g, backend_selection *out) {
  memset(out, 0, sizeof *out);
  const backend *be = choose_backend(cfg, g);
  out->be = be;
  be->device_describe(out->device, sizeof out->device);
  if (be->kind == BACKEND_CPU) {
    if (cfg->comm_path == COMM_CHOICE_NCCL)
      fail_collective(EXIT_USER_ERROR,
                      "--comm nccl needs the CUDA backend (NCCL moves GPU buffers), but this run computes on the "
                      "CPU; use --comm mpi (or auto), or --backend cuda on GPUs");
    snprintf(out->comm_path, sizeof out->comm_path, "mpi (host buffers, no copies)");
    return;
  }
  char id[64];
  be->device_id(id, sizeof id);
  const bool own_gpu = runtime_devices_distinct(id); /* collective: the same answer everywhere */
  if (cfg->comm_path == COMM_CHOICE_NCCL && !nccl_comm_built())
    fail_collective(EXIT_USER_ERROR,
                    "--comm nccl: this build has no NCCL (a CPU build, or the emulated CUDA build of "
                    "tests/cuda_emu); use --comm mpi");
  if (cfg->comm_path == COMM_CHOICE_NCCL && !own_gpu)
    fail_collective(EXIT_USER_ERROR,
                    "--comm nccl: ranks of a node share a GPU (more ranks per node than GPUs), which NCCL "
                    "refuses; use --comm mpi, or at most one rank per GPU");
  out->nccl = cfg->comm_path == COMM_CHOICE_NCCL ||
              (cfg->comm_path == COMM_CHOICE_AUTO && nccl_comm_built() && own_gpu);
  if (out->nccl) {
    grid_enable_nccl(g, be->stream());
    snprintf(out->comm_path, sizeof out->comm_path,
             "nccl (tp, sp, dp x sp on their own streams, bf16; pp through MPI, staged in host memory)");
  } else {
    snprintf(out->comm_path, sizeof out->comm_path, "mpi (GPU buffers staged in host memory as fp32)%s",
             own_gpu ? "" : "; ranks share a GPU");
  }
}
