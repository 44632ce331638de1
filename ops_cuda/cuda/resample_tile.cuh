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
#include <limits>
#include <type_traits>

#include "cuda/common.cuh"
#include "resample.h"

namespace robocache {

constexpr int kResampleThreads = 256;
constexpr int kMaxTile = 256;                // targets per block, at most
static_assert(kMaxTile <= kResampleThreads, "plan_tile resolves one target per thread");
// Rows of at most this many source times are staged in shared memory (at most 8 cp.async copies per thread,
// all issued before one wait); longer rows are searched in global memory, where the row stays in L1. With the
// copies issued together, staging rows of up to 2048 made fuse B256 T500 8% faster on the H100 than the old
// limit of 1024 (the 1000- and 2000-sample streams both staged) and left resample B256 S2000 unchanged
// (profiling/NOTES.md, 2026-12-07). 2048 float64 times (16 KB) + the copy ring (24 KB) + the plan (6 KB) fit
// in the 48 KB a block gets without opting in.
constexpr int64_t kMaxStagedTimes = 8 * kResampleThreads;

// Tuning overrides for profiling/sweep_resample.py only (not an API), read once per process:
// ROBOCACHE_TUNE_STAGE_TIMES replaces kMaxStagedTimes, ROBOCACHE_TUNE_ITEMS fixes the work items per thread of
// a forward tile (resample and fuse; 0: the built-in choice).
inline bool stage_times(int64_t S) {
  static const int64_t limit = env_int("ROBOCACHE_TUNE_STAGE_TIMES", static_cast<int>(kMaxStagedTimes));
  return S <= limit;
}
inline int tuned_items_per_thread() {
  static const int items = std::max(0, env_int("ROBOCACHE_TUNE_ITEMS", 0));
  return items;
}
constexpr int kItemsPerThread = 4;  // work items per thread of a backward tile (forward: forward_items_per_thread)

// Targets per tile so that each thread has about `items_per_thread` work items of `group` columns.
inline int64_t tile_targets(int64_t D, int group, int64_t T, int items_per_thread = kItemsPerThread) {
  const int64_t groups = std::max<int64_t>(1, D / group);
  const int64_t tile = std::clamp<int64_t>(items_per_thread * kResampleThreads / groups, 1, kMaxTile);
  return std::min<int64_t>(tile, std::max<int64_t>(T, 1));
}

// Work items per thread of forward tiles. A block plans its targets once (a search each, a barrier) and
// then streams their rows, so longer tiles amortise the plan, while small problems need many blocks to
// keep loads in flight: take the most items (up to `max_items`) that still fill every SM with blocks once,
// else 2. `blocks_for(items)` is the launch's block count at that setting. (H200 sweep at 91528c3,
// profiling/NOTES.md: 8 items beat 16 at fuse B256 T500 by 5% and at its fp32-output mixed case by 11%, tied at
// resample B256; one full wave of 8-item blocks beat two waves of 2-item blocks at resample B1024 and fuse's 16
// streams; launches under one wave, such as resample B32 S500 T256 or fuse B32 T50, are fastest at 2. H100 sweep
// at 010dd9e, once long rows were staged with cp.async: resample B256 keeps 8 (4 items: 5% slower), fuse takes
// at most 4 (fuse B256 1.5%, its mixed fp32 case 9%, 16 streams 3% faster than 8), and its upsampled streams
// size their tiles by output bytes (fuse_cuda.cu's stream_items_per_thread).)
template <typename BlocksFor>
int forward_items_per_thread(int device, int blocks_per_sm, BlocksFor blocks_for, int max_items = 8) {
  const int64_t resident = multiprocessor_count(device) * blocks_per_sm;
  for (int items = max_items; items > 2; items /= 2) {
    if (blocks_for(items) >= resident) return items;
  }
  return 2;
}

// One target of a tile, 16 bytes: a loop reads everything it needs of a target with one shared-memory access
// (the separate arrays took up to five dependent reads per item; ncu: short-scoreboard stalls on the plan).
struct alignas(16) PlanEntry {
  int32_t left, right;
  float weight32;  // the weight rounded once, for float32 arithmetic
  int32_t kind;    // TargetKind
};

struct TilePlan {
  PlanEntry entry[kMaxTile];
  double weight[kMaxTile];  // for float64 arithmetic and the backward

