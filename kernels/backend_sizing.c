/* backend_sizing — see backend_sizing.h. */
#include "backend_sizing.h"

size_t backend_sizing_cuda_saved_elems(int B, int T, int NH) { return (size_t)B * NH * T; }

/* the CUDA backend's act_t is bf16 (kernels/cuda/backend_cuda.cu) */
static const backend cuda_sizes = {
    .name = "cuda",
    .kind = BACKEND_CUDA,
    .act_elem_bytes = 2,
    .attention_saved_elems = backend_sizing_cuda_saved_elems,
};

const backend *backend_sizing(backend_kind kind) { return kind == BACKEND_CUDA ? &cuda_sizes : backend_cpu(); }
