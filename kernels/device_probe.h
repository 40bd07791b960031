/* device_probe — does this machine have a GPU the CUDA backend can use, and
 * if it has one it cannot use, why. The decision is plain C (no CUDA
 * headers) so that a unit test can feed it every case without a GPU
 * (tests/test_device_probe.c); kernels/cuda/backend_cuda.cu feeds it what
 * cudaGetDeviceCount returned.
 *
 * "No GPU" is only: the runtime counted none, said cudaErrorNoDevice, or
 * failed while the machine has no NVIDIA device node (/dev/nvidia0, ...: no
 * driver loaded, where the runtime reports an insufficient driver). Any
 * other failure where device nodes exist — a driver older than the
 * runtime, an initialisation error, a GPU fallen off the bus — is a broken
 * GPU: the run and the CUDA tests fail with the runtime's message instead
 * of reading it as a CPU machine.
 */
#ifndef TESSERA_DEVICE_PROBE_H
#define TESSERA_DEVICE_PROBE_H

#include <stdbool.h>
#include <stddef.h>

/* What the device count call returned, in the runtime's terms. */
typedef enum device_count_status {
  DEVICE_COUNT_OK,        /* cudaSuccess */
  DEVICE_COUNT_NO_DEVICE, /* cudaErrorNoDevice */
  DEVICE_COUNT_ERROR      /* any other error */
} device_count_status;

typedef enum device_verdict {
  DEVICE_READY,  /* at least one GPU to use */
  DEVICE_NONE,   /* no GPU here (or no CUDA backend in this build) */
  DEVICE_BROKEN  /* a GPU is there but the runtime cannot use it */
} device_verdict;

device_verdict device_probe_classify(device_count_status status, int n_devices, bool device_nodes);

/* Whether DIR (normally "/dev") holds an NVIDIA GPU's device node:
 * "nvidia" followed by digits only (not nvidiactl, nvidia-uvm). */
bool device_probe_nodes_present(const char *dir);

/* The outcome, for the backend, `tessera --version` and the CUDA tests. */
typedef struct device_probe {
  device_verdict verdict;
  int n_devices;      /* DEVICE_READY: how many */
  char message[200];  /* DEVICE_NONE / DEVICE_BROKEN: why, with the runtime's own words */
} device_probe;

/* One line for `tessera --version`: "GPUs: 2 visible", "GPUs: none (...)"
 * or "GPUs: unusable: ..." (tests/cuda_training.sh reads it). */
void device_probe_describe(const device_probe *p, char *out, size_t out_bytes);

#endif
