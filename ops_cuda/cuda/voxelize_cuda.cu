// voxelize on CUDA.
//
// Math: every point of cloud b gets the global voxel index g = b*V + (ix*Y + iy)*Z + iz from
// voxel_index() in voxelize.h, the same function the CPU kernel calls: IEEE subtraction and division in
// float32 (float64 for float64 points). This file is compiled without --use_fast_math, so `/` is the
// correctly rounded division and the CPU and GPU put every point in the same voxel, bit for bit.
//
// Layouts: points [B,N,3] with any strides (a float32 [*,N,3] tensor with packed rows is read 4 points
// per thread as three float4 loads); grids are x-first, [B,X,Y,Z] for count/occupancy, [B,X,Y,Z,F] or
// [B,F,X,Y,Z] (channels_first, written directly, no permute) for sum/mean/max.
//
// Paths:
// - count / occupancy, binned (grids of up to kMaxBins * kBinVoxels = 2^24 voxels): two launches, no global
//   atomics and no memset (see voxelize_bin_kernel): chunks of points are counting-sorted by bin of 8192
//   voxels in shared memory, then a block per (cloud, bin) counts its points in shared memory and writes
//   every voxel of the bin once. (H100, 16M points into 128^3: count 92 -> 125 G points/s, occupancy
//   75 -> 128 against the one-pass path below; profiling/NOTES.md.)
// - occupancy on sm_90 and newer (grids of up to 2^23 voxels): a cluster of up to 8 blocks holds a cloud's
//   bitmask in its distributed shared memory, every point sets its bit there, and a second launch ORs the
//   clusters' masks into the bool grid (see voxelize_occupancy_mask_kernel). No sort, no voxel lists.
// - count / occupancy, larger grids: one pass over the points, 4 points per thread, one 2-D launch (x:
//   points of a cloud, y: clouds). count adds with int32 atomics (consecutive points of a thread that share
//   a voxel are merged into one atomic); occupancy stores a byte (racing stores of the same value, no
//   atomics). The grid is zeroed with cudaMemsetAsync per group of clouds whose grids fit in about half the
//   L2, and each group is scattered right after its memset, so the atomics hit L2 rather than DRAM.
// - max of short rows (up to 16 channels; grids of up to 2^24 voxels): the count path's binning pass, which also
//   writes each entry's point number, then a block per part of a bin gathers its points' rows and takes the
//   maximum in shared memory (voxelize_bin_max_kernel). No radix sort.
// - sum / mean of short rows (same grids; clouds of up to about 7 points per voxel): the same binning plus the
//   count path's per-voxel counts, then a block per part of a bin counting-sorts its entries by voxel in shared
//   memory and reduces each voxel's rows in registers (voxelize_bin_rows_kernel). No radix sort, no float atomics.
// - sum / mean / max otherwise, fast (default): the points are binned by tile (T consecutive voxels) with a stable
//   radix sort of (g, point) pairs on the tile bits of g only; then one block per tile accumulates its
//   points in shared memory (float atomics; max as an order-preserving integer with atomicMax, so it is
//   exact and order-independent) and writes every voxel of its tile once, empty voxels as 0. No global
//   atomics, no memset, and the feature rows are gathered once. sum/mean may round differently from run
//   to run (shared-memory atomic order); max is bitwise deterministic.
// - sum / mean, deterministic=True: the same keys sorted on all bits of g (stable, so each voxel's points
//   stay in increasing point index), then one thread per output element adds its voxel's points in that
//   order: bitwise reproducible, and the same additions in the same order as the CPU kernel.
// Accumulation is float32 (float64 for float64 features); half/bfloat16 results are rounded once.
// Everything runs on the current stream with no host synchronisation; temporaries come from the caching
// allocator (radix sort through at::cuda::cub, which allocates its scratch there too).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/cub.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cooperative_groups.h>
#include <torch/library.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "cuda/common.cuh"
#include "voxelize.h"

namespace robocache {
namespace {

constexpr int kThreads = 256;        // point kernels
constexpr int kPointsPerThread = 4;  // one float4 triple
constexpr int kPointsPerBlock = kThreads * kPointsPerThread;
constexpr int kReduceThreads = 512;  // tile reduction
constexpr int kMaxGridY = 65535;
constexpr int64_t kL2GroupBytes = 24 << 20;  // count/occupancy grids zeroed and filled together

template <typename scalar_t>
using coord_type = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// Points [B,N,3] by strides, plus the cloud lengths (nullptr: every cloud is N long).
template <typename scalar_t>
struct PointsRef {
  const scalar_t* ptr;
  int64_t sb, sn, sc;
  const int64_t* lengths;
  int64_t B, N;
};

__device__ __forceinline__ int64_t cloud_len(const int64_t* lengths, int64_t b, int64_t N) {
  return lengths == nullptr ? N : clamp_length(lengths[b], N);
}

// The 4 points n0..n0+3 of cloud b, as coord_t. kVec: float32 with packed 12-byte rows and 16-byte aligned
// cloud starts, so 4 points are 3 aligned float4 loads. Points past N are left 0 (the caller skips them).
template <typename scalar_t, bool kVec>
__device__ __forceinline__ void load_points(const PointsRef<scalar_t>& P, int64_t b, int64_t n0,
                                            coord_type<scalar_t> (&x)[4], coord_type<scalar_t> (&y)[4],
                                            coord_type<scalar_t> (&z)[4]) {
  using coord_t = coord_type<scalar_t>;
  const scalar_t* base = P.ptr + b * P.sb;
  if constexpr (kVec) {
    if (n0 + kPointsPerThread <= P.N) {
      const float4* q = reinterpret_cast<const float4*>(base + n0 * 3);
      const float4 u = __ldg(q), v = __ldg(q + 1), w = __ldg(q + 2);
      x[0] = u.x, y[0] = u.y, z[0] = u.z;
      x[1] = u.w, y[1] = v.x, z[1] = v.y;
      x[2] = v.z, y[2] = v.w, z[2] = w.x;
      x[3] = w.y, y[3] = w.z, z[3] = w.w;
      return;
    }
  }
#pragma unroll
  for (int k = 0; k < kPointsPerThread; ++k) {
    x[k] = y[k] = z[k] = coord_t(0);
    const int64_t n = n0 + k;
    if (n < P.N) {
      const scalar_t* q = base + n * P.sn;
      x[k] = static_cast<coord_t>(q[0]);
      y[k] = static_cast<coord_t>(q[P.sc]);
      z[k] = static_cast<coord_t>(q[2 * P.sc]);
    }
  }
}

// count (int32 atomics) or occupancy (byte stores) of clouds [b_begin, b_end) into out[b*V + v].
template <typename scalar_t, bool kVec, bool kOccupancy>
__global__ void __launch_bounds__(kThreads)
    voxelize_count_kernel(PointsRef<scalar_t> P, VoxelGrid<coord_type<scalar_t>> grid, int64_t V, int64_t b_begin,
                          int64_t b_end, std::conditional_t<kOccupancy, bool, int32_t>* __restrict__ out) {
  using coord_t = coord_type<scalar_t>;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * kPointsPerThread;
  for (int64_t b = b_begin + blockIdx.y; b < b_end; b += gridDim.y) {
    const int64_t L = cloud_len(P.lengths, b, P.N);
    if (n0 >= L) continue;
    coord_t x[kPointsPerThread], y[kPointsPerThread], z[kPointsPerThread];
    load_points<scalar_t, kVec>(P, b, n0, x, y, z);
    int64_t run_v = -1;
    int run = 0;
#pragma unroll
    for (int k = 0; k < kPointsPerThread; ++k) {
      if (n0 + k >= L) break;
      const int64_t v = voxel_index<coord_t>(x[k], y[k], z[k], grid);
      if (v < 0) continue;
      if constexpr (kOccupancy) {
        // A plain byte store: testing the byte first (so only a voxel's first point stores) was measured
        // slower on the H100 (16M points 226 -> 240 us, 1M 24 -> 48 us; profiling/NOTES.md).
        out[b * V + v] = true;
      } else if (v == run_v) {
        ++run;
      } else {
        if (run > 0) atomicAdd(out + b * V + run_v, run);
        run_v = v;
        run = 1;
      }
    }
    if constexpr (!kOccupancy) {
      if (run > 0) atomicAdd(out + b * V + run_v, run);
    }
  }
}

// ---- count / occupancy, binned -------------------------------------------------------------------------
// Scattering one int32 atomic (count) or byte store (occupancy) per point into the grid is bound by L2
// operations, not by reading the points (ncu, profiling/NOTES.md). The binned path makes two passes instead:
//  1. voxelize_bin_kernel: a block takes a chunk of kBinChunk points of one cloud, computes their voxels,
//     and counting-sorts them in shared memory by bin (kBinVoxels consecutive voxels of the cloud's grid).
//     It writes the chunk's in-bin voxel numbers (uint16, grouped by bin) and, per bin, one run word
//     (start << 16 | length) to runs[(b * bins + bin) * chunks + chunk].
//  2. voxelize_bin_reduce_kernel: a block per (cloud, bin) reads that bin's run of every chunk, counts its
//     points in shared memory (atomics there are cheap), and writes all kBinVoxels voxels of the bin once
//     (empty ones as 0): no memset and no global atomics.
constexpr int kBinVoxelsLog2 = 13;
constexpr int kBinVoxels = 1 << kBinVoxelsLog2;
constexpr int kBinChunk = 4096;           // points per binning block (16 per thread)
constexpr int kMaxBins = 2048;            // bins per cloud: grids of up to 2^24 voxels take this path
constexpr int kBinReduceThreads = 1024;
constexpr uint32_t kDroppedCode = 0xFFFFFFFFu;
static_assert(kBinChunk <= 0xFFFF && kBinChunk % kPointsPerBlock == 0, "run words hold 16-bit starts and lengths");

// Exclusive prefix sum of a[0..n) in place, by a block of kBlockThreads threads (each a contiguous segment, then
// a warp scan of the segment sums); calls visit(j, offset, count) as it writes each a[j] and returns the total.
// warp_total: kBlockThreads / 32 words of shared memory. Synchronises the block before and after its writes.
template <int kBlockThreads, typename Visit>
__device__ __forceinline__ uint32_t block_exclusive_scan(uint32_t* a, int n, uint32_t* warp_total, Visit&& visit) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int per = (n + kBlockThreads - 1) / kBlockThreads;
  const int j0 = min(n, static_cast<int>(threadIdx.x) * per), j1 = min(n, j0 + per);
  uint32_t sum = 0;
  for (int j = j0; j < j1; ++j) sum += a[j];
  uint32_t incl = sum;
#pragma unroll
  for (int d = 1; d < 32; d *= 2) {
    const uint32_t up = __shfl_up_sync(0xffffffffu, incl, d);
    if (lane >= d) incl += up;
  }
  if (lane == 31) warp_total[warp] = incl;
  __syncthreads();
  uint32_t before = incl - sum;
  for (int w = 0; w < warp; ++w) before += warp_total[w];
  uint32_t total = 0;
  for (int w = 0; w < kBlockThreads / 32; ++w) total += warp_total[w];
  for (int j = j0; j < j1; ++j) {
    const uint32_t count = a[j];
    a[j] = before;
    visit(j, before, count);
    before += count;
  }
  __syncthreads();
  return total;
}

// MIN_BLOCKS per SM (5: 48 registers, ~34 KB of shared memory each at 256 bins): while one block sorts in
// shared memory, the others' loads are in flight. (H100, 16M points into 128^3, count/occupancy: 4 blocks
// 140/136 us, 5 blocks 134/131 us, 6 blocks 129/127 us but 8 clouds of 2M at 0.80 of the single-cloud rate;
// profiling/results/voxelize_count_paths_H100.md.)
// kPoints (binned max): bin_points also gets each entry's point number within its chunk, in the same order.
template <typename scalar_t, bool kVec, bool kPoints, int MIN_BLOCKS>
__global__ void __launch_bounds__(kThreads, MIN_BLOCKS)
    voxelize_bin_kernel(PointsRef<scalar_t> P, VoxelGrid<coord_type<scalar_t>> grid, int bins, int64_t chunks,
                        uint16_t* __restrict__ bin_voxels, uint16_t* __restrict__ bin_points,
                        uint32_t* __restrict__ runs) {
  using coord_t = coord_type<scalar_t>;
  __shared__ uint32_t code[kBinChunk];  // bin << kBinVoxelsLog2 | voxel in bin, or kDroppedCode
  __shared__ uint16_t rank[kBinChunk];  // the point's place among its bin's points in this chunk
  __shared__ uint16_t sorted[kBinChunk];
  __shared__ uint16_t sorted_points[kPoints ? kBinChunk : 1];
  extern __shared__ uint32_t bin_start[];  // [bins]: sized per launch, so small grids leave room for more blocks
  __shared__ uint32_t warp_total[kThreads / 32];
  const int64_t c = blockIdx.x;
  for (int64_t b = blockIdx.y; b < P.B; b += gridDim.y) {
    for (int j = threadIdx.x; j < bins; j += kThreads) bin_start[j] = 0;
    __syncthreads();
    const int64_t L = cloud_len(P.lengths, b, P.N);
    // 1. voxels, and each point's rank within its bin (shared-memory atomics on the bin counts). The order
    // of the points in code/rank is free: slot k * kThreads + thread keeps a warp's stores conflict-free.
#pragma unroll 2
    for (int it = 0; it < kBinChunk / kPointsPerBlock; ++it) {
      const int64_t n0 = c * kBinChunk + (it * kThreads + threadIdx.x) * kPointsPerThread;
      coord_t x[kPointsPerThread], y[kPointsPerThread], z[kPointsPerThread];
      if (n0 < L) load_points<scalar_t, kVec>(P, b, n0, x, y, z);
#pragma unroll
      for (int k = 0; k < kPointsPerThread; ++k) {
        const int slot_k = it * kPointsPerBlock + k * kThreads + threadIdx.x;
        const int32_t v = n0 + k < L ? voxel_index<coord_t, int32_t>(x[k], y[k], z[k], grid) : -1;
        uint32_t cd = kDroppedCode;
        if (v >= 0) {
          const uint32_t bin = static_cast<uint32_t>(v) >> kBinVoxelsLog2;
          rank[slot_k] = static_cast<uint16_t>(atomicAdd(bin_start + bin, 1u));
          cd = static_cast<uint32_t>(v);  // == bin << kBinVoxelsLog2 | voxel in bin
        }
        code[slot_k] = cd;
      }
    }
    __syncthreads();
    // 2. exclusive scan of the bin counts, writing the run words.
    uint32_t* chunk_runs = runs + b * bins * chunks + c;
    const uint32_t total = block_exclusive_scan<kThreads>(
        bin_start, bins, warp_total, [&](int j, uint32_t start, uint32_t n) { chunk_runs[j * chunks] = start << 16 | n; });
    // 3. counting-sort the in-bin voxel numbers by bin, then write them out in one coalesced sweep.
    for (int i = threadIdx.x; i < kBinChunk; i += kThreads) {
      const uint32_t cd = code[i];
      if (cd == kDroppedCode) continue;
      const uint32_t at = bin_start[cd >> kBinVoxelsLog2] + rank[i];
      sorted[at] = static_cast<uint16_t>(cd & (kBinVoxels - 1));
      if constexpr (kPoints) {  // slot i -> point number, the inverse of slot_k in step 1
        const int it = i / kPointsPerBlock, k = (i % kPointsPerBlock) / kThreads, t = i % kThreads;
        sorted_points[at] = static_cast<uint16_t>((it * kThreads + t) * kPointsPerThread + k);
      }
    }
    __syncthreads();
    const int64_t chunk_offset = (b * chunks + c) * kBinChunk;
    for (int i = threadIdx.x; i < static_cast<int>(total); i += kThreads) {
      bin_voxels[chunk_offset + i] = sorted[i];
      if constexpr (kPoints) bin_points[chunk_offset + i] = sorted_points[i];
    }
    __syncthreads();  // before the next cloud reuses the shared arrays
  }
}

// Entry k (0..7) of a 16-byte word of uint16 entries (little-endian: entry 0 is the low half of .x). Selects,
// not an indexed array, so a runtime k does not put the word in local memory.
__device__ __forceinline__ uint32_t word_entry(const uint4& w, int k) {
  const uint32_t pair = k < 4 ? (k < 2 ? w.x : w.y) : (k < 6 ? w.z : w.w);
  return (k % 2 ? pair >> 16 : pair) & 0xFFFFu;
}

template <bool kOccupancy>
__global__ void __launch_bounds__(kBinReduceThreads)
    voxelize_bin_reduce_kernel(const uint16_t* __restrict__ bin_voxels, const uint32_t* __restrict__ runs, int bins,
                               int64_t chunks, int64_t B, int64_t V,
                               std::conditional_t<kOccupancy, bool, int32_t>* __restrict__ out) {
  using slot_t = std::conditional_t<kOccupancy, uint8_t, int32_t>;
  __shared__ slot_t slot[kBinVoxels];
  const int j = blockIdx.x;
  const int64_t v0 = static_cast<int64_t>(j) << kBinVoxelsLog2;
  const int nv = static_cast<int>(min(static_cast<int64_t>(kBinVoxels), V - v0));
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    for (int i = threadIdx.x; i < kBinVoxels; i += blockDim.x) slot[i] = 0;
    __syncthreads();
    // A thread per run, read as the aligned 16-byte words (8 voxel numbers) that cover it: a 2-byte load per
    // point, with each lane of a warp in a different chunk, was bound by L1 requests (ncu, profiling/NOTES.md).
    // The words stay inside the chunk (kBinChunk is a multiple of 8); entries outside the run are skipped.
    const uint32_t* bin_runs = runs + (b * bins + j) * chunks;
    for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
      const uint32_t r = bin_runs[c];
      const int start = static_cast<int>(r >> 16), end = start + static_cast<int>(r & 0xFFFFu);
      const uint4* words = reinterpret_cast<const uint4*>(bin_voxels + (b * chunks + c) * kBinChunk);
      for (int w = start / 8; w * 8 < end; ++w) {
        const uint4 word = words[w];
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          const int i = w * 8 + k;
          if (i < start || i >= end) continue;
          const uint32_t lv = word_entry(word, k);
          if constexpr (kOccupancy) {
            slot[lv] = 1;
          } else {
            atomicAdd(slot + lv, 1);
          }
        }
      }
    }
    __syncthreads();
    auto* cloud_out = out + b * V + v0;
    for (int i = threadIdx.x; i < nv; i += blockDim.x) cloud_out[i] = kOccupancy ? slot[i] != 0 : slot[i];
    __syncthreads();
  }
}

