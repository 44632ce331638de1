// The device half of resample, shared by the resample and fuse kernels.
//
// A block owns one row b and a tile of up to kMaxTile consecutive targets of one stream:
//  1. plan_tile: the row's source times are staged in shared memory (when they fit), each target is
//     resolved once by `resolve_target` (the function the CPU kernel uses) into (left, right, weight,
//     kind) in shared memory, and the valid flag is written.
//  2. interpolate_tile: all threads sweep the tile's (target, column group) pairs. A group is VEC
//     contiguous columns moved as one access (16 bytes for the input when the rows allow it), or one
//     quaternion for slerp.
// Arithmetic is in float32 (float64 for float64 data); a copy moves the stored value, converted once to
// the output dtype.
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>
#include <cstdlib>

#include "cuda/common.cuh"
#include "resample.h"

namespace robocache {

constexpr int kResampleThreads = 256;
constexpr int kMaxTile = 256;                // targets per block, at most
// Rows of at most this many source times are staged in shared memory (at most 4 loads per thread); longer
// rows are searched in global memory, where the row stays in L1 (measured on the H100: staging 2000 times
// per block of 128 targets cost ~4%, profiling/NOTES.md).
constexpr int64_t kMaxStagedTimes = 4 * kResampleThreads;
constexpr int kItemsPerThread = 4;  // work items per thread of a backward tile (forward: forward_items_per_thread)

// Targets per tile so that each of `threads` threads has about `items_per_thread` work items of `group` columns
// (a block tile: kResampleThreads threads, up to kMaxTile targets; a warp tile: 32 and 32).
inline int64_t tile_targets(int64_t D, int group, int64_t T, int items_per_thread = kItemsPerThread,
                            int threads = kResampleThreads, int max_tile = kMaxTile) {
  const int64_t groups = std::max<int64_t>(1, D / group);
  const int64_t tile = std::clamp<int64_t>(int64_t{items_per_thread} * threads / groups, 1, max_tile);
  return std::min<int64_t>(tile, std::max<int64_t>(T, 1));
}

// Work items per thread of forward tiles. A block plans its targets once (a search each, a barrier) and
// then streams their rows, so longer tiles amortise the plan, while small problems need many blocks to
// keep loads in flight: take the most items (up to 16) that still leave two full waves of blocks, else 2.
// `blocks_for(items)` is the launch's block count at that setting. (H100 sweep, profiling/NOTES.md:
// resample B256 S2000 T1000 D256 bf16 is fastest at 16, B32 S500 T256 D256 at 2.)
template <typename BlocksFor>
int forward_items_per_thread(int device, int blocks_per_sm, BlocksFor blocks_for) {
  const int64_t resident = multiprocessor_count(device) * blocks_per_sm;
  for (int items = 16; items > 2; items /= 2) {
    if (blocks_for(items) >= 2 * resident) return items;
  }
  return 2;
}

// Tuning overrides for profiling/sweep_resample.py only (not an API), read once per process, for resample and
// fuse: ROBOCACHE_TUNE_ITEMS fixes the work items per thread of a forward tile, ROBOCACHE_TUNE_LAYOUT picks
// block (0) or warp (1) tiles for the forward, ROBOCACHE_TUNE_STAGE=0 searches source times in global memory
// even when the row would fit in shared memory (block tiles).
inline int tuned_items_per_thread() {
  static const int items = [] {
    const char* v = std::getenv("ROBOCACHE_TUNE_ITEMS");
    return v ? std::max(0, std::atoi(v)) : 0;  // 0: the built-in choice
  }();
  return items;
}
inline int tuned_layout() {  // ROBOCACHE_TUNE_LAYOUT: 0 block tiles, 1 warp tiles, -1 the built-in choice
  static const int layout = [] {
    const char* v = std::getenv("ROBOCACHE_TUNE_LAYOUT");
    return v ? (std::atoi(v) != 0 ? 1 : 0) : -1;
  }();
  return layout;
}
inline int tuned_stage() {
  static const int stage = [] {
    const char* v = std::getenv("ROBOCACHE_TUNE_STAGE");
    return v ? (std::atoi(v) != 0 ? 1 : 0) : -1;
  }();
  return stage;
}

struct TilePlan {
  int32_t left[kMaxTile];
  int32_t right[kMaxTile];
  double weight[kMaxTile];
  TargetKind kind[kMaxTile];
};

// One stream's source side: times, lengths and the resolution options.
template <typename time_t>
struct SourceTimes {
  const time_t* src;
  int64_t src_sb, src_ss;
  const time_t* tgt;
  int64_t tgt_sb, tgt_st;
  const int64_t* lengths;  // null: every row has S samples
  int64_t lengths_stride;
  int64_t S;
  bool stage;  // S <= kMaxStagedTimes
  ResampleMode mode;
  OutOfRange oor;
  bool has_tolerance;
  double tolerance;

