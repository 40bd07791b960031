/* backend_sizing — a backend's element sizes and attention state, without
 * the backend: what the planner (src/plan) needs to size a run on GPUs from
 * a machine that has none (or a build without CUDA). Only name, kind,
 * act_elem_bytes and attention_saved_elems are set; no op may be called.
 */
#ifndef TESSERA_BACKEND_SIZING_H
#define TESSERA_BACKEND_SIZING_H

#include <stddef.h>

#include "backend.h"

/* BACKEND_CPU: the CPU backend itself; BACKEND_CUDA: its sizes only. */
const backend *backend_sizing(backend_kind kind);

/* The CUDA backend's attention_saved_elems (the flash kernels keep one
 * log-sum-exp per row and head), defined here so that every build has it;
 * kernels/cuda/attention.cu's op calls it. */
size_t backend_sizing_cuda_saved_elems(int B, int T, int NH);

#endif