// ---- occupancy, cluster bitmask (sm_90) ------------------------------------------------------------------
// Occupancy needs one bit per voxel, and the bits of a 128^3 grid (256 KB) fit in the shared memory of a cluster
// of two blocks, so occupancy needs neither the binning pass's sort nor its intermediate voxel lists:
//  1. voxelize_occupancy_mask_kernel: a cluster of C blocks holds one cloud's whole bitmask, block r the words
//     [r * W, (r + 1) * W) (W = 2^word_log2), in its shared memory. The cluster takes one unit (a contiguous
//     slice of unit_points points) of the cloud, and every point sets its voxel's bit in the owner block's
//     shared memory (atomicOr through cluster.map_shared_rank: distributed shared memory for the other ranks).
//     Then each block writes its words to the unit's partial mask: no memset, no global atomics.
//  2. voxelize_occupancy_merge_kernel ORs a cloud's partial masks and writes every voxel's bool once.
// Traffic: the points once, plus units * V / 8 bytes of partial masks written and read (at most a quarter of the
// point bytes, see plan_occupancy_mask; 17 MB at 16M points into 128^3 on 132 SMs, mostly L2-resident), plus
// the grid.
constexpr int kMaskThreads = 1024;
constexpr int kMaxMaskCluster = 8;     // the portable cluster size
constexpr int kMaskWordLog2Max = 15;   // 128 KB of mask words per block at most
constexpr int kMergeSlices = 8;        // merge: warps per block, each ORing every 8th unit

template <typename scalar_t, bool kVec>
__global__ void __launch_bounds__(kMaskThreads, 1)
    voxelize_occupancy_mask_kernel(PointsRef<scalar_t> P, VoxelGrid<coord_type<scalar_t>> grid, int64_t units,
                                   int64_t unit_points, int word_log2, uint32_t* __restrict__ partial) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  using coord_t = coord_type<scalar_t>;
  namespace cg = cooperative_groups;
  extern __shared__ __align__(16) uint4 mask_words[];
  uint32_t* mask = reinterpret_cast<uint32_t*>(mask_words);
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = static_cast<int>(cluster.block_rank());
  const int C = static_cast<int>(cluster.num_blocks());
  const uint32_t words = 1u << word_log2;
  for (uint32_t i = threadIdx.x; i < words / 4; i += kMaskThreads) mask_words[i] = make_uint4(0, 0, 0, 0);
  cluster.sync();  // every block's words are zero before any point sets a bit in them

  const int64_t unit = blockIdx.x / C;
  const int64_t b = unit / units;
  const int64_t begin = (unit - b * units) * unit_points;
  const int64_t end = min(cloud_len(P.lengths, b, P.N), begin + unit_points);
  auto set_bits = [&](int64_t n0, const coord_t (&x)[4], const coord_t (&y)[4], const coord_t (&z)[4]) {
#pragma unroll
    for (int k = 0; k < kPointsPerThread; ++k) {
      if (n0 + k >= end) break;
      const int32_t v = voxel_index<coord_t, int32_t>(x[k], y[k], z[k], grid);
      if (v < 0) continue;
      const uint32_t word = static_cast<uint32_t>(v) >> 5, bit = 1u << (v & 31);
      if (C == 1) {
        atomicOr(mask + word, bit);  // a plain shared-memory atomic
      } else {
        // Through a generic pointer into the owner's shared memory. (A red.shared::cluster on the mapa address
        // instead measured 1-2% slower on the H200, profiling/NOTES.md.)
        atomicOr(cluster.map_shared_rank(mask, static_cast<int>(word >> word_log2)) + (word & (words - 1)), bit);
      }
    }
  };
  // Two groups of 4 points per thread and iteration: their loads are issued before the first atomic.
  const int64_t step = static_cast<int64_t>(C) * kMaskThreads * kPointsPerThread;
  for (int64_t n0 = begin + (static_cast<int64_t>(rank) * kMaskThreads + threadIdx.x) * kPointsPerThread; n0 < end;
       n0 += 2 * step) {
    const int64_t n1 = n0 + step;
    coord_t xa[4], ya[4], za[4], xb[4], yb[4], zb[4];
    load_points<scalar_t, kVec>(P, b, n0, xa, ya, za);
    if (n1 < end) load_points<scalar_t, kVec>(P, b, n1, xb, yb, zb);
    set_bits(n0, xa, ya, za);
    if (n1 < end) set_bits(n1, xb, yb, zb);
  }
  cluster.sync();  // every bit of this block's words is set, the other ranks' atomics included

  uint4* dst = reinterpret_cast<uint4*>(partial + (static_cast<int64_t>(blockIdx.x) << word_log2));
  for (uint32_t i = threadIdx.x; i < words / 4; i += kMaskThreads) dst[i] = mask_words[i];
#endif
}

// Four occupancy bits as four bool bytes (bit k -> byte k): the shifted copies of the nibble do not overlap.
__device__ __forceinline__ uint32_t nibble_bytes(uint32_t nibble) { return (nibble * 0x00204081u) & 0x01010101u; }

// out[b*V + v] for the 128 voxels of each 16-byte group q of the masks: the OR of cloud b's `units` partial masks
// (unit_vecs 16-byte groups each). Warp `slice` ORs units slice, slice + 8, ...; then thread (lane, slice) writes
// voxels [q * 128 + slice * 16, +16), as one 16-byte store where vec_out (V % 16 == 0, aligned output).
__global__ void __launch_bounds__(32 * kMergeSlices)
    voxelize_occupancy_merge_kernel(const uint4* __restrict__ partial, int64_t units, int64_t unit_vecs, int64_t B,
                                    int64_t V, bool vec_out, bool* __restrict__ out) {
  __shared__ uint4 acc[kMergeSlices][32];
  const int lane = threadIdx.x % 32, slice = threadIdx.x / 32;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * 32 + lane;
  const bool active = q < (V + 127) / 128;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    uint4 bits = make_uint4(0, 0, 0, 0);
    if (active) {
      const uint4* p = partial + b * units * unit_vecs + q;
#pragma unroll 4
      for (int64_t u = slice; u < units; u += kMergeSlices) {
        const uint4 w = p[u * unit_vecs];
        bits.x |= w.x, bits.y |= w.y, bits.z |= w.z, bits.w |= w.w;
      }
    }
    acc[slice][lane] = bits;
    __syncthreads();
    if (active) {
      uint32_t word = 0;  // the 32-bit word of the group that holds this thread's 16 voxels
      for (int s = 0; s < kMergeSlices; ++s) word |= reinterpret_cast<const uint32_t*>(&acc[s][lane])[slice / 2];
      const uint32_t half = slice % 2 ? word >> 16 : word & 0xFFFFu;
      const int64_t v0 = q * 128 + slice * 16;
      bool* o = out + b * V + v0;
      if (vec_out && v0 + 16 <= V) {
        *reinterpret_cast<uint4*>(o) = make_uint4(nibble_bytes(half & 0xF), nibble_bytes((half >> 4) & 0xF),
                                                  nibble_bytes((half >> 8) & 0xF), nibble_bytes(half >> 12));
      } else {
        for (int j = 0; j < 16 && v0 + j < V; ++j) o[j] = (half >> j) & 1u;
      }
    }
    __syncthreads();  // before the next cloud reuses acc
  }
}