  __device__ __forceinline__ PlanEntry at(int i) const {
    const uint4 raw = *reinterpret_cast<const uint4*>(&entry[i]);
    PlanEntry e;
    __builtin_memcpy(&e, &raw, sizeof(e));
    return e;
  }

  // Entry e (of target i) as the weight of acc_t arithmetic.
  template <typename acc_t>
  __device__ __forceinline__ acc_t weight_of(const PlanEntry& e, int i) const {
    if constexpr (sizeof(acc_t) == sizeof(float)) {
      return e.weight32;
    } else {
      return static_cast<acc_t>(weight[i]);
    }
  }
};

__device__ __forceinline__ TargetKind kind_of(const PlanEntry& e) { return static_cast<TargetKind>(e.kind); }

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
  bool stage;  // stage_times(S)
  ResampleMode mode;
  OutOfRange oor;
  bool has_tolerance;
  double tolerance;

  // Row b's real length (clamped: lengths are not checked on the host, that would need a sync).
  __device__ __forceinline__ int64_t length(int64_t b) const { return clamped_length(unclamped_length(b)); }
  // The two halves of length(b), for a caller that issues the load and only later waits for it.
  __device__ __forceinline__ int64_t unclamped_length(int64_t b) const {
    return lengths == nullptr ? S : lengths[b * lengths_stride];
  }
  __device__ __forceinline__ int64_t clamped_length(int64_t L) const { return L < 0 ? 0 : (L > S ? S : L); }
};

// Copies BYTES (4, 8 or 16, aligned) from global to shared memory without waiting for them.
template <int BYTES>
__device__ __forceinline__ void copy_async(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(dst), "l"(gmem), "n"(BYTES) : "memory");
#else
  struct alignas(BYTES) Word {
    unsigned char b[BYTES];
  };
  *static_cast<Word*>(smem) = *static_cast<const Word*>(gmem);
#endif
}

// Closes the group of copies issued by this thread since the last commit (an empty group is fine).
__device__ __forceinline__ void commit_async_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most N of this thread's groups are in flight; the data of the others is then visible to it.
template <int N>
__device__ __forceinline__ void wait_async_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// Copies times[0, S) into shared memory and waits for them (this thread's copies; the caller's barrier makes
// them visible to the block). The plain strided loop (load, store, next load) waited one memory round trip per
// iteration, in sequence, up to four for a staged row of 1024 times (SASS of e370d82: LDG, STS, branch).
// cp.async issues every copy before waiting and holds no register for the values. The contiguous loop is kept
// apart from the strided one so that its copies use immediate offsets from one address (no 64-bit multiply each).
template <typename time_t>
__device__ __forceinline__ void stage_row(const TimeRow<time_t>& times, int64_t S, time_t* staged) {
  static_assert(sizeof(time_t) == 4 || sizeof(time_t) == 8, "cp.async copies 4 or 8 bytes here");
  constexpr int kBytes = sizeof(time_t);
  const int n = static_cast<int>(S);
  if (times.stride == 1) {
    for (int j = threadIdx.x; j < n; j += kResampleThreads) copy_async<kBytes>(staged + j, times.ptr + j);
  } else {
    for (int j = threadIdx.x; j < n; j += kResampleThreads) {
      copy_async<kBytes>(staged + j, times.ptr + j * times.stride);
    }
  }
  commit_async_copies();
  wait_async_copies<0>();
}