  // Row b's real length (clamped: lengths are not checked on the host, that would need a sync).
  __device__ __forceinline__ int64_t length(int64_t b) const {
    if (lengths == nullptr) return S;
    const int64_t L = lengths[b * lengths_stride];
    return L < 0 ? 0 : (L > S ? S : L);
  }
};

// Resolves targets [t0, t0 + count) of row b into `plan` and writes valid[b * valid_sb + t * valid_st]
// (unless WRITE_VALID is false: fuse's backward only needs the plan). Every thread of the block must call
// it (it synchronises).
template <typename time_t, bool WRITE_VALID = true>
__device__ __forceinline__ void plan_tile(const SourceTimes<time_t>& st, int64_t b, int64_t t0, int count,
                                          time_t* staged_times, TilePlan& plan, bool* valid, int64_t valid_sb,
                                          int64_t valid_st) {
  const int64_t L = st.length(b);
  TimeRow<time_t> times{st.src + b * st.src_sb, st.src_ss};
  if (st.stage) {
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) staged_times[i] = times[i];
    __syncthreads();
    times = {staged_times, 1};
  }
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t t = t0 + i;
    const TargetPlan p = resolve_target(times, L, st.tgt[b * st.tgt_sb + t * st.tgt_st], st.mode, st.oor,
                                        st.has_tolerance, st.tolerance);
    plan.left[i] = static_cast<int32_t>(p.left);
    plan.right[i] = static_cast<int32_t>(p.right);
    plan.weight[i] = p.weight;
    plan.kind[i] = p.kind;
    if constexpr (WRITE_VALID) valid[b * valid_sb + t * valid_st] = p.valid;
  }
  __syncthreads();
}

template <typename T, int N, bool WIDE>
__device__ __forceinline__ void load_group(const T* row, int64_t col, int64_t col_stride, T (&x)[N]) {
  if constexpr (WIDE) {
    const Vec<T, N> v = load_vec<T, N>(row + col);
#pragma unroll
    for (int k = 0; k < N; ++k) x[k] = v.v[k];
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) x[k] = row[(col + k) * col_stride];
  }
}

// Stores N values as N / VEC aligned accesses of VEC elements (VEC == 1: scalar stores).
template <typename T, int N, int VEC>
__device__ __forceinline__ void store_group(T* out, const T (&x)[N]) {
  static_assert(N % VEC == 0, "store width must divide the group");
  if constexpr (VEC > 1) {
#pragma unroll
    for (int c = 0; c < N; c += VEC) {
      Vec<T, VEC> v;
#pragma unroll
      for (int k = 0; k < VEC; ++k) v.v[k] = x[c + k];
      store_vec<T, VEC>(out + c, v);
    }
  } else {
#pragma unroll
    for (int k = 0; k < N; ++k) out[k] = x[k];
  }
}