// keys[i] = g (or `sentinel` = B*V for a dropped point) and, if vals != nullptr, vals[i] = i, for every
// flat point i = b*N + n. The sentinel sorts after every real voxel.
template <typename scalar_t, bool kVec, typename key_t>
__global__ void __launch_bounds__(kThreads)
    voxelize_keys_kernel(PointsRef<scalar_t> P, VoxelGrid<coord_type<scalar_t>> grid, int64_t V,
                         key_t* __restrict__ keys, int32_t* __restrict__ vals) {
  using coord_t = coord_type<scalar_t>;
  const int64_t n0 = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * kPointsPerThread;
  if (n0 >= P.N) return;
  const key_t sentinel = static_cast<key_t>(P.B * V);
  for (int64_t b = blockIdx.y; b < P.B; b += gridDim.y) {
    const int64_t L = cloud_len(P.lengths, b, P.N);
    coord_t x[kPointsPerThread], y[kPointsPerThread], z[kPointsPerThread];
    if (n0 < L) load_points<scalar_t, kVec>(P, b, n0, x, y, z);
#pragma unroll
    for (int k = 0; k < kPointsPerThread; ++k) {
      const int64_t n = n0 + k;
      if (n >= P.N) break;
      const int64_t v = n < L ? voxel_index<coord_t>(x[k], y[k], z[k], grid) : -1;
      const int64_t i = b * P.N + n;
      keys[i] = v >= 0 ? static_cast<key_t>(b * V + v) : sentinel;
      if (vals != nullptr) vals[i] = static_cast<int32_t>(i);
    }
  }
}

// starts[t] = first position in the sorted keys whose key is >= t << shift, for t in [0, nbins]. The keys
// are sorted at least on the bits above `shift`, which is all this search needs.
template <typename key_t>
__global__ void bin_starts_kernel(const key_t* __restrict__ keys, int64_t M, int shift, int64_t nbins,
                                  int32_t* __restrict__ starts) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t > nbins) return;
  const int64_t target = t << shift;
  int64_t lo = 0, hi = M;
  while (lo < hi) {
    const int64_t mid = (lo + hi) >> 1;
    if (static_cast<int64_t>(keys[mid]) < target) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  starts[t] = static_cast<int32_t>(lo);
}

// Features of flat point p = b*N + n, channel c, at ptr[p*sp + c*sc] (the host makes them so).
template <typename feat_t>
struct FlatFeatures {
  const feat_t* ptr;
  int64_t sp, sc;
};

// max as an unsigned integer whose order is the float order: -inf < ... < -0 < +0 < ... < +inf < NaN.
// Every NaN maps to the largest code, so atomicMax propagates NaN; 0 is no float's code and marks an
// empty voxel.
__device__ __forceinline__ uint32_t max_encode(float x) {
  if (x != x) return 0xFFFFFFFFu;
  const uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float max_decode(uint32_t k) {
  if (k == 0xFFFFFFFFu) return __uint_as_float(0x7FC00000u);
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}
__device__ __forceinline__ unsigned long long max_encode(double x) {
  if (x != x) return ~0ull;
  const unsigned long long u = static_cast<unsigned long long>(__double_as_longlong(x));
  return (u >> 63) ? ~u : (u | (1ull << 63));
}
__device__ __forceinline__ double max_decode(unsigned long long k) {
  if (k == ~0ull) return __longlong_as_double(0x7FF8000000000000ll);
  const unsigned long long u = (k >> 63) ? (k & ~(1ull << 63)) : ~k;
  return __longlong_as_double(static_cast<long long>(u));
}

template <typename acc_t>
using max_code_t = std::conditional_t<std::is_same_v<acc_t, double>, unsigned long long, uint32_t>;

// The shared-memory slot of one (voxel, channel): the running sum, or the max code (0 = no point yet).
template <typename feat_t, VoxelMode kMode>
using reduce_slot_t = std::conditional_t<kMode == VoxelMode::Max, max_code_t<at::opmath_type<feat_t>>,
                                         at::opmath_type<feat_t>>;

// A voxel's output value from its slot and (mean) its point count; empty voxels are 0.
template <typename feat_t, VoxelMode kMode>
__device__ __forceinline__ feat_t voxel_value(reduce_slot_t<feat_t, kMode> a, int count) {
  using acc_t = at::opmath_type<feat_t>;
  if constexpr (kMode == VoxelMode::Max) {
    return static_cast<feat_t>(a == 0 ? acc_t(0) : max_decode(a));
  } else if constexpr (kMode == VoxelMode::Mean) {
    return static_cast<feat_t>(count > 0 ? a / static_cast<acc_t>(count) : acc_t(0));
  } else {
    return static_cast<feat_t>(a);
  }
}

template <typename feat_t, VoxelMode kMode>
__device__ __forceinline__ void accumulate(reduce_slot_t<feat_t, kMode>* slot, at::opmath_type<feat_t> x) {
  if constexpr (kMode == VoxelMode::Max) {
    atomicMax(slot, max_encode(x));
  } else {
    atomicAdd(slot, x);
  }
}

// Fast sum/mean/max: block (tile, channel chunk) reduces the points of voxels [tile*T, tile*T + T) and
// channels [c0, c0 + Fc) in shared memory, then writes that whole block of the output. The points of the
// tile are sorted[tile_starts[tile] .. tile_starts[tile+1]) (keys sorted on the tile bits only; sentinel
// keys of dropped points may sit in the last tile and are skipped). `lanes` threads (a power of two)
// share one point, one channel each, so a feature row is read as one coalesced segment.
template <typename feat_t, VoxelMode kMode, typename key_t>
__global__ void __launch_bounds__(kReduceThreads)
    voxelize_tile_reduce_kernel(const key_t* __restrict__ keys, const int32_t* __restrict__ vals,
                                const int32_t* __restrict__ tile_starts, FlatFeatures<feat_t> fe, int64_t BV, int64_t V,
                                int64_t F, int log2T, int Fc, int lanes, bool channels_first,
                                feat_t* __restrict__ out) {
  using acc_t = at::opmath_type<feat_t>;
  using slot_t = reduce_slot_t<feat_t, kMode>;
  extern __shared__ __align__(16) unsigned char smem[];
  slot_t* acc = reinterpret_cast<slot_t*>(smem);
  const int T = 1 << log2T;
  int* cnt = reinterpret_cast<int*>(acc + T * Fc);  // mean only

  const int64_t base = static_cast<int64_t>(blockIdx.x) << log2T;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * Fc;
  const int nc = static_cast<int>(F - c0 < Fc ? F - c0 : Fc);
  for (int e = threadIdx.x; e < T * Fc; e += blockDim.x) acc[e] = slot_t(0);  // 0: sum 0, max "empty"
  if constexpr (kMode == VoxelMode::Mean) {
    for (int e = threadIdx.x; e < T; e += blockDim.x) cnt[e] = 0;
  }
  __syncthreads();

  // Each group takes kUnroll points per step and issues all their loads before any atomic, so several
  // key -> row -> feature chains are in flight per thread (the gathers are latency-bound otherwise).
  constexpr int kUnroll = 4;
  const int64_t s = tile_starts[blockIdx.x], e_end = tile_starts[blockIdx.x + 1];
  const int lane = threadIdx.x & (lanes - 1);
  const int64_t groups = blockDim.x / lanes;
  for (int64_t i0 = s + threadIdx.x / lanes; i0 < e_end; i0 += kUnroll * groups) {
    int lv[kUnroll];
    const feat_t* row[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t i = i0 + u * groups;
      const int64_t key = i < e_end ? static_cast<int64_t>(keys[i]) : BV;
      lv[u] = key < BV ? static_cast<int>(key - base) : -1;  // -1: past the tile or a dropped point
      row[u] = fe.ptr + (lv[u] >= 0 ? static_cast<int64_t>(vals[i]) * fe.sp + c0 * fe.sc : 0);
    }
    if constexpr (kMode == VoxelMode::Mean) {
      if (lane == 0) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          if (lv[u] >= 0) atomicAdd(cnt + lv[u], 1);
        }
      }
    }
    for (int c = lane; c < nc; c += lanes) {
      acc_t x[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) x[u] = lv[u] >= 0 ? static_cast<acc_t>(row[u][c * fe.sc]) : acc_t(0);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (lv[u] >= 0) accumulate<feat_t, kMode>(acc + lv[u] * Fc + c, x[u]);
      }
    }
  }
  __syncthreads();

  // Write every voxel of the tile (empty ones as 0), in the output's own layout, coalesced.
  const int tv = static_cast<int>(BV - base < T ? BV - base : T);
  const int total = tv * nc;
  auto value = [&](int lv, int c) {
    return voxel_value<feat_t, kMode>(acc[lv * Fc + c], kMode == VoxelMode::Mean ? cnt[lv] : 0);
  };
  if (!channels_first) {
    for (int e = threadIdx.x; e < total; e += blockDim.x) {
      const int lv = e / nc, c = e - lv * nc;
      out[(base + lv) * F + c0 + c] = value(lv, c);
    }
  } else {
    const int64_t b0 = base / V, v0 = base - b0 * V;
    for (int e = threadIdx.x; e < total; e += blockDim.x) {
      const int c = e / tv, lv = e - c * tv;
      int64_t b = b0, v = v0 + lv;
      while (v >= V) {  // a tile may run into the next cloud's grid
        v -= V;
        ++b;
      }
      out[(b * F + c0 + c) * V + v] = value(lv, c);
    }
  }
}

// The voxels of block blockIdx.x in the binned feature kernels: part lo >> part_log2 of bin j, that is in-bin voxels
// [lo, lo + 2^part_log2), starting at grid voxel v0 (past the end of a small grid for the last parts).
struct BinPart {
  int j, lo;
  int64_t v0;
};
__device__ __forceinline__ BinPart bin_part(int part_log2) {
  const int parts_log2 = kBinVoxelsLog2 - part_log2;
  BinPart p;
  p.j = static_cast<int>(blockIdx.x >> parts_log2);
  p.lo = static_cast<int>(blockIdx.x & ((1u << parts_log2) - 1)) << part_log2;
  p.v0 = (static_cast<int64_t>(p.j) << kBinVoxelsLog2) + p.lo;
  return p;
}

// Fast max of short feature rows, binned (the count path's binning, with point numbers): block (bin j, part s)
// of cloud b owns the 2^part_log2 voxels [s << part_log2, (s + 1) << part_log2) of bin j. Each thread takes a
// chunk's run of the bin, reads it as 16-byte words of 8 entries (like voxelize_bin_reduce_kernel), keeps the
// entries in its part and gathers their feature rows (kVecRow: in 16-byte pieces) into shared-memory slots of
// order-preserving codes (atomicMax, exact and order-independent); then the block writes every voxel of its
// part once (empty ones as 0). The parts of a bin read the same runs (from L2 when they run together); only the
// feature rows, one gather per point, come from far. No radix sort: 16M points F=8 into 128^3, 994 -> 646 us.
// Summing the same way was slower than the radix sort (shared-memory float adds are compare-and-swap loops);
// sum/mean sort each part by voxel instead (voxelize_bin_rows_kernel), which for max measured slower than this.
constexpr int kBinMaxThreads = 384;  // 3 blocks per SM at up to 56 registers

