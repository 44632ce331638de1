// Small device helpers shared by the CUDA kernels.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/macros/Macros.h>
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>

namespace robocache {

// VEC consecutive elements moved as one aligned access (16 bytes for VEC * sizeof(T) == 16).
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Vec {
  T v[VEC];
};

// The unsigned word of BYTES bytes. Vectors move through it because a Vec of 16-bit elements copied as a
// struct can be split into one access per element (seen: four 2-byte stores for a Vec<BFloat16, 4>).
template <int BYTES> struct RawWord;
template <> struct RawWord<2> { using type = uint16_t; };
template <> struct RawWord<4> { using type = uint32_t; };
template <> struct RawWord<8> { using type = uint2; };
template <> struct RawWord<16> { using type = uint4; };

template <typename T, int VEC>
__device__ __forceinline__ Vec<T, VEC> load_vec(const T* p) {
  using W = typename RawWord<sizeof(Vec<T, VEC>)>::type;
  const W w = *reinterpret_cast<const W*>(p);
  Vec<T, VEC> x;
  __builtin_memcpy(&x, &w, sizeof(W));
  return x;
}

template <typename T, int VEC>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, VEC>& x) {
  using W = typename RawWord<sizeof(Vec<T, VEC>)>::type;
  W w;
  __builtin_memcpy(&w, &x, sizeof(W));
  *reinterpret_cast<W*>(p) = w;
}

// The widest VEC (elements) with 16-byte accesses or narrower that divides `n` and whose byte offset
// every row start keeps: all strides a multiple of VEC and the base pointer VEC-aligned.
template <typename T>
inline int pick_vector_width(const void* base, int64_t n, std::initializer_list<int64_t> strides) {
  for (int vec = 16 / static_cast<int>(sizeof(T)); vec > 1; vec /= 2) {
    bool ok = n % vec == 0 && reinterpret_cast<uintptr_t>(base) % (sizeof(T) * vec) == 0;
    for (int64_t s : strides) ok = ok && s % vec == 0;
    if (ok) return vec;
  }
  return 1;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A profiling override (not an API): the integer value of environment variable `name`, or `fallback` when it
// is unset. Callers keep it in a function-local static, so it is read once per process.
inline int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// SMs of `device`, asked once per device (a driver attribute query, no sync; cached so launches stay cheap).
inline int64_t multiprocessor_count(int device) {
  static std::array<std::atomic<int>, 64> cache{};
  std::atomic<int>& slot = cache.at(static_cast<size_t>(device));
  int count = slot.load(std::memory_order_relaxed);
  if (count == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    slot.store(count, std::memory_order_relaxed);
  }
  return count;
}

}  // namespace robocache