// One work item: GROUP columns starting at `col` of one target, resolved as (kind, left, right, weight), written
// to `out` (the target's output row + col). GROUP columns: VEC for plain modes, 4 (one quaternion) for
// slerp. WIDE: the source rows allow aligned GROUP-element loads. OUT_VEC: elements per aligned store.
template <typename in_t, typename out_t, int GROUP, bool WIDE, bool SLERP, int OUT_VEC>
__device__ __forceinline__ void interpolate_item(const in_t* __restrict__ rows, int64_t row_stride,
                                                 int64_t col_stride, int64_t col, TargetKind kind, int32_t left,
                                                 int32_t right, at::opmath_type<in_t> w, out_t* __restrict__ out) {
  using acc_t = at::opmath_type<in_t>;
  out_t r[GROUP];
  if (kind == TargetKind::Copy || kind == TargetKind::Lerp) {
    in_t lo[GROUP];
    load_group<in_t, GROUP, WIDE>(rows + left * row_stride, col, col_stride, lo);
    if (kind == TargetKind::Lerp || SLERP) {
      acc_t a[GROUP];
#pragma unroll
      for (int k = 0; k < GROUP; ++k) a[k] = static_cast<acc_t>(lo[k]);
      if (kind == TargetKind::Lerp) {
        in_t hi[GROUP];
        load_group<in_t, GROUP, WIDE>(rows + right * row_stride, col, col_stride, hi);
        if constexpr (SLERP) {
          acc_t b[4], q[4];
#pragma unroll
          for (int k = 0; k < 4; ++k) b[k] = static_cast<acc_t>(hi[k]);
          slerp_quaternion(a, b, w, q);
#pragma unroll
          for (int k = 0; k < 4; ++k) a[k] = q[k];
        } else {
#pragma unroll
          for (int k = 0; k < GROUP; ++k) a[k] = a[k] + w * (static_cast<acc_t>(hi[k]) - a[k]);
        }
      } else {
        normalize_quaternion(a);
      }
#pragma unroll
      for (int k = 0; k < GROUP; ++k) r[k] = static_cast<out_t>(a[k]);
    } else {
#pragma unroll
      for (int k = 0; k < GROUP; ++k) r[k] = static_cast<out_t>(lo[k]);
    }
  } else {
    const out_t fill = kind == TargetKind::NaN ? std::numeric_limits<out_t>::quiet_NaN() : out_t(0);
#pragma unroll
    for (int k = 0; k < GROUP; ++k) r[k] = fill;
  }
  store_group<out_t, GROUP, OUT_VEC>(out, r);
}

// Writes out[i * out_row_stride + c] for the tile's `count` targets and D columns, all threads of the block
// sweeping the (target, column group) items of a block plan (resample's OUT_VEC: GROUP when WIDE, else 1;
// fuse picks it from the output's row stride, column offset and dtype, which may differ from the input's).
// Item indices are 32-bit (cheaper division): a tile holds at most max(kMaxTile, D / GROUP) * a few items and
// the host checks D < 2^31. (Issuing the loads of 2 or 4 items before computing any was measured slower
// on the H100: more registers, fewer blocks per SM; profiling/NOTES.md.)
template <typename in_t, typename out_t, int GROUP, bool WIDE, bool SLERP, int OUT_VEC = (WIDE ? GROUP : 1)>
__device__ __forceinline__ void interpolate_tile(const in_t* __restrict__ rows, int64_t row_stride,
                                                 int64_t col_stride, int64_t D, int count, const TilePlan& plan,
                                                 out_t* __restrict__ out, int64_t out_row_stride) {
  using acc_t = at::opmath_type<in_t>;
  const int groups = static_cast<int>(D / GROUP);
  const int items = count * groups;
  for (int item = threadIdx.x; item < items; item += blockDim.x) {
    const int i = item / groups;
    const int64_t col = static_cast<int64_t>(item - i * groups) * GROUP;
    interpolate_item<in_t, out_t, GROUP, WIDE, SLERP, OUT_VEC>(rows, row_stride, col_stride, col, plan.kind[i],
                                                               plan.left[i], plan.right[i],
                                                               static_cast<acc_t>(plan.weight[i]),
                                                               out + i * out_row_stride + col);
  }
}