template <typename feat_t, bool kVecRow>
__global__ void __launch_bounds__(kBinMaxThreads, 3)
    voxelize_bin_max_kernel(const uint16_t* __restrict__ bin_voxels, const uint16_t* __restrict__ bin_points,
                            const uint32_t* __restrict__ runs, int bins, int64_t chunks, int part_log2, int64_t B,
                            int64_t N, int64_t V, int F, FlatFeatures<feat_t> fe, bool channels_first,
                            feat_t* __restrict__ out) {
  using acc_t = at::opmath_type<feat_t>;
  using slot_t = reduce_slot_t<feat_t, VoxelMode::Max>;
  constexpr int kPieceElems = 16 / sizeof(feat_t);  // kVecRow: elements per 16-byte piece
  // Rows whose loads are in flight together per thread (2 for float64, which needs more registers per row).
  constexpr int kGatherBatch = sizeof(acc_t) == 8 ? 2 : 4;
  extern __shared__ __align__(16) unsigned char smem[];
  const int part_voxels = 1 << part_log2;
  slot_t* acc = reinterpret_cast<slot_t*>(smem);  // [part_voxels * F], 0 = no point yet
  const BinPart part = bin_part(part_log2);
  const int j = part.j, lo = part.lo;
  const int64_t v0 = part.v0;
  if (v0 >= V) return;  // a part past the end of a small grid (the whole block leaves)
  const int nv = static_cast<int>(min(static_cast<int64_t>(part_voxels), V - v0));
  const int total = nv * F;

  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    for (int e = threadIdx.x; e < part_voxels * F; e += blockDim.x) acc[e] = slot_t(0);
    __syncthreads();
    const uint32_t* bin_runs = runs + (b * bins + j) * chunks;
    for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
      const uint32_t r = bin_runs[c];
      const int start = static_cast<int>(r >> 16), end = start + static_cast<int>(r & 0xFFFFu);
      const int64_t chunk_offset = (b * chunks + c) * kBinChunk;
      const uint4* voxel_words = reinterpret_cast<const uint4*>(bin_voxels + chunk_offset);
      const uint4* point_words = reinterpret_cast<const uint4*>(bin_points + chunk_offset);
      const feat_t* chunk_rows = fe.ptr + (b * N + c * kBinChunk) * fe.sp;
      for (int w = start / 8; w * 8 < end; ++w) {
        const uint4 vw = voxel_words[w];
        uint32_t mine = 0;  // entries of this word in the run and in this block's part
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          const int i = w * 8 + k;
          const uint32_t lv = word_entry(vw, k) - static_cast<uint32_t>(lo);
          if (i >= start && i < end && lv < static_cast<uint32_t>(part_voxels)) mine |= 1u << k;
        }
        if (mine == 0) continue;
        const uint4 pw = point_words[w];
        while (mine != 0) {
          int lv[kGatherBatch];
          uint32_t point[kGatherBatch];  // in the chunk (32-bit: fewer registers than row pointers)
          int nb = 0;
#pragma unroll
          for (int u = 0; u < kGatherBatch; ++u) {
            lv[u] = 0;
            point[u] = 0;
            if (mine != 0) {
              const int k = __ffs(mine) - 1;
              mine &= mine - 1;
              lv[u] = static_cast<int>(word_entry(vw, k) - static_cast<uint32_t>(lo));
              point[u] = word_entry(pw, k);
              nb = u + 1;
            }
          }
          if constexpr (kVecRow) {
            for (int q = 0; q < F; q += kPieceElems) {
              uint4 x[kGatherBatch];
#pragma unroll
              for (int u = 0; u < kGatherBatch; ++u) {
                if (u < nb) x[u] = __ldg(reinterpret_cast<const uint4*>(chunk_rows + point[u] * fe.sp + q));
              }
#pragma unroll
              for (int u = 0; u < kGatherBatch; ++u) {
                if (u >= nb) continue;
                feat_t elems[kPieceElems];
                memcpy(elems, &x[u], sizeof(x[u]));
#pragma unroll
                for (int e = 0; e < kPieceElems; ++e) {
                  accumulate<feat_t, VoxelMode::Max>(acc + lv[u] * F + q + e, static_cast<acc_t>(elems[e]));
                }
              }
            }
          } else {
            for (int ch = 0; ch < F; ++ch) {
              acc_t x[kGatherBatch];
#pragma unroll
              for (int u = 0; u < kGatherBatch; ++u) {
                if (u < nb) x[u] = static_cast<acc_t>(chunk_rows[point[u] * fe.sp + ch * fe.sc]);
              }
#pragma unroll
              for (int u = 0; u < kGatherBatch; ++u) {
                if (u < nb) accumulate<feat_t, VoxelMode::Max>(acc + lv[u] * F + ch, x[u]);
              }
            }
          }
        }
      }
    }
    __syncthreads();
    // Every voxel of the part, in the output's own layout, coalesced (32-bit offsets: V <= 2^24 here).
    if (!channels_first) {
      feat_t* part_out = out + (b * V + v0) * F;
      for (int e = threadIdx.x; e < total; e += blockDim.x) part_out[e] = voxel_value<feat_t, VoxelMode::Max>(acc[e], 0);
    } else {
      feat_t* part_out = out + b * F * V + v0;
      for (int e = threadIdx.x; e < total; e += blockDim.x) {
        const int ch = e / nv, lv = e - ch * nv;
        part_out[ch * static_cast<int>(V) + lv] = voxel_value<feat_t, VoxelMode::Max>(acc[lv * F + ch], 0);
      }
    }
    __syncthreads();  // before the next cloud resets the slots
  }
}

// ---- sum / mean of short rows, binned ------------------------------------------------------------------
// The count path's binning pass (with point numbers) and its per-voxel counts (voxelize_bin_reduce_kernel), then
// a block per part of a bin: voxelize_bin_rows_kernel. Block (bin j, part s) of cloud b owns the 2^part_log2
// voxels [s << part_log2, (s + 1) << part_log2) of bin j.
//  1. An exclusive scan of its voxels' counts gives each voxel a range of a shared-memory list.
//  2. It walks the bin's runs (for_each_part_entry) and counting-sorts its entries' point numbers by voxel into
//     that list (a shared-memory integer atomic per entry).
//  3. Each voxel's points are then consecutive in the list: a lane (a few lanes, one 16-byte piece of the row
//     each) gathers them and reduces in registers, and writes the voxel once; the voxels of the part with more
//     than kCrowdedVoxel points are reduced by the whole warp instead, so one crowded voxel does not serialise.
// Only integer atomics, which shared memory does natively: every float-atomic variant of this kernel measured
// slower than the radix sort (the shared-memory float add behaves as a compare-and-swap loop; NOTES.md).
// A part with more than kListCapacity entries (dense clouds) accumulates with shared-memory atomics instead,
// which is correct for any distribution, only slower. Each voxel's points are added in the order the atomics
// of step 2 gave (not bitwise reproducible, which SPEC.md allows for deterministic=False). H100, 16M points F=8
// into 128^3: sum 1007 -> 761 us against the radix sort. max keeps voxelize_bin_max_kernel (637 us there; this
// kernel with register maxima took 781 us).
constexpr int kBinRowsThreads = 256;
constexpr int kListCapacity = 12288;  // entries of a part that take the sorted list (48 KB of point numbers)
constexpr int kCrowdedVoxel = 32;     // points of a voxel above which its warp shares it
constexpr int kMaxRowBytes = 64;      // accumulated row: 16 float32 or 8 float64 channels

// Bit k (0..7) set when entry k of a 16-byte word of uint16 in-bin voxels is in [lo, lo + part_voxels); lolo and
// pvpv hold lo and part_voxels in both 16-bit halves, so each 32-bit operation tests two entries (an entry below lo
// wraps to at least 2^16 - 2^13, past any part).
__device__ __forceinline__ uint32_t part_entry_mask(const uint4& w, uint32_t lolo, uint32_t pvpv) {
  auto two = [&](uint32_t x) {
    const uint32_t m = __vcmpltu2(__vsub2(x, lolo), pvpv);  // 0xFFFF in each half that passes
    return (m & 1u) | ((m >> 15) & 2u);
  };
  return two(w.x) | two(w.y) << 2 | two(w.z) << 4 | two(w.w) << 6;
}

// Bit k set when position w * 8 + k of the chunk is in the run [start, end) (the word overlaps the run).
__device__ __forceinline__ uint32_t run_entry_mask(int w, int start, int end) {
  const int first = max(start - w * 8, 0), stop = min(end - w * 8, 8);
  return ((1u << stop) - 1u) & ~((1u << first) - 1u);
}

// Calls fn(lv, n) for each entry of cloud b's bin j whose in-bin voxel lo + lv is in [lo, lo + part_voxels); n is
// the point's number in its cloud. Each thread takes whole runs (one chunk's entries of the bin), kRunBatch at a
// time: their run words, then the first 16-byte word of each, are loaded together, because one run after another
// (two dependent L2 round trips each) left this walk latency-bound (ncu: 70% of the kernel's stall samples).
// The loop runs the same number of times in every thread and reconverges the warp after each batch: without the
// __syncwarp, one instantiation (mean) kept its lanes diverged through the whole walk (ncu: 6 active threads per
// warp instead of 32, 2.4x the instructions, 2.5x the time).
template <typename Fn>
__device__ __forceinline__ void for_each_part_entry(const uint16_t* __restrict__ bin_voxels,
                                                    const uint16_t* __restrict__ bin_points,
                                                    const uint32_t* __restrict__ runs, int bins, int64_t chunks,
                                                    int64_t b, int j, int lo, int part_voxels, Fn&& fn) {
  constexpr int kRunBatch = 4;
  const uint32_t* bin_runs = runs + (b * bins + j) * chunks;
  const uint32_t lolo = static_cast<uint32_t>(lo) * 0x10001u, pvpv = static_cast<uint32_t>(part_voxels) * 0x10001u;
  const uint16_t* cloud_voxels = bin_voxels + b * chunks * kBinChunk;
  const uint16_t* cloud_points = bin_points + b * chunks * kBinChunk;
  for (int64_t batch = 0; batch < chunks; batch += kRunBatch * static_cast<int64_t>(blockDim.x)) {
    uint32_t run[kRunBatch];
#pragma unroll
    for (int u = 0; u < kRunBatch; ++u) {
      const int64_t c = batch + u * static_cast<int64_t>(blockDim.x) + threadIdx.x;
      run[u] = c < chunks ? bin_runs[c] : 0u;  // length 0: nothing to do
    }
    uint4 first[kRunBatch];
#pragma unroll
    for (int u = 0; u < kRunBatch; ++u) {
      const int64_t c = batch + u * static_cast<int64_t>(blockDim.x) + threadIdx.x;
      if ((run[u] & 0xFFFFu) != 0) {
        first[u] = reinterpret_cast<const uint4*>(cloud_voxels + c * kBinChunk)[(run[u] >> 16) / 8];
      }
    }
#pragma unroll
    for (int u = 0; u < kRunBatch; ++u) {
      if ((run[u] & 0xFFFFu) == 0) continue;
      const int64_t c = batch + u * static_cast<int64_t>(blockDim.x) + threadIdx.x;
      const int start = static_cast<int>(run[u] >> 16), end = start + static_cast<int>(run[u] & 0xFFFFu);
      const uint4* voxel_words = reinterpret_cast<const uint4*>(cloud_voxels + c * kBinChunk);
      const uint4* point_words = reinterpret_cast<const uint4*>(cloud_points + c * kBinChunk);
      uint4 vw = first[u];
      for (int w = start / 8;;) {
        uint32_t mine = part_entry_mask(vw, lolo, pvpv) & run_entry_mask(w, start, end);
        if (mine != 0) {
          const uint4 pw = point_words[w];
          while (mine != 0) {
            const int k = __ffs(mine) - 1;
            mine &= mine - 1;
            fn(static_cast<int>(word_entry(vw, k) - static_cast<uint32_t>(lo)),
               static_cast<uint32_t>(c * kBinChunk) + word_entry(pw, k));
          }
        }
        if (++w * 8 >= end) break;
        vw = voxel_words[w];
      }
    }
    __syncwarp();
  }
}

// A binned sum/mean voxel's output: voxel_value, except that a float mean divides with __fdividef (at most 2 ulp
// from the IEEE quotient, for counts far below 2^126). The IEEE division's slow-path subroutine call was the one
// difference between the sum and mean builds of voxelize_bin_rows_kernel, and the mean build ran slower.
template <typename feat_t, VoxelMode kMode>
__device__ __forceinline__ feat_t binned_value(at::opmath_type<feat_t> sum, int count) {
  if constexpr (kMode == VoxelMode::Mean && std::is_same_v<at::opmath_type<feat_t>, float>) {
    return static_cast<feat_t>(count > 0 ? __fdividef(sum, static_cast<float>(count)) : 0.0f);
  } else {
    return voxel_value<feat_t, kMode>(sum, count);
  }
}