// Resolves targets [t0, t0 + count) of row b into `plan` and writes valid[b * valid_sb + t * valid_st]
// (unless WRITE_VALID is false: fuse's backward only needs the plan). Every thread of the block must call
// it (it synchronises), with count <= blockDim.x: thread i resolves target t0 + i.
// The target time, the row length and the staged source times are loaded before anything waits on them (the
// length is clamped after stage_row has issued its loads), so the plan costs one memory round trip before the
// search instead of several (length, then times, then target: what a block of a small tile mostly waits for).
// Staging takes all S times, not just the row's L: the entries past L exist in the [B,S] tensor and the search
// never reads them.
template <typename time_t, bool WRITE_VALID = true>
__device__ __forceinline__ void plan_tile(const SourceTimes<time_t>& st, int64_t b, int64_t t0, int count,
                                          time_t* staged_times, TilePlan& plan, bool* valid, int64_t valid_sb,
                                          int64_t valid_st) {
  const int i = threadIdx.x;
  const bool has_target = i < count;
  time_t x{};
  if (has_target) x = st.tgt[b * st.tgt_sb + (t0 + i) * st.tgt_st];
  const int64_t unclamped_L = st.unclamped_length(b);  // clamped after the staging loads are issued
  TimeRow<time_t> times{st.src + b * st.src_sb, st.src_ss};
  if (st.stage) {
    stage_row(times, st.S, staged_times);
    __syncthreads();
    times = {staged_times, 1};
  }
  const int64_t L = st.clamped_length(unclamped_L);
  if (has_target) {
    const TargetPlan p = resolve_target(times, L, x, st.mode, st.oor, st.has_tolerance, st.tolerance);
    PlanEntry& e = plan.entry[i];
    e.left = static_cast<int32_t>(p.left);
    e.right = static_cast<int32_t>(p.right);
    e.weight32 = static_cast<float>(p.weight);
    e.kind = static_cast<int32_t>(p.kind);
    plan.weight[i] = p.weight;
    if constexpr (WRITE_VALID) valid[b * valid_sb + (t0 + i) * valid_st] = p.valid;
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

// ---- asynchronous row copies --------------------------------------------------------------------------
// A work item's two source rows pieces were loaded into registers and waited for before the next item's loads
// were issued: one memory round trip per item, in sequence, so a thread of a 16-item tile waited 16 round
// trips (ncu: stalled on the L1TEX scoreboard, DRAM half busy; profiling/NOTES.md). Issuing the next items'
// loads first needs registers the 6-blocks-per-SM budget does not have. cp.async copies them into a per-thread
// ring in shared memory instead: kCopyDepth items are in flight per thread, and no register waits for them.
constexpr int kCopyDepth = 3;
// Shared memory of the ring: kCopyDepth items x (left, right) x 16 bytes per thread.
constexpr int64_t kCopyRingBytes = int64_t{kCopyDepth} * 2 * kResampleThreads * 16;
// A forward block's shared memory: the staged times (8-byte times at most), copy_ring_offset's alignment pad
// (< 16 bytes), the ring and the static plan.
static_assert(kMaxStagedTimes * int64_t{sizeof(int64_t)} + 16 + kCopyRingBytes + int64_t{sizeof(TilePlan)} <=
                  48 * 1024,
              "a forward block's shared memory must fit the 48 KB available without cudaFuncSetAttribute");

// ROBOCACHE_TUNE_ASYNC_COPIES=0 (profiling only, not an API; read once) keeps every tile on the register loop.
inline bool async_copies_enabled() {
  static const bool enabled = env_int("ROBOCACHE_TUNE_ASYNC_COPIES", 1) != 0;
  return enabled;
}

// Where the ring starts in a block's dynamic shared memory, after `staged_bytes` of staged source times.
inline int64_t copy_ring_offset(int64_t staged_bytes) { return (staged_bytes + 15) / 16 * 16; }

// Whether a tile's element offsets fit interpolate_tile_async's 32-bit arithmetic: within one batch row's S
// source rows (of row_stride elements, D columns) and within the tile's output rows (`tile` rows of
// out_row_stride). 64-bit offsets cost about a tenth of the loop's instructions; tiles that do not fit take
// the register loop.
inline bool async_offsets_fit(int64_t S, int64_t row_stride, int64_t D, int64_t tile, int64_t out_row_stride) {
  constexpr int64_t kLimit = std::numeric_limits<int32_t>::max();
  auto fits = [&](int64_t rows, int64_t stride, int64_t width) {
    return width <= kLimit && (rows <= 0 || stride == 0 || rows <= (kLimit - width) / stride);
  };
  return fits(S, row_stride, D) && fits(tile, out_row_stride, D);
}

// Walks a thread's items start, start + stride, ... of a tile with `groups` column groups per target as
// (target i, group g), without a division per step (two per item were about a third of the loop's instructions).
struct ItemWalk {
  int i, g;
  __device__ __forceinline__ ItemWalk(int start, int groups) : i(start / groups), g(start % groups) {}
  // di = stride / groups, dg = stride % groups.
  __device__ __forceinline__ void advance(int di, int dg, int groups) {
    i += di;
    g += dg;
    if (g >= groups) {
      g -= groups;
      ++i;
    }
  }
};

// The GROUP elements of v in acc_t. bfloat16 widens by a shift or a mask of each 32-bit pair (one instruction
// per element; the element-wise conversion first extracts each half). Exact either way.
template <typename in_t, typename acc_t, int GROUP>
__device__ __forceinline__ void widen(const Vec<in_t, GROUP>& v, acc_t (&a)[GROUP]) {
  if constexpr (std::is_same_v<in_t, at::BFloat16> && std::is_same_v<acc_t, float> && GROUP % 2 == 0) {
    uint32_t w[GROUP / 2];
    __builtin_memcpy(w, &v, sizeof(w));
#pragma unroll
    for (int k = 0; k < GROUP / 2; ++k) {
      a[2 * k] = __uint_as_float(w[k] << 16);
      a[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
  } else {
#pragma unroll
    for (int k = 0; k < GROUP; ++k) a[k] = static_cast<acc_t>(v.v[k]);
  }
}

// Stores GROUP values in OUT_VEC-element accesses, or in one 16-byte access where this address allows it
// (fuse's 16-byte loads into rows of 8-byte alignment: every other output row starts 16-byte aligned).
template <typename T, int GROUP, int OUT_VEC>
__device__ __forceinline__ void store_group_aligned(T* out, const T (&x)[GROUP]) {
  if constexpr (OUT_VEC < GROUP && GROUP * sizeof(T) == 16) {
    if (reinterpret_cast<uintptr_t>(out) % 16 == 0) {
      store_group<T, GROUP, GROUP>(out, x);
      return;
    }
  }
  store_group<T, GROUP, OUT_VEC>(out, x);
}

// One item of the async loops: the target's value from its left (lo) and right (hi) row pieces, or its fill,
// stored at `dst`. The arithmetic of interpolate_tile's register loop, so the same bits.
template <typename in_t, typename out_t, int GROUP, int OUT_VEC>
__device__ __forceinline__ void blend_and_store(TargetKind kind, const Vec<in_t, GROUP>& lo, const Vec<in_t, GROUP>& hi,
                                                at::opmath_type<in_t> w, out_t* dst) {
  using acc_t = at::opmath_type<in_t>;
  out_t r[GROUP];
  if (kind == TargetKind::Lerp) {
    acc_t a[GROUP], b[GROUP];
    widen<in_t, acc_t, GROUP>(lo, a);
    widen<in_t, acc_t, GROUP>(hi, b);
#pragma unroll
    for (int k = 0; k < GROUP; ++k) r[k] = static_cast<out_t>(a[k] + w * (b[k] - a[k]));
  } else if (kind == TargetKind::Copy) {
#pragma unroll
    for (int k = 0; k < GROUP; ++k) r[k] = static_cast<out_t>(lo.v[k]);
  } else {
    const out_t fill = kind == TargetKind::NaN ? std::numeric_limits<out_t>::quiet_NaN() : out_t(0);
#pragma unroll
    for (int k = 0; k < GROUP; ++k) r[k] = fill;
  }
  store_group_aligned<out_t, GROUP, OUT_VEC>(dst, r);
}

// `p`, which the compiler can no longer rewrite as (its base + an offset): p + i then costs one wide
// multiply-add where the compiler would otherwise rebuild the 64-bit sum from the kernel parameter each time.
// Only for cp.async sources: the compiler no longer knows p is global, so an ordinary access through it would
// become a generic one.
template <typename T>
__device__ __forceinline__ T* opaque(T* p) {
  asm("" : "+l"(p));
  return p;
}

// The async loop of a thread whose column group stays fixed: when `groups` divides the block (up to a few idle
// threads), thread x takes group x % groups of targets x / groups, + step, + 2 step, ... (step = blockDim.x /
// groups). Its source column and output row advance by pointer increments, with no (target, group) walk and no
// index arithmetic per item: about 15% fewer instructions per item than the general loop (SASS, profiling/NOTES.md).
template <typename in_t, typename out_t, int GROUP, int OUT_VEC>
__device__ __forceinline__ void interpolate_columns_async(const in_t* __restrict__ rows, int row_stride, int groups,
                                                          int count, const TilePlan& plan, out_t* __restrict__ out,
                                                          int out_row_stride, Vec<in_t, GROUP>* ring) {
  using acc_t = at::opmath_type<in_t>;
  const int step = static_cast<int>(blockDim.x) / groups;
  const int first = static_cast<int>(threadIdx.x) / groups;
  const int col = (static_cast<int>(threadIdx.x) - first * groups) * GROUP;
  const int ring_stride = blockDim.x;
  const in_t* src = opaque(rows + col);
  int next = first < step ? first : count;  // the next target to copy (threads past step * groups idle)
  auto issue = [&](int slot) {
    if (next < count) {
      const PlanEntry e = plan.at(next);
      const TargetKind kind = kind_of(e);
      if (kind == TargetKind::Copy || kind == TargetKind::Lerp) {
        copy_async<sizeof(*ring)>(ring + 2 * slot * ring_stride, src + e.left * row_stride);
      }
      if (kind == TargetKind::Lerp) {
        copy_async<sizeof(*ring)>(ring + (2 * slot + 1) * ring_stride, src + e.right * row_stride);
      }
    }
    commit_async_copies();
    next += step;
  };
#pragma unroll
  for (int d = 0; d < kCopyDepth; ++d) issue(d);
  out_t* dst = out + (static_cast<int64_t>(first) * out_row_stride + col);
  const int64_t dst_step = static_cast<int64_t>(step) * out_row_stride;
  int slot = 0;
  for (int i = first < step ? first : count; i < count; i += step, dst += dst_step) {
    wait_async_copies<kCopyDepth - 1>();
    // Both slots are read whatever the kind (a slot no copy filled holds stale values, which the kind ignores),
    // so the three reads go out together.
    const PlanEntry e = plan.at(i);
    const Vec<in_t, GROUP> lo = load_vec<in_t, GROUP>(ring[2 * slot * ring_stride].v);
    const Vec<in_t, GROUP> hi = load_vec<in_t, GROUP>(ring[(2 * slot + 1) * ring_stride].v);
    blend_and_store<in_t, out_t, GROUP, OUT_VEC>(kind_of(e), lo, hi, plan.weight_of<acc_t>(e, i), dst);
    issue(slot);  // the slot's values are in registers now
    slot = slot + 1 == kCopyDepth ? 0 : slot + 1;
  }
  wait_async_copies<0>();
}

// Whether interpolate_columns_async serves a tile of `groups` column groups: it leaves blockDim.x % groups
// threads idle, so at most 1/16 of the block.
__device__ __forceinline__ bool columns_fixed(int groups) {
  return groups <= static_cast<int>(blockDim.x) && static_cast<int>(blockDim.x) % groups <= static_cast<int>(blockDim.x) / 16;
}

// interpolate_tile's loop for aligned GROUP-element rows, with each item's rows copied kCopyDepth items
// ahead into `ring` (kCopyRingBytes of shared memory). OUT_VEC may be smaller than GROUP (fuse: 16-byte loads
// into output rows that only allow 8-byte stores). Offsets are 32-bit: the host checks async_offsets_fit.
template <typename in_t, typename out_t, int GROUP, int OUT_VEC>
__device__ __forceinline__ void interpolate_tile_async(const in_t* __restrict__ rows, int row_stride, int D,
                                                       int count, const TilePlan& plan, out_t* __restrict__ out,
                                                       int out_row_stride, unsigned char* ring_bytes) {
  using acc_t = at::opmath_type<in_t>;
  using V = Vec<in_t, GROUP>;
  static_assert(sizeof(V) == 4 || sizeof(V) == 8 || sizeof(V) == 16, "cp.async moves 4, 8 or 16 bytes");
  const int groups = D / GROUP;
  if (groups == 0) return;
  V* ring = reinterpret_cast<V*>(ring_bytes) + threadIdx.x;  // entry (slot, half) at [(2 * slot + half) * blockDim.x]
  if (columns_fixed(groups)) {
    interpolate_columns_async<in_t, out_t, GROUP, OUT_VEC>(rows, row_stride, groups, count, plan, out, out_row_stride,
                                                           ring);
    return;
  }
  const int stride = blockDim.x;
  const int di = stride / groups, dg = stride % groups;
  ItemWalk next(threadIdx.x, groups);  // the next item to copy
  auto issue = [&](int slot) {
    if (next.i < count) {
      const PlanEntry e = plan.at(next.i);
      const TargetKind kind = kind_of(e);
      const int col = next.g * GROUP;
      if (kind == TargetKind::Copy || kind == TargetKind::Lerp) {
        copy_async<sizeof(V)>(ring + 2 * slot * stride, rows + (e.left * row_stride + col));
      }
      if (kind == TargetKind::Lerp) {
        copy_async<sizeof(V)>(ring + (2 * slot + 1) * stride, rows + (e.right * row_stride + col));
      }
    }
    commit_async_copies();
    next.advance(di, dg, groups);
  };
#pragma unroll
  for (int d = 0; d < kCopyDepth; ++d) issue(d);
  int slot = 0;
  for (ItemWalk item(threadIdx.x, groups); item.i < count; item.advance(di, dg, groups)) {
    wait_async_copies<kCopyDepth - 1>();
    const int i = item.i;
    const PlanEntry e = plan.at(i);
    const TargetKind kind = kind_of(e);
    V lo, hi;
    if (kind == TargetKind::Copy || kind == TargetKind::Lerp) lo = load_vec<in_t, GROUP>(ring[2 * slot * stride].v);
    if (kind == TargetKind::Lerp) hi = load_vec<in_t, GROUP>(ring[(2 * slot + 1) * stride].v);
    blend_and_store<in_t, out_t, GROUP, OUT_VEC>(kind, lo, hi, plan.weight_of<acc_t>(e, i),
                                                 out + (i * out_row_stride + item.g * GROUP));
    issue(slot);  // the slot's values are in registers now
    slot = slot + 1 == kCopyDepth ? 0 : slot + 1;
  }
  wait_async_copies<0>();
}

// Writes out[i * out_row_stride + c] for the tile's `count` targets and D columns. GROUP columns per item:
// VEC for plain modes, 4 (one quaternion) for slerp. WIDE: the source rows allow aligned GROUP-element
// loads. OUT_VEC: elements per aligned store (resample: GROUP when WIDE, else 1; fuse picks it from the
// output's row stride, column offset and dtype, which may differ from the input's).
// Item indices are 32-bit (cheaper division): a tile holds at most max(kMaxTile, D / GROUP) * a few items and
// the host checks D < 2^31. `ring` (kCopyRingBytes of shared memory, or null; non-null only where
// async_offsets_fit holds) sends WIDE non-slerp tiles through interpolate_tile_async. (Issuing the loads of 2
// or 4 items into registers before computing any was measured slower on the H100: more registers, fewer blocks
// per SM; profiling/NOTES.md.)
template <typename in_t, typename out_t, int GROUP, bool WIDE, bool SLERP, int OUT_VEC = (WIDE ? GROUP : 1)>
__device__ __forceinline__ void interpolate_tile(const in_t* __restrict__ rows, int64_t row_stride,
                                                 int64_t col_stride, int64_t D, int count, const TilePlan& plan,
                                                 out_t* __restrict__ out, int64_t out_row_stride,
                                                 unsigned char* ring = nullptr) {
  if constexpr (WIDE && !SLERP) {
    if (ring != nullptr) {
      interpolate_tile_async<in_t, out_t, GROUP, OUT_VEC>(rows, static_cast<int>(row_stride), static_cast<int>(D),
                                                          count, plan, out, static_cast<int>(out_row_stride), ring);
      return;
    }
  }
  using acc_t = at::opmath_type<in_t>;
  const int groups = static_cast<int>(D / GROUP);
  const int items = count * groups;
  for (int item = threadIdx.x; item < items; item += blockDim.x) {
    const int i = item / groups;
    const int64_t col = static_cast<int64_t>(item - i * groups) * GROUP;
    const PlanEntry e = plan.at(i);
    const TargetKind kind = kind_of(e);
    out_t r[GROUP];
    if (kind == TargetKind::Copy || kind == TargetKind::Lerp) {
      in_t lo[GROUP];
      load_group<in_t, GROUP, WIDE>(rows + e.left * row_stride, col, col_stride, lo);
      if (kind == TargetKind::Lerp || SLERP) {
        acc_t a[GROUP];
#pragma unroll
        for (int k = 0; k < GROUP; ++k) a[k] = static_cast<acc_t>(lo[k]);
        if (kind == TargetKind::Lerp) {
          in_t hi[GROUP];
          load_group<in_t, GROUP, WIDE>(rows + e.right * row_stride, col, col_stride, hi);
          const acc_t w = plan.weight_of<acc_t>(e, i);
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
    store_group<out_t, GROUP, OUT_VEC>(out + i * out_row_stride + col, r);
  }
}

}  // namespace robocache
