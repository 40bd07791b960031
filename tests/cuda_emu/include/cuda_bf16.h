/* cuda_bf16.h for the emulator (run.sh): bf16 as its bits, round to nearest even */
#pragma once
#include <stdint.h>
#include <string.h>
#include <math.h>
struct __nv_bfloat16 { uint16_t bits; };
inline float __bfloat162float(__nv_bfloat16 b) {
  uint32_t u = (uint32_t)b.bits << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  __nv_bfloat16 b;
  if (isnan(f)) { b.bits = 0x7FC0; return b; }
  u += 0x7FFFu + ((u >> 16) & 1u);
  b.bits = (uint16_t)(u >> 16);
  return b;
}