// kVecRow: rows of F contiguous elements in 16-byte aligned pieces, one piece per lane (pieces = F / kElems, up
// to 4 lanes per voxel); else each lane reduces whole rows element by element (any strides).
template <typename feat_t, VoxelMode kMode, bool kVecRow>
__global__ void __launch_bounds__(kBinRowsThreads, 3)
    voxelize_bin_rows_kernel(const uint16_t* __restrict__ bin_voxels, const uint16_t* __restrict__ bin_points,
                             const uint32_t* __restrict__ runs, const int32_t* __restrict__ counts, int bins,
                             int64_t chunks, int part_log2, int64_t B,
                             int64_t N, int64_t V, int F, FlatFeatures<feat_t> fe, bool channels_first,
                             feat_t* __restrict__ out) {
  static_assert(kMode == VoxelMode::Sum || kMode == VoxelMode::Mean, "max has its own binned kernel");
  using acc_t = at::opmath_type<feat_t>;
  using slot_t = reduce_slot_t<feat_t, kMode>;  // == acc_t
  // Channels a lane reduces: one 16-byte piece, or a whole row.
  constexpr int kElems = kVecRow ? 16 / static_cast<int>(sizeof(feat_t)) : kMaxRowBytes / static_cast<int>(sizeof(acc_t));
  // List entries whose loads are in flight together per lane (2 for float64, which needs more registers).
  constexpr int kGatherBatch = sizeof(acc_t) == 8 ? 2 : 4;
  constexpr int kWarps = kBinRowsThreads / 32;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ uint32_t warp_total[kWarps];
  const int part_voxels = 1 << part_log2;
  uint32_t* offset = reinterpret_cast<uint32_t*>(smem);  // [part_voxels + 1]
  unsigned char* region = smem + ((part_voxels + 1) * sizeof(uint32_t) + 15) / 16 * 16;
  uint32_t* list = reinterpret_cast<uint32_t*>(region);  // [kListCapacity] point numbers, sorted by voxel
  slot_t* acc = reinterpret_cast<slot_t*>(region);       // or [part_voxels * F] slots (0 = empty) for a dense part

  const BinPart part = bin_part(part_log2);
  const int j = part.j, lo = part.lo;
  const int64_t v0 = part.v0;
  if (v0 >= V) return;  // a part past the end of a small grid (the whole block leaves)
  const int nv = static_cast<int>(min(static_cast<int64_t>(part_voxels), V - v0));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int pieces = kVecRow ? F / kElems : 1;
  const int lanes_per_voxel = pieces > 2 ? 4 : pieces;  // a power of two, for the warp reduction
  const int voxels_per_warp = 32 / lanes_per_voxel;
  const int piece = lane % lanes_per_voxel, slot = lane / lanes_per_voxel;
  const int c0 = kVecRow ? piece * kElems : 0;  // this lane's first channel
  const bool lane_has_piece = piece < pieces;

  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const feat_t* cloud_rows = fe.ptr + b * N * fe.sp;
    for (int i = threadIdx.x; i <= part_voxels; i += blockDim.x) {
      offset[i] = i < nv ? static_cast<uint32_t>(counts[b * V + v0 + i]) : 0u;
    }
    __syncthreads();
    const uint32_t total =
        block_exclusive_scan<kBinRowsThreads>(offset, part_voxels + 1, warp_total, [](int, uint32_t, uint32_t) {});

    if (total > static_cast<uint32_t>(kListCapacity)) {
      // Dense part: shared-memory atomics into acc, then every voxel of the part written from its slots.
      for (int e = threadIdx.x; e < part_voxels * F; e += blockDim.x) acc[e] = slot_t(0);
      __syncthreads();
      for_each_part_entry(bin_voxels, bin_points, runs, bins, chunks, b, j, lo, part_voxels,
                          [&](int lv, uint32_t n) {
                                  const feat_t* row = cloud_rows + static_cast<int64_t>(n) * fe.sp;
                                  for (int ch = 0; ch < F; ++ch) {
                                    accumulate<feat_t, kMode>(acc + lv * F + ch, static_cast<acc_t>(row[ch * fe.sc]));
                                  }
                                });
      __syncthreads();
      const int total_elems = nv * F;
      if (!channels_first) {
        feat_t* part_out = out + (b * V + v0) * F;
        for (int e = threadIdx.x; e < total_elems; e += blockDim.x) {
          const int lv = e / F;
          part_out[e] = binned_value<feat_t, kMode>(acc[e], static_cast<int>(offset[lv + 1] - offset[lv]));
        }
      } else {
        feat_t* part_out = out + b * F * V + v0;
        for (int e = threadIdx.x; e < total_elems; e += blockDim.x) {
          const int ch = e / nv, lv = e - ch * nv;
          part_out[ch * V + lv] =
              binned_value<feat_t, kMode>(acc[lv * F + ch], static_cast<int>(offset[lv + 1] - offset[lv]));
        }
      }
      __syncthreads();  // before the next cloud resets offset and acc
      continue;
    }

    // Sorted list: each entry's place is its voxel's offset, advanced by one per entry. Afterwards offset[lv] is
    // where voxel lv's points end, so they are list[lv > 0 ? offset[lv - 1] : 0 .. offset[lv]).
    for_each_part_entry(bin_voxels, bin_points, runs, bins, chunks, b, j, lo, part_voxels,
                        [&](int lv, uint32_t n) { list[atomicAdd(offset + lv, 1u)] = n; });
    __syncthreads();

    // Adds the points list[i], list[i + stride], ... below `end` into r (this lane's channels), kGatherBatch
    // rows in flight at a time.
    auto reduce_points = [&](slot_t (&r)[kElems], uint32_t i, uint32_t end, uint32_t stride) {
      for (; i < end; i += kGatherBatch * stride) {
        const feat_t* row[kGatherBatch];
#pragma unroll
        for (int u = 0; u < kGatherBatch; ++u) {
          const uint32_t k = i + u * stride;
          row[u] = k < end ? cloud_rows + static_cast<int64_t>(list[k]) * fe.sp : nullptr;
        }
        if constexpr (kVecRow) {
          uint4 x[kGatherBatch];
#pragma unroll
          for (int u = 0; u < kGatherBatch; ++u) {
            if (row[u] != nullptr) x[u] = __ldg(reinterpret_cast<const uint4*>(row[u] + c0));
          }
#pragma unroll
          for (int u = 0; u < kGatherBatch; ++u) {
            if (row[u] == nullptr) continue;
            feat_t elems[kElems];
            memcpy(elems, &x[u], sizeof(x[u]));
#pragma unroll
            for (int e = 0; e < kElems; ++e) r[e] += static_cast<acc_t>(elems[e]);
          }
        } else {
#pragma unroll
          for (int ch = 0; ch < kElems; ++ch) {
            if (ch >= F) break;
            acc_t x[kGatherBatch];
#pragma unroll
            for (int u = 0; u < kGatherBatch; ++u) {
              if (row[u] != nullptr) x[u] = static_cast<acc_t>(row[u][ch * fe.sc]);
            }
#pragma unroll
            for (int u = 0; u < kGatherBatch; ++u) {
              if (row[u] != nullptr) r[ch] += x[u];
            }
          }
        }
      }
    };

    for (int base = warp * voxels_per_warp; base < nv; base += kWarps * voxels_per_warp) {
      const int lv = base + slot;
      const uint32_t s = lv < nv ? (lv > 0 ? offset[lv - 1] : 0u) : 0u;
      const uint32_t e = lv < nv ? offset[lv] : 0u;
      const bool crowded = e - s > kCrowdedVoxel;
      slot_t r[kElems];
#pragma unroll
      for (int k = 0; k < kElems; ++k) r[k] = slot_t(0);
      if (!crowded && lane_has_piece) reduce_points(r, s, e, 1);
      // Crowded voxels, one at a time: the warp's voxel slots split the points, then a butterfly over the slots
      // (lanes of the same piece) sums them and the voxel's own lanes keep the result.
      uint32_t crowded_voxels = __ballot_sync(0xffffffffu, crowded && piece == 0);
      while (crowded_voxels != 0) {
        const int owner = __ffs(crowded_voxels) - 1;
        crowded_voxels &= crowded_voxels - 1;
        const uint32_t cs = __shfl_sync(0xffffffffu, s, owner), ce = __shfl_sync(0xffffffffu, e, owner);
        slot_t p[kElems];
#pragma unroll
        for (int k = 0; k < kElems; ++k) p[k] = slot_t(0);
        if (lane_has_piece) reduce_points(p, cs + slot, ce, voxels_per_warp);
        for (int d = lanes_per_voxel; d < 32; d *= 2) {
#pragma unroll
          for (int k = 0; k < kElems; ++k) p[k] += __shfl_xor_sync(0xffffffffu, p[k], d);
        }
        if (slot == owner / lanes_per_voxel) {
#pragma unroll
          for (int k = 0; k < kElems; ++k) r[k] = p[k];
        }
      }
      if (lv >= nv || !lane_has_piece) continue;
      const int count = static_cast<int>(e - s);
      if (!channels_first) {
        feat_t* dst = out + (b * V + v0 + lv) * F + c0;
        if constexpr (kVecRow) {
          feat_t values[kElems];
#pragma unroll
          for (int k = 0; k < kElems; ++k) values[k] = binned_value<feat_t, kMode>(r[k], count);
          uint4 word;
          memcpy(&word, values, sizeof(word));
          *reinterpret_cast<uint4*>(dst) = word;
        } else {
#pragma unroll
          for (int k = 0; k < kElems; ++k) {
            if (k >= F) break;
            dst[k] = binned_value<feat_t, kMode>(r[k], count);
          }
        }
      } else {
#pragma unroll
        for (int k = 0; k < kElems; ++k) {
          if (c0 + k >= F) break;
          out[(b * F + c0 + k) * V + v0 + lv] = binned_value<feat_t, kMode>(r[k], count);
        }
      }
    }
    __syncthreads();  // before the next cloud resets offset and the list
  }
}

// Deterministic sum/mean: one thread per output element (voxel g, channel c), adding the voxel's points
// sorted[starts[g] .. starts[g+1]) in increasing point index. Output element e is written in place, so
// both layouts are coalesced.
template <typename feat_t>
__global__ void voxelize_ordered_reduce_kernel(const int32_t* __restrict__ starts, const int32_t* __restrict__ vals,
                                               FlatFeatures<feat_t> fe, int64_t BV, int64_t V, int64_t F, bool mean,
                                               bool channels_first, feat_t* __restrict__ out) {
  using acc_t = at::opmath_type<feat_t>;
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= BV * F) return;
  int64_t g, c;
  if (!channels_first) {
    g = e / F;
    c = e - g * F;
  } else {
    const int64_t bc = e / V, v = e - bc * V, b = bc / F;
    c = bc - b * F;
    g = b * V + v;
  }
  const int64_t s = starts[g], t = starts[g + 1];
  const feat_t* col = fe.ptr + c * fe.sc;
  auto load = [&](int64_t i) { return static_cast<acc_t>(col[static_cast<int64_t>(vals[i]) * fe.sp]); };
  // Loads 4 at a time (independent), additions strictly in point order (the deterministic contract).
  acc_t acc = acc_t(0);
  int64_t i = s;
  for (; i + 4 <= t; i += 4) {
    const acc_t x0 = load(i), x1 = load(i + 1), x2 = load(i + 2), x3 = load(i + 3);
    acc += x0;
    acc += x1;
    acc += x2;
    acc += x3;
  }
  for (; i < t; ++i) acc += load(i);
  if (mean && t > s) acc = acc / static_cast<acc_t>(t - s);
  out[e] = static_cast<feat_t>(acc);
}

// ---- backward ----------------------------------------------------------------------------------------

// Features [B,N,F] by strides (the backward reads them in place).
template <typename feat_t>
struct StridedFeatures {
  const feat_t* ptr;
  int64_t sb, sn, sc;
};

// max: arg[g*F + c] = lowest n among the points of voxel g whose feature c equals the voxel's maximum
// (NaN matches NaN). arg starts at INT32_MAX; integer atomicMin makes it deterministic.
template <typename feat_t>
__global__ void voxelize_max_arg_kernel(const int64_t* __restrict__ keys, StridedFeatures<feat_t> fe,
                                        const feat_t* __restrict__ out_cl, int64_t B, int64_t N, int64_t BV, int64_t F,
                                        int32_t* __restrict__ arg) {
  using acc_t = at::opmath_type<feat_t>;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= N) return;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const int64_t g = keys[b * N + n];
    if (g >= BV) continue;
    const feat_t* row = fe.ptr + b * fe.sb + n * fe.sn;
    for (int64_t c = 0; c < F; ++c) {
      const acc_t x = static_cast<acc_t>(row[c * fe.sc]), m = static_cast<acc_t>(out_cl[g * F + c]);
      if (x == m || (x != x && m != m)) atomicMin(arg + g * F + c, static_cast<int32_t>(n));
    }
  }
}