// ---- warp layout (forward) ----------------------------------------------------------------------------------
// A warp owns one row b and up to kWarpSize consecutive targets: lane j resolves target t0 + j into registers
// (a LanePlan), then the warp sweeps the (target, column group) items, each lane taking its item's plan from
// the owning lane with shuffles. No shared memory and no block barrier: a warp that is still searching does
// not hold up the loads of the other warps of its block. Source times are searched in global memory (the
// row stays in L1).
constexpr int kWarpSize = 32;
constexpr int kWarpsPerBlock = kResampleThreads / kWarpSize;

template <typename acc_t>
struct LanePlan {
  int32_t left = 0, right = 0;
  acc_t weight = acc_t(0);
  TargetKind kind = TargetKind::Zero;
};

// Lane `lane` resolves target t0 + lane of row b (lanes >= count hold a Zero plan) and writes its valid flag
// (unless WRITE_VALID is false).
template <typename acc_t, typename time_t, bool WRITE_VALID = true>
__device__ __forceinline__ LanePlan<acc_t> plan_lane(const SourceTimes<time_t>& st, int64_t b, int64_t t0, int count,
                                                     int lane, bool* valid, int64_t valid_sb, int64_t valid_st) {
  LanePlan<acc_t> lp;
  if (lane < count) {
    const int64_t t = t0 + lane;
    const TargetPlan p = resolve_target(TimeRow<time_t>{st.src + b * st.src_sb, st.src_ss}, st.length(b),
                                        st.tgt[b * st.tgt_sb + t * st.tgt_st], st.mode, st.oor, st.has_tolerance,
                                        st.tolerance);
    lp.left = static_cast<int32_t>(p.left);
    lp.right = static_cast<int32_t>(p.right);
    lp.weight = static_cast<acc_t>(p.weight);
    lp.kind = p.kind;
    if constexpr (WRITE_VALID) valid[b * valid_sb + t * valid_st] = p.valid;
  }
  return lp;
}

// The warp's `count` targets and D columns into out[i * out_row_stride + c], from the lanes' plans (weights
// in weight_t, rounded once to the data's math type). Every lane of the warp must call it (it shuffles).
template <typename in_t, typename out_t, int GROUP, bool WIDE, bool SLERP, int OUT_VEC = (WIDE ? GROUP : 1),
          typename weight_t>
__device__ __forceinline__ void interpolate_warp(const in_t* __restrict__ rows, int64_t row_stride, int64_t col_stride,
                                                 int64_t D, int count, const LanePlan<weight_t>& mine, int lane,
                                                 out_t* __restrict__ out, int64_t out_row_stride) {
  constexpr unsigned kAll = 0xffffffffu;
  const int groups = static_cast<int>(D / GROUP);
  const int items = count * groups;
  for (int base = 0; base < items; base += kWarpSize) {
    const int item = base + lane;
    const int i = (item < items ? item : items - 1) / groups;
    const int32_t left = __shfl_sync(kAll, mine.left, i);
    const int32_t right = __shfl_sync(kAll, mine.right, i);
    const auto w = static_cast<at::opmath_type<in_t>>(__shfl_sync(kAll, mine.weight, i));
    const auto kind = static_cast<TargetKind>(__shfl_sync(kAll, static_cast<int>(mine.kind), i));
    if (item < items) {
      const int64_t col = static_cast<int64_t>(item - i * groups) * GROUP;
      interpolate_item<in_t, out_t, GROUP, WIDE, SLERP, OUT_VEC>(rows, row_stride, col_stride, col, kind, left, right,
                                                                 w, out + i * out_row_stride + col);
    }
  }
}

}  // namespace robocache
