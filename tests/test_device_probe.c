/* test_device_probe — the CUDA tests skip only where there is no GPU, and a
 * GPU the runtime cannot use fails (kernels/device_probe.h), decided
 * without a GPU from what cudaGetDeviceCount may return:
 *  - success with N > 0 devices: ready, whatever /dev holds (the emulator
 *    has no device node);
 *  - success with 0 devices, cudaErrorNoDevice (also CUDA_VISIBLE_DEVICES
 *    empty): no GPU, with or without device nodes;
 *  - any other error (insufficient driver, initialisation error): no GPU
 *    only where /dev has no NVIDIA device node (no driver loaded: a CPU
 *    machine), otherwise broken;
 *  - device nodes are "nvidia" + digits in the directory (nvidiactl and
 *    nvidia-uvm, present without a GPU on some machines, are not), looked
 *    up in a temporary directory here;
 *  - the line `tessera --version` prints for each verdict, which
 *    tests/cuda_training.sh reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device_probe.h"
#include "testing.h"

static void check_verdict(device_count_status status, int n, bool nodes, device_verdict want, const char *what) {
  const device_verdict got = device_probe_classify(status, n, nodes);
  CHECK(got == want, "%s (nodes %d): verdict %d, want %d", what, nodes, got, want);
}

static void touch(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL, "cannot create %s", path);
  if (f) fclose(f);
}

static void test_nodes(void) {
  char dir[] = "/tmp/tessera-probe.XXXXXX";
  CHECK(mkdtemp(dir) != NULL, "mkdtemp");
  CHECK(!device_probe_nodes_present(dir), "an empty directory has no GPU node");
  touch(dir, "nvidiactl");
  touch(dir, "nvidia-uvm");
  touch(dir, "nvidia");
  CHECK(!device_probe_nodes_present(dir), "nvidiactl, nvidia-uvm and a bare 'nvidia' are no GPU node");
  touch(dir, "nvidia12");
  CHECK(device_probe_nodes_present(dir), "nvidia12 is a GPU node");
  CHECK(!device_probe_nodes_present("/nonexistent-dir"), "a missing directory has no GPU node");
  const char *names[] = {"nvidiactl", "nvidia-uvm", "nvidia", "nvidia12"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

static void test_describe(void) {
  char line[256];
  device_probe p = {.verdict = DEVICE_READY, .n_devices = 2};
  device_probe_describe(&p, line, sizeof line);
  CHECK(strcmp(line, "GPUs: 2 visible") == 0, "ready: '%s'", line);
  p = (device_probe){.verdict = DEVICE_NONE, .message = "cudaGetDeviceCount: no CUDA-capable device"};
  device_probe_describe(&p, line, sizeof line);
  CHECK(strcmp(line, "GPUs: none (cudaGetDeviceCount: no CUDA-capable device)") == 0, "none: '%s'", line);
  p = (device_probe){.verdict = DEVICE_BROKEN, .message = "cudaGetDeviceCount: driver too old"};
  device_probe_describe(&p, line, sizeof line);
  CHECK(strcmp(line, "GPUs: unusable: cudaGetDeviceCount: driver too old") == 0, "broken: '%s'", line);
}

int main(void) {
  for (int nodes = 0; nodes < 2; nodes++) {
    check_verdict(DEVICE_COUNT_OK, 1, nodes, DEVICE_READY, "1 device");
    check_verdict(DEVICE_COUNT_OK, 8, nodes, DEVICE_READY, "8 devices");
    check_verdict(DEVICE_COUNT_OK, 0, nodes, DEVICE_NONE, "0 devices");
    check_verdict(DEVICE_COUNT_NO_DEVICE, 0, nodes, DEVICE_NONE, "cudaErrorNoDevice");
    check_verdict(DEVICE_COUNT_ERROR, 0, nodes, nodes ? DEVICE_BROKEN : DEVICE_NONE, "another error");
  }
  test_nodes();
  test_describe();
  return test_summary("test_device_probe");
}