// grad_features[b,n,c] = grad_out[g,c] (sum), grad_out[g,c] / count[g] (mean), grad_out[g,c] if
// arg[g,c] == n (max); 0 for dropped points. grad_out is contiguous channels-last [BV, F].
template <typename feat_t, VoxelMode kMode>
__global__ void voxelize_backward_kernel(const int64_t* __restrict__ keys, const feat_t* __restrict__ grad_out,
                                         const int32_t* __restrict__ count, const int32_t* __restrict__ arg, int64_t B,
                                         int64_t N, int64_t BV, int64_t F, feat_t* __restrict__ grad_features) {
  using acc_t = at::opmath_type<feat_t>;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= N) return;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const int64_t g = keys[b * N + n];
    feat_t* row = grad_features + (b * N + n) * F;
    for (int64_t c = 0; c < F; ++c) {
      acc_t r = acc_t(0);
      if (g < BV) {
        const int64_t k = g * F + c;
        if constexpr (kMode == VoxelMode::Sum) {
          r = static_cast<acc_t>(grad_out[k]);
        } else if constexpr (kMode == VoxelMode::Mean) {
          r = static_cast<acc_t>(grad_out[k]) / static_cast<acc_t>(count[g]);
        } else {
          if (arg[k] == static_cast<int32_t>(n)) r = static_cast<acc_t>(grad_out[k]);
        }
      }
      row[c] = static_cast<feat_t>(r);
    }
  }
}

// ---- host side ---------------------------------------------------------------------------------------

int floor_log2(int64_t x) { return 63 - __builtin_clzll(static_cast<unsigned long long>(x)); }
int bit_width(int64_t x) { return x <= 0 ? 0 : floor_log2(x) + 1; }

template <typename scalar_t>
PointsRef<scalar_t> points_ref(const at::Tensor& points, const at::Tensor& lengths, const VoxelizeArgs& a) {
  return {points.const_data_ptr<scalar_t>(),
          points.stride(0),
          points.stride(1),
          points.stride(2),
          lengths.defined() ? lengths.const_data_ptr<int64_t>() : nullptr,
          a.B,
          a.N};
}

// Packed float32 rows whose clouds start on 16-byte boundaries: 4 points = 3 aligned float4 loads.
bool can_vectorize(const at::Tensor& points) {
  return points.scalar_type() == at::kFloat && points.stride(2) == 1 && points.stride(1) == 3 &&
         (points.size(0) == 1 || points.stride(0) % 4 == 0) &&
         reinterpret_cast<uintptr_t>(points.const_data_ptr()) % 16 == 0;
}

dim3 point_grid(int64_t N, int64_t clouds) {
  return dim3(static_cast<unsigned>(ceil_div(N, kPointsPerBlock)),
              static_cast<unsigned>(std::min<int64_t>(clouds, kMaxGridY)));
}

// The binned paths (see voxelize_bin_kernel) where a cloud's grid has at most kMaxBins bins, unless the tuning
// override ROBOCACHE_TUNE_VOXEL_BINNED=0 (profiling only) asks for the one-pass atomics (count/occupancy) and
// the radix sort (max). (At 1M points into 128^3 the two count paths measured within noise of each
// other: 21-25 us.)
bool use_binned(const VoxelizeArgs& a) {
  static const bool allowed = env_int("ROBOCACHE_TUNE_VOXEL_BINNED", 1) != 0;
  return allowed && ceil_div(a.V, kBinVoxels) <= kMaxBins;
}

// The binning pass shared by count/occupancy and the binned max: in-bin voxel numbers (and, when with_points,
// point numbers) grouped by bin within each chunk, and the run words.
struct BinnedPoints {
  at::Tensor voxels, points, runs;  // int16 (read as uint16), int16 or undefined, int32 (read as uint32)
  int bins;
  int64_t chunks;
};

BinnedPoints launch_binning(const at::Tensor& points, const at::Tensor& lengths, const VoxelizeArgs& a,
                            bool with_points) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  BinnedPoints bp;
  bp.bins = static_cast<int>(ceil_div(a.V, kBinVoxels));
  bp.chunks = ceil_div(a.N, kBinChunk);
  const auto opts = points.options();
  // Held as int16/int32 tensors (the unsigned dtypes are not supported by every op, e.g. the deterministic
  // fill of fresh memory in older torch releases) and read as unsigned by the kernels.
  bp.voxels = at::empty({a.B * bp.chunks * kBinChunk}, opts.dtype(at::kShort));
  if (with_points) bp.points = at::empty_like(bp.voxels);
  bp.runs = at::empty({a.B * bp.bins * bp.chunks}, opts.dtype(at::kInt));
  const dim3 bin_grid(static_cast<unsigned>(bp.chunks), static_cast<unsigned>(std::min<int64_t>(a.B, kMaxGridY)));
  auto* vox = reinterpret_cast<uint16_t*>(bp.voxels.mutable_data_ptr<int16_t>());
  auto* pts = with_points ? reinterpret_cast<uint16_t*>(bp.points.mutable_data_ptr<int16_t>()) : nullptr;
  auto* run = reinterpret_cast<uint32_t*>(bp.runs.mutable_data_ptr<int32_t>());
  TORCH_INTERNAL_ASSERT(reinterpret_cast<uintptr_t>(vox) % 16 == 0 && reinterpret_cast<uintptr_t>(pts) % 16 == 0,
                        "voxelize: the bin buffers must be 16-byte aligned");
  const size_t bin_smem = bp.bins * sizeof(uint32_t);
  auto launch = [&](auto with_points_tag) {
    constexpr bool kPoints = decltype(with_points_tag)::value;
    if (can_vectorize(points)) {
      voxelize_bin_kernel<float, true, kPoints, 5><<<bin_grid, kThreads, bin_smem, stream>>>(
          points_ref<float>(points, lengths, a), make_voxel_grid<float>(a), bp.bins, bp.chunks, vox, pts, run);
    } else {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, points.scalar_type(), "voxelize_bin_cuda", [&] {
        // Scalar loads (and float64 math) need more registers: 4 blocks per SM.
        voxelize_bin_kernel<scalar_t, false, kPoints, 4><<<bin_grid, kThreads, bin_smem, stream>>>(
            points_ref<scalar_t>(points, lengths, a), make_voxel_grid<coord_type<scalar_t>>(a), bp.bins, bp.chunks,
            vox, pts, run);
      });
    }
  };
  if (with_points) {
    launch(std::true_type{});
  } else {
    launch(std::false_type{});
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return bp;
}

// Every voxel's count (int32) or occupancy (bool) into `out` [B*V] from the binned points (no memset needed).
void launch_bin_reduce(const BinnedPoints& bp, const VoxelizeArgs& a, bool occupancy, at::Tensor& out) {
  const auto* vox = reinterpret_cast<const uint16_t*>(bp.voxels.const_data_ptr<int16_t>());
  const auto* run = reinterpret_cast<const uint32_t*>(bp.runs.const_data_ptr<int32_t>());
  const dim3 reduce_grid(static_cast<unsigned>(bp.bins), static_cast<unsigned>(std::min<int64_t>(a.B, kMaxGridY)));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (occupancy) {
    voxelize_bin_reduce_kernel<true><<<reduce_grid, kBinReduceThreads, 0, stream>>>(
        vox, run, bp.bins, bp.chunks, a.B, a.V, out.mutable_data_ptr<bool>());
  } else {
    voxelize_bin_reduce_kernel<false><<<reduce_grid, kBinReduceThreads, 0, stream>>>(
        vox, run, bp.bins, bp.chunks, a.B, a.V, out.mutable_data_ptr<int32_t>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void launch_binned_count(const at::Tensor& points, const at::Tensor& lengths, const VoxelizeArgs& a, bool occupancy,
                         at::Tensor& out) {
  launch_bin_reduce(launch_binning(points, lengths, a, /*with_points=*/false), a, occupancy, out);
}

// count/occupancy into `out` ([B,X,Y,Z] int32 or bool, contiguous), zeroing it group by group.
void launch_count(const at::Tensor& points, const at::Tensor& lengths, const VoxelizeArgs& a, bool occupancy,
                  at::Tensor& out) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t cloud_bytes = a.V * static_cast<int64_t>(out.element_size());
  const int64_t group = std::max<int64_t>(1, kL2GroupBytes / cloud_bytes);
  const bool vec = can_vectorize(points);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, points.scalar_type(), "voxelize_count_cuda", [&] {
    const VoxelGrid<coord_type<scalar_t>> grid = make_voxel_grid<coord_type<scalar_t>>(a);
    const PointsRef<scalar_t> P = points_ref<scalar_t>(points, lengths, a);
    for (int64_t b0 = 0; b0 < a.B; b0 += group) {
      const int64_t b1 = std::min(a.B, b0 + group);
      char* bytes = static_cast<char*>(out.mutable_data_ptr());
      C10_CUDA_CHECK(cudaMemsetAsync(bytes + b0 * cloud_bytes, 0, (b1 - b0) * cloud_bytes, stream));
      const dim3 blocks = point_grid(a.N, b1 - b0);
      if (occupancy) {
        if (vec) {
          voxelize_count_kernel<float, true, true>
              <<<blocks, kThreads, 0, stream>>>(points_ref<float>(points, lengths, a), make_voxel_grid<float>(a), a.V,
                                                b0, b1, out.mutable_data_ptr<bool>());
        } else {
          voxelize_count_kernel<scalar_t, false, true>
              <<<blocks, kThreads, 0, stream>>>(P, grid, a.V, b0, b1, out.mutable_data_ptr<bool>());
        }
      } else {
        if (vec) {
          voxelize_count_kernel<float, true, false>
              <<<blocks, kThreads, 0, stream>>>(points_ref<float>(points, lengths, a), make_voxel_grid<float>(a), a.V,
                                                b0, b1, out.mutable_data_ptr<int32_t>());
        } else {
          voxelize_count_kernel<scalar_t, false, false>
              <<<blocks, kThreads, 0, stream>>>(P, grid, a.V, b0, b1, out.mutable_data_ptr<int32_t>());
        }
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
}

// keys[b*N + n] (and vals = flat point index if `vals` is defined) for every point.
template <typename key_t>
void launch_keys(const at::Tensor& points, const at::Tensor& lengths, const VoxelizeArgs& a, at::Tensor& keys,
                 at::Tensor& vals) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const dim3 blocks = point_grid(a.N, a.B);
  key_t* k = keys.mutable_data_ptr<key_t>();
  int32_t* v = vals.defined() ? vals.mutable_data_ptr<int32_t>() : nullptr;
  if (can_vectorize(points)) {
    voxelize_keys_kernel<float, true, key_t>
        <<<blocks, kThreads, 0, stream>>>(points_ref<float>(points, lengths, a), make_voxel_grid<float>(a), a.V, k, v);
  } else {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, points.scalar_type(), "voxelize_keys_cuda", [&] {
      voxelize_keys_kernel<scalar_t, false, key_t><<<blocks, kThreads, 0, stream>>>(
          points_ref<scalar_t>(points, lengths, a), make_voxel_grid<coord_type<scalar_t>>(a), a.V, k, v);
    });
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Positions in the sorted keys where each bin of 2^shift voxels starts: int32 [nbins + 1].
template <typename key_t>
at::Tensor bin_starts(const at::Tensor& sorted_keys, int shift, int64_t nbins) {
  at::Tensor starts = at::empty({nbins + 1}, sorted_keys.options().dtype(at::kInt));
  constexpr int threads = 256;
  bin_starts_kernel<key_t>
      <<<static_cast<unsigned>(ceil_div(nbins + 1, threads)), threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          sorted_keys.const_data_ptr<key_t>(), sorted_keys.numel(), shift, nbins, starts.mutable_data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return starts;
}

// Tile size and channel chunk of the fast path: as many voxels as fit in `smem_budget` bytes of shared
// memory with Fc channels each, but small enough that there are a few tiles per SM to spread the work.
struct TilePlan {
  int log2T, Fc, lanes;
  size_t smem;
};

int device_attribute(cudaDeviceAttr attr) {
  int value = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&value, attr, c10::cuda::current_device()));
  return value;
}

TilePlan plan_tiles(const VoxelizeArgs& a, size_t slot_bytes) {
  const int64_t budget = std::min<int64_t>(device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin), 96 << 10);
  const int64_t sms = device_attribute(cudaDevAttrMultiProcessorCount);
  TilePlan p;
  p.Fc = static_cast<int>(std::min<int64_t>(a.F, 32));
  const int64_t per_voxel = p.Fc * static_cast<int64_t>(slot_bytes) + (a.mode == VoxelMode::Mean ? 4 : 0);
  const int64_t by_smem = std::max<int64_t>(1, budget / per_voxel);
  const int64_t by_work = std::max<int64_t>(64, a.BV / (4 * sms));
  const int64_t T = std::min<int64_t>({by_smem, by_work, 8192});
  p.log2T = floor_log2(T);
  p.lanes = 1;
  while (p.lanes < p.Fc) p.lanes *= 2;
  p.smem = static_cast<size_t>(per_voxel) << p.log2T;
  return p;
}

// Lets `kernel` take `smem` bytes of dynamic shared memory (above the default 48 KB it must ask).
template <typename Kernel>
void allow_dynamic_smem(Kernel kernel, size_t smem) {
  if (smem > (48 << 10)) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
}

template <typename feat_t, VoxelMode kMode, typename key_t>
void launch_tile_reduce(const at::Tensor& keys, const at::Tensor& vals, const at::Tensor& starts,
                        const FlatFeatures<feat_t>& fe, const VoxelizeArgs& a, const TilePlan& p, at::Tensor& out) {
  auto kernel = voxelize_tile_reduce_kernel<feat_t, kMode, key_t>;
  allow_dynamic_smem(kernel, p.smem);
  const dim3 blocks(static_cast<unsigned>(starts.numel() - 1), static_cast<unsigned>(ceil_div(a.F, p.Fc)));
  kernel<<<blocks, kReduceThreads, p.smem, c10::cuda::getCurrentCUDAStream()>>>(
      keys.const_data_ptr<key_t>(), vals.const_data_ptr<int32_t>(), starts.const_data_ptr<int32_t>(), fe, a.BV, a.V,
      a.F, p.log2T, p.Fc, p.lanes, a.channels_first, out.mutable_data_ptr<feat_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Binned max (voxelize_bin_max_kernel) for grids of at most kMaxBins bins whose feature rows are short enough
// that a part of at least kBinVoxels / 8 voxels takes at most kPartBytes of shared memory (up to 16 channels of
// float32/float16/bfloat16, 8 of float64): every bin is then read by at most 8 blocks. Returns log2 of the part
// size, or -1 for the sort path.
constexpr int64_t kPartBytes = 72 << 10;  // 3 blocks per SM

int binned_max_part_log2(const VoxelizeArgs& a, at::ScalarType dtype) {
  if (a.mode != VoxelMode::Max || !use_binned(a)) return -1;
  const int64_t per_voxel = a.F * static_cast<int64_t>(dtype == at::kDouble ? 8 : 4);
  const int64_t fit = kPartBytes / per_voxel;
  if (fit < kBinVoxels / 8) return -1;
  return std::min(kBinVoxelsLog2, floor_log2(fit));
}

// The binned feature kernels' kVecRow: rows of F contiguous elements in 16-byte aligned pieces.
template <typename feat_t>
bool vec_rows(const FlatFeatures<feat_t>& fe, int64_t F) {
  return fe.sc == 1 && pick_vector_width<feat_t>(fe.ptr, F, {fe.sp}) == 16 / sizeof(feat_t);
}

// A block per (part of a bin, cloud) for the binned feature kernels.
dim3 part_grid(const BinnedPoints& bp, const VoxelizeArgs& a, int part_log2) {
  return dim3(static_cast<unsigned>(bp.bins) << (kBinVoxelsLog2 - part_log2),
              static_cast<unsigned>(std::min<int64_t>(a.B, kMaxGridY)));
}

template <typename feat_t>
void launch_binned_max(const BinnedPoints& bp, const FlatFeatures<feat_t>& fe, const VoxelizeArgs& a, int part_log2,
                       at::Tensor& out) {
  auto kernel = vec_rows(fe, a.F) ? voxelize_bin_max_kernel<feat_t, true> : voxelize_bin_max_kernel<feat_t, false>;
  const size_t smem = (size_t{1} << part_log2) * a.F * sizeof(reduce_slot_t<feat_t, VoxelMode::Max>);
  allow_dynamic_smem(kernel, smem);
  kernel<<<part_grid(bp, a, part_log2), kBinMaxThreads, smem, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const uint16_t*>(bp.voxels.const_data_ptr<int16_t>()),
      reinterpret_cast<const uint16_t*>(bp.points.const_data_ptr<int16_t>()),
      reinterpret_cast<const uint32_t*>(bp.runs.const_data_ptr<int32_t>()), bp.bins, bp.chunks, part_log2, a.B, a.N,
      a.V, static_cast<int>(a.F), fe, a.channels_first, out.mutable_data_ptr<feat_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Binned sum/mean (voxelize_bin_rows_kernel) for grids of at most kMaxBins bins and rows of up to kMaxRowBytes
// accumulated. The part size is set so that a cloud of uniform density puts about 3/4 of kListCapacity entries
// (every point counted, in the grid or not) in a part, up to 1024 voxels. Denser clouds would need parts of fewer
// than 256 voxels (each re-reading its bin's runs) and take the sort path. Returns log2 of the part size, or -1.
constexpr int kMinPartLog2 = 8, kMaxPartLog2 = 10;

int binned_rows_part_log2(const VoxelizeArgs& a, at::ScalarType dtype) {
  if (a.mode == VoxelMode::Max || !use_binned(a) || a.F * (dtype == at::kDouble ? 8 : 4) > kMaxRowBytes) return -1;
  const int64_t fit = std::max<int64_t>(1, int64_t{kListCapacity} * 3 / 4 * a.V / std::max<int64_t>(a.N, 1));
  const int log2 = std::min(kMaxPartLog2, floor_log2(fit));
  return log2 >= kMinPartLog2 ? log2 : -1;
}

template <typename feat_t, VoxelMode kMode>
void launch_binned_rows(const BinnedPoints& bp, const FlatFeatures<feat_t>& fe, const VoxelizeArgs& a, int part_log2,
                        at::Tensor& out) {
  at::Tensor counts = at::empty({a.B * a.V}, bp.runs.options());  // every voxel's point count
  launch_bin_reduce(bp, a, /*occupancy=*/false, counts);

  auto kernel = vec_rows(fe, a.F) ? voxelize_bin_rows_kernel<feat_t, kMode, true>
                                  : voxelize_bin_rows_kernel<feat_t, kMode, false>;
  const size_t part_voxels = size_t{1} << part_log2;
  const size_t offsets = ((part_voxels + 1) * sizeof(uint32_t) + 15) / 16 * 16;
  const size_t slots = part_voxels * a.F * sizeof(reduce_slot_t<feat_t, kMode>);
  const size_t smem = offsets + std::max(kListCapacity * sizeof(uint32_t), slots);
  allow_dynamic_smem(kernel, smem);
  kernel<<<part_grid(bp, a, part_log2), kBinRowsThreads, smem, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const uint16_t*>(bp.voxels.const_data_ptr<int16_t>()),
      reinterpret_cast<const uint16_t*>(bp.points.const_data_ptr<int16_t>()),
      reinterpret_cast<const uint32_t*>(bp.runs.const_data_ptr<int32_t>()), counts.const_data_ptr<int32_t>(),
      bp.bins, bp.chunks, part_log2, a.B, a.N, a.V, static_cast<int>(a.F), fe, a.channels_first,
      out.mutable_data_ptr<feat_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Features addressed by flat point index p = b*N + n: true for contiguous [B,N,F] and most views; else a copy.
at::Tensor flat_features(const at::Tensor& features, const VoxelizeArgs& a) {
  return (a.B == 1 || features.stride(0) == a.N * features.stride(1)) ? features : features.contiguous();
}

// sum/mean/max: keys, stable radix sort, then the tile reduction (fast) or the ordered reduction (deterministic
// sum/mean); max of short rows and fast sum/mean of short rows in sparse enough clouds take the binned paths.
template <typename key_t>
void voxelize_features(const at::Tensor& points, const at::Tensor& lengths, const at::Tensor& features,
                       const VoxelizeArgs& a, bool ordered, at::Tensor& out) {
  const int max_part_log2 = binned_max_part_log2(a, features.scalar_type());                   // max only
  const int rows_part_log2 = ordered ? -1 : binned_rows_part_log2(a, features.scalar_type());  // sum/mean only
  if (max_part_log2 >= 0 || rows_part_log2 >= 0) {
    const BinnedPoints bp = launch_binning(points, lengths, a, /*with_points=*/true);
    const at::Tensor f = flat_features(features, a);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "voxelize_binned_features_cuda", [&] {
      const FlatFeatures<scalar_t> fe{f.const_data_ptr<scalar_t>(), f.stride(1), f.stride(2)};
      if (max_part_log2 >= 0) {
        launch_binned_max<scalar_t>(bp, fe, a, max_part_log2, out);
      } else if (a.mode == VoxelMode::Mean) {
        launch_binned_rows<scalar_t, VoxelMode::Mean>(bp, fe, a, rows_part_log2, out);
      } else {
        launch_binned_rows<scalar_t, VoxelMode::Sum>(bp, fe, a, rows_part_log2, out);
      }
    });
    return;
  }
  const int64_t M = a.B * a.N;
  const auto opts = points.options();
  at::Tensor keys = at::empty({M}, opts.dtype(c10::CppTypeToScalarType<key_t>::value));
  at::Tensor vals = at::empty({M}, opts.dtype(at::kInt));
  launch_keys<key_t>(points, lengths, a, keys, vals);

  const size_t acc_bytes = features.scalar_type() == at::kDouble ? 8 : 4;
  const TilePlan plan = plan_tiles(a, acc_bytes);
  // Only the bits of g from `shift` up matter; the sentinel B*V needs bit_width(B*V) bits. A grid that
  // is one tile needs no sort at all.
  const int shift = ordered ? 0 : plan.log2T;
  const int end_bit = bit_width(a.BV);
  at::Tensor sorted_keys = keys, sorted_vals = vals;
  if (shift < end_bit) {
    sorted_keys = at::empty_like(keys);
    sorted_vals = at::empty_like(vals);
    at::cuda::cub::radix_sort_pairs<key_t, int32_t>(
        keys.const_data_ptr<key_t>(), sorted_keys.mutable_data_ptr<key_t>(), vals.const_data_ptr<int32_t>(),
        sorted_vals.mutable_data_ptr<int32_t>(), M, /*descending=*/false, shift, end_bit);
  }
  const at::Tensor f = flat_features(features, a);

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, f.scalar_type(), "voxelize_features_cuda", [&] {
    const FlatFeatures<scalar_t> fe{f.const_data_ptr<scalar_t>(), f.stride(1), f.stride(2)};
    if (ordered) {
      const at::Tensor starts = bin_starts<key_t>(sorted_keys, 0, a.BV);
      constexpr int threads = 256;
      voxelize_ordered_reduce_kernel<scalar_t>
          <<<static_cast<unsigned>(ceil_div(a.BV * a.F, threads)), threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
              starts.const_data_ptr<int32_t>(), sorted_vals.const_data_ptr<int32_t>(), fe, a.BV, a.V, a.F,
              a.mode == VoxelMode::Mean, a.channels_first, out.mutable_data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      return;
    }
    const at::Tensor starts = bin_starts<key_t>(sorted_keys, plan.log2T, ceil_div(a.BV, int64_t{1} << plan.log2T));
    switch (a.mode) {
      case VoxelMode::Sum:
        launch_tile_reduce<scalar_t, VoxelMode::Sum, key_t>(sorted_keys, sorted_vals, starts, fe, a, plan, out);
        break;
      case VoxelMode::Mean:
        launch_tile_reduce<scalar_t, VoxelMode::Mean, key_t>(sorted_keys, sorted_vals, starts, fe, a, plan, out);
        break;
      default:
        launch_tile_reduce<scalar_t, VoxelMode::Max, key_t>(sorted_keys, sorted_vals, starts, fe, a, plan, out);
        break;
    }
  });
}

// ---- occupancy, cluster bitmask: host side -----------------------------------------------------------

// The mask kernel's shape for one call: 2^word_log2 mask words per block, `cluster` blocks per cloud mask, each
// cloud split into `units` slices of unit_points points (one cluster each).
struct MaskPlan {
  int word_log2 = 0, cluster = 0;
  int64_t units = 0, unit_points = 0;
  size_t smem = 0;
};

cudaLaunchConfig_t mask_launch_config(const MaskPlan& p, int64_t clusters, cudaStream_t stream,
                                      cudaLaunchAttribute* attr) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(clusters * p.cluster));
  cfg.blockDim = dim3(kMaskThreads);
  cfg.dynamicSmemBytes = p.smem;
  cfg.stream = stream;
  attr->id = cudaLaunchAttributeClusterDimension;
  attr->val.clusterDim.x = static_cast<unsigned>(p.cluster);
  attr->val.clusterDim.y = attr->val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cfg;
}

// How many clusters of this shape run at once on the current device; 0 where none can, and where the kernel's
// code was not compiled for sm_90 or newer (a build without 9.0 in TORCH_CUDA_ARCH_LIST, or a GPU older than
// Hopper), whose body is empty. Asked once per kernel, device and shape: driver queries, no sync.
template <typename Kernel>
int active_mask_clusters(Kernel kernel, const MaskPlan& p) {
  static std::mutex lock;
  static std::map<std::tuple<const void*, int, int, int>, int> cache;
  const int device = c10::cuda::current_device();
  const auto key = std::make_tuple(reinterpret_cast<const void*>(kernel), device, p.cluster, p.word_log2);
  const std::lock_guard<std::mutex> guard(lock);
  const auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int clusters = 0;
  cudaFuncAttributes attrs;
  C10_CUDA_CHECK(cudaFuncGetAttributes(&attrs, kernel));
  if (attrs.ptxVersion >= 90 && attrs.binaryVersion >= 90) {
    // The largest mask any shape of this kernel takes, not this shape's: the limit is one per kernel and device,
    // and a smaller shape asked for later would lower it under the launches of a larger one already cached.
    allow_dynamic_smem(kernel, sizeof(uint32_t) << kMaskWordLog2Max);
    cudaLaunchAttribute attr;
    const cudaLaunchConfig_t cfg = mask_launch_config(p, 1, nullptr, &attr);
    C10_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg));
  }
  cache[key] = clusters;
  return clusters;
}

// The cluster-bitmask path takes occupancy where a cloud's bits fit in the shared memory of at most 8 blocks of
// 2^kMaskWordLog2Max words (grids of up to 2^23 voxels) on sm_90 and newer. ROBOCACHE_TUNE_OCCUPANCY_MASK (profiling
// only) caps word_log2 at its value, 0 turning the path off (then occupancy takes the binned path).
template <typename Kernel>
bool plan_occupancy_mask(Kernel kernel, const VoxelizeArgs& a, int64_t point_bytes, MaskPlan& p) {
  static const int max_log2 = std::min(env_int("ROBOCACHE_TUNE_OCCUPANCY_MASK", kMaskWordLog2Max), kMaskWordLog2Max);
  if (max_log2 < 2) return false;
  const int64_t words = ceil_div(a.V, 32);
  p.word_log2 = 2;  // one 16-byte group at least
  while ((int64_t{1} << p.word_log2) < words && p.word_log2 < max_log2) ++p.word_log2;
  const int64_t cluster = ceil_div(words, int64_t{1} << p.word_log2);
  if (cluster > kMaxMaskCluster) return false;
  p.cluster = static_cast<int>(cluster);
  p.smem = sizeof(uint32_t) << p.word_log2;
  const int resident = active_mask_clusters(kernel, p);
  if (resident <= 0) return false;
  // A unit (cluster) per resident cluster, shared among the clouds; one cloud's units are contiguous slices. Each
  // unit's partial mask is written and read once, so the units are capped to keep that round trip within a
  // quarter of the cloud's point bytes, and where that leaves fewer than half the resident clusters busy (few
  // points for the grid) the binned path is taken: at 1M points into 128^3 it measured 19.4 us against 22.9 here
  // with a unit per resident cluster, at 16M 117.8 against 100.2 (H200, profiling/NOTES.md).
  const int64_t unit_mask_bytes = static_cast<int64_t>(p.smem) * p.cluster;
  const int64_t by_traffic = a.N * point_bytes / (8 * unit_mask_bytes);
  p.units = std::max<int64_t>(1, std::min<int64_t>(resident / a.B, by_traffic));
  if (2 * a.B * p.units < resident) return false;
  p.unit_points = ceil_div(ceil_div(a.N, p.units), kPointsPerThread) * kPointsPerThread;
  p.units = ceil_div(a.N, p.unit_points);
  return a.B * p.units * p.cluster < std::numeric_limits<int32_t>::max();
}

template <typename scalar_t, bool kVec>
bool try_occupancy_mask(const at::Tensor& points, const at::Tensor& lengths, const VoxelizeArgs& a, at::Tensor& out) {
  const auto kernel = voxelize_occupancy_mask_kernel<scalar_t, kVec>;
  MaskPlan p;
  if (!plan_occupancy_mask(kernel, a, 3 * static_cast<int64_t>(sizeof(scalar_t)), p)) return false;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t unit_words = int64_t{p.cluster} << p.word_log2;
  at::Tensor partial = at::empty({a.B * p.units * unit_words}, points.options().dtype(at::kInt));
  auto* part = reinterpret_cast<uint32_t*>(partial.mutable_data_ptr<int32_t>());
  cudaLaunchAttribute attr;
  const cudaLaunchConfig_t cfg = mask_launch_config(p, a.B * p.units, stream, &attr);
  C10_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, points_ref<scalar_t>(points, lengths, a),
                                    make_voxel_grid<coord_type<scalar_t>>(a), p.units, p.unit_points, p.word_log2,
                                    part));
  bool* o = out.mutable_data_ptr<bool>();
  const bool vec_out = a.V % 16 == 0 && reinterpret_cast<uintptr_t>(o) % 16 == 0;
  const dim3 merge_grid(static_cast<unsigned>(ceil_div(ceil_div(a.V, 128), 32)),
                        static_cast<unsigned>(std::min<int64_t>(a.B, kMaxGridY)));
  voxelize_occupancy_merge_kernel<<<merge_grid, 32 * kMergeSlices, 0, stream>>>(
      reinterpret_cast<const uint4*>(part), p.units, unit_words / 4, a.B, a.V, vec_out, o);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return true;
}

// Occupancy into `out` [B,X,Y,Z] bool through the cluster bitmask; false (nothing launched) where it does not apply.
bool launch_occupancy_mask(const at::Tensor& points, const at::Tensor& lengths, const VoxelizeArgs& a,
                           at::Tensor& out) {
  if (can_vectorize(points)) return try_occupancy_mask<float, true>(points, lengths, a, out);
  bool launched = false;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, points.scalar_type(), "voxelize_occupancy_mask", [&] {
    launched = try_occupancy_mask<scalar_t, false>(points, lengths, a, out);
  });
  return launched;
}

void check_sort_limits(const VoxelizeArgs& a, const char* op) {
  TORCH_CHECK_VALUE(
      a.B * a.N <= std::numeric_limits<int32_t>::max(), op,
      ": modes 'sum', 'mean' and 'max' on CUDA take at most 2^31-1 points per call (B*N), got B*N=", a.B * a.N);
  TORCH_CHECK_VALUE(ceil_div(a.F, 32) <= kMaxGridY, op, ": at most ", int64_t{kMaxGridY} * 32,
                    " feature channels on CUDA, got F=", a.F);
}

at::Tensor voxelize_cuda(const at::Tensor& points, const std::optional<at::Tensor>& features,
                         at::ArrayRef<double> grid_min, at::ArrayRef<double> voxel_size, at::IntArrayRef grid_size,
                         c10::string_view mode, const std::optional<at::Tensor>& lengths, bool deterministic,
                         bool channels_first) {
  const VoxelizeArgs a =
      check_voxelize_args(points, features, grid_min, voxel_size, grid_size, mode, lengths, channels_first);
  const c10::cuda::CUDAGuard device_guard(points.device());
  const auto opts = points.options().dtype(voxelize_output_dtype(a, features));
  const std::vector<int64_t> shape = voxelize_output_shape(a);
  const bool has_features = mode_has_features(a.mode);
  if (a.B * a.N == 0 || (has_features && a.F == 0)) return at::zeros(shape, opts);
  const at::Tensor l = lengths.has_value() ? lengths->contiguous() : at::Tensor();

  at::Tensor out = at::empty(shape, opts);
  if (!has_features) {
    if (a.mode == VoxelMode::Occupancy && launch_occupancy_mask(points, l, a, out)) return out;
    if (use_binned(a)) {
      launch_binned_count(points, l, a, a.mode == VoxelMode::Occupancy, out);
    } else {
      launch_count(points, l, a, a.mode == VoxelMode::Occupancy, out);
    }
    return out;
  }
  check_sort_limits(a, "voxelize");
  const bool ordered = deterministic && a.mode != VoxelMode::Max;  // max is order-independent anyway
  if (!deterministic && a.mode != VoxelMode::Max) {
    at::globalContext().alertNotDeterministic(
        "robocache::voxelize with mode='sum' or 'mean' and deterministic=False on CUDA");
  }
  if (a.BV < std::numeric_limits<int32_t>::max()) {
    voxelize_features<int32_t>(points, l, *features, a, ordered, out);
  } else {
    voxelize_features<int64_t>(points, l, *features, a, ordered, out);
  }
  return out;
}

at::Tensor voxelize_backward_cuda(const at::Tensor& grad_out, const at::Tensor& points, const at::Tensor& features,
                                  const std::optional<at::Tensor>& out, at::ArrayRef<double> grid_min,
                                  at::ArrayRef<double> voxel_size, at::IntArrayRef grid_size, c10::string_view mode,
                                  const std::optional<at::Tensor>& lengths, bool channels_first) {
  constexpr const char* op = "_voxelize_backward";
  const VoxelizeArgs a =
      check_voxelize_args(points, features, grid_min, voxel_size, grid_size, mode, lengths, channels_first, op);
  check_voxelize_backward_args(a, grad_out, out);
  check_same_device(grad_out, points, op, "grad_out", "points");
  if (out.has_value()) check_same_device(*out, points, op, "out", "points");
  const c10::cuda::CUDAGuard device_guard(points.device());
  at::Tensor grad_features = at::empty({a.B, a.N, a.F}, features.options());
  if (grad_features.numel() == 0) return grad_features;
  TORCH_CHECK_VALUE(a.N <= std::numeric_limits<int32_t>::max(), op, ": at most 2^31-1 points per cloud, got N=", a.N);
  const at::Tensor l = lengths.has_value() ? lengths->contiguous() : at::Tensor();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  at::Tensor keys = at::empty({a.B * a.N}, points.options().dtype(at::kLong));
  at::Tensor no_vals;
  launch_keys<int64_t>(points, l, a, keys, no_vals);
  const at::ScalarType dtype = features.scalar_type();
  const at::Tensor go = channels_last_contiguous(grad_out, channels_first, dtype);
  at::Tensor count, arg;
  if (a.mode == VoxelMode::Mean) {
    count = at::empty({a.B, a.dim[0], a.dim[1], a.dim[2]}, points.options().dtype(at::kInt));
    launch_count(points, l, a, /*occupancy=*/false, count);
  }
  constexpr int threads = 256;
  const dim3 blocks(static_cast<unsigned>(ceil_div(a.N, threads)),
                    static_cast<unsigned>(std::min<int64_t>(a.B, kMaxGridY)));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "voxelize_backward_cuda", [&] {
    if (a.mode == VoxelMode::Max) {
      const at::Tensor o = channels_last_contiguous(*out, channels_first, dtype);
      arg = at::full({a.BV * a.F}, std::numeric_limits<int32_t>::max(), points.options().dtype(at::kInt));
      const StridedFeatures<scalar_t> fe{features.const_data_ptr<scalar_t>(), features.stride(0), features.stride(1),
                                         features.stride(2)};
      voxelize_max_arg_kernel<scalar_t><<<blocks, threads, 0, stream>>>(keys.const_data_ptr<int64_t>(), fe,
                                                                        o.const_data_ptr<scalar_t>(), a.B, a.N, a.BV,
                                                                        a.F, arg.mutable_data_ptr<int32_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    const int64_t* k = keys.const_data_ptr<int64_t>();
    const scalar_t* g = go.const_data_ptr<scalar_t>();
    const int32_t* c = count.defined() ? count.const_data_ptr<int32_t>() : nullptr;
    const int32_t* m = arg.defined() ? arg.const_data_ptr<int32_t>() : nullptr;
    scalar_t* gf = grad_features.mutable_data_ptr<scalar_t>();
    switch (a.mode) {
      case VoxelMode::Sum:
        voxelize_backward_kernel<scalar_t, VoxelMode::Sum>
            <<<blocks, threads, 0, stream>>>(k, g, c, m, a.B, a.N, a.BV, a.F, gf);
        break;
      case VoxelMode::Mean:
        voxelize_backward_kernel<scalar_t, VoxelMode::Mean>
            <<<blocks, threads, 0, stream>>>(k, g, c, m, a.B, a.N, a.BV, a.F, gf);
        break;
      default:
        voxelize_backward_kernel<scalar_t, VoxelMode::Max>
            <<<blocks, threads, 0, stream>>>(k, g, c, m, a.B, a.N, a.BV, a.F, gf);
        break;
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_features;
}

}  // namespace

TORCH_LIBRARY_IMPL(robocache, CUDA, m) {
  m.impl("voxelize", &voxelize_cuda);
  m.impl("_voxelize_backward", &voxelize_backward_cuda);
}

}  // namespace robocache
