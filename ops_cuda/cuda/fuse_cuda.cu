// fuse on CUDA: every stream in one launch (up to kMaxStreams per launch), no intermediate tensors.
//
// Grid: one block per (row b, stream k, tile of targets of that stream), row-major: blockIdx.x =
// b * blocks_per_row + block_begin_k + tile. The blocks of one row (all streams, all tiles) are adjacent,
// so the row's targets and its output rows [b, t, 0 : sum D] are written by blocks that run together and
// the partial sectors where two streams' columns meet merge in L2. Each stream has its own tile length
// (the same items per thread for every stream, picked for the launch by resample's
// forward_items_per_thread, at most kFuseMaxItemsPerThread, except upsampled streams: stream_items_per_thread),
// so a stream with many columns gets short tiles and every block does about the same number of items.
//
// The block body is resample's (resample_tile.cuh): plan_tile resolves the tile's targets against the
// stream's times, interpolate_tile writes the stream's D_k columns at column offset col_k of rows of
// length sum D, converting the stream's dtype to out_dtype once. The stream descriptors travel in the
// kernel parameter (__grid_constant__, < 4 KB: kMaxStreams = 32); a block switches on its stream's time
// dtype, data dtype and access width to pick the instantiation. Access widths (per stream, on the host):
//   Wide:   16-byte loads of the source rows; stores of min(16 bytes, the same elements) into the output
//           (16-bit data: in the light kernel flavour only through the async-copy ring, see fuse_kernel);
//   Split:  (16-bit data) 16-byte loads of 8 elements stored as two 4-element halves: the output row
//           allows no wider store (sum D or col_k not a multiple of 8), as in bf16 rows of 588 columns;
//   Mid:    (16-bit data) 8-byte loads of 4 elements, 4-element stores (up to 16 bytes);
//   Scalar: one element per item (odd D, odd column offsets, transposed data);
//   Slerp:  one quaternion per item.
// Wide/Split/Mid need D_k, the data row strides and the data pointer aligned to the load, and sum D, col_k
// and the output pointer aligned to the store.
//
// Backward: after one memset of the float32 (and, for float64 streams, float64) accumulators, one launch
// recomputes the plans and scatters grad_out's columns into them with atomics; a second launch converts
// every stream's accumulator to its dtype.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <type_traits>

#include "cuda/resample_tile.cuh"
#include "fuse.h"

namespace robocache {
namespace {

constexpr int kThreads = kResampleThreads;
constexpr int kMaxStreams = 32;  // per launch; more streams take ceil(K / kMaxStreams) launches

enum class DataType : int8_t { Float = 0, Double = 1, Half = 2, BFloat16 = 3 };
enum class TimeType : int8_t { Float = 0, Double = 1, Long = 2 };
enum class Access : int8_t { Wide = 0, Split = 1, Mid = 2, Scalar = 3, Slerp = 4 };

DataType data_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DataType::Float;
    case at::kDouble: return DataType::Double;
    case at::kHalf: return DataType::Half;
    case at::kBFloat16: return DataType::BFloat16;
    default: TORCH_INTERNAL_ASSERT(false, "fuse: unexpected dtype ", t);
  }
}

TimeType time_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return TimeType::Float;
    case at::kDouble: return TimeType::Double;
    case at::kLong: return TimeType::Long;
    default: TORCH_INTERNAL_ASSERT(false, "fuse: unexpected time dtype ", t);
  }
}

// One stream of one launch. In the backward, `data` is the stream's float32/float64 gradient buffer
// (contiguous [B,S,D]) and `dtype` says which.
struct FuseStreamDesc {
  const void* data;
  const void* times;
  const int64_t* lengths;  // null: every row has S samples
  int64_t data_sb, data_ss, data_sd;
  int64_t times_sb, times_ss;
  int64_t lengths_stride;
  double tolerance;
  int32_t S, D, col;        // samples, columns, first output column
  int32_t tile_t;           // targets per block
  DataType dtype;
  Access access;
  int8_t mode;              // ResampleMode
  bool has_tolerance;
  bool stage;               // source times staged in shared memory
};

struct FuseParams {
  FuseStreamDesc s[kMaxStreams];
  // Stream k's first block within a row (INT32_MAX past the last stream), in one compact table: a block's scan
  // for its stream reads one or two constant-cache lines. (Scanning a field of each 104-byte descriptor was a
  // chain of constant-cache misses, the first stall of the 16-stream launch: ncu, profiling/NOTES.md.)
  int32_t block_begin[kMaxStreams];
  const void* tgt;
  int64_t tgt_sb, tgt_st;
  void* out;                // forward: out [B,T,total_D]; backward: grad_out (strides below)
  int64_t out_sb, out_st, out_sc;
  bool* valid;              // forward only: valid[b, t, k] of this launch's first stream
  int64_t T, K;             // K: all streams (valid's last dimension)
  int32_t num_streams, blocks_per_row;
  int32_t ring_offset;      // forward: of the async-copy ring in dynamic shared memory; -1: none
  TimeType time_type;
};
static_assert(sizeof(FuseParams) <= 4096, "fuse: the stream descriptors must fit the 4 KB kernel parameter space");

template <typename time_t>
__device__ __forceinline__ SourceTimes<time_t> stream_times(const FuseParams& p, const FuseStreamDesc& s) {
  SourceTimes<time_t> st;
  st.src = static_cast<const time_t*>(s.times);
  st.src_sb = s.times_sb;
  st.src_ss = s.times_ss;
  st.tgt = static_cast<const time_t*>(p.tgt);
  st.tgt_sb = p.tgt_sb;
  st.tgt_st = p.tgt_st;
  st.lengths = s.lengths;
  st.lengths_stride = s.lengths_stride;
  st.S = s.S;
  st.stage = s.stage;
  st.mode = static_cast<ResampleMode>(s.mode);
  st.oor = OutOfRange::Hold;
  st.has_tolerance = s.has_tolerance;
  st.tolerance = s.tolerance;
  return st;
}

// The block's stream k (a short scan of the per-row prefix of blocks), row b and first target t0.
struct BlockTask {
  int64_t b, t0;
  int k, count;
};

__device__ __forceinline__ BlockTask block_task(const FuseParams& p) {
  BlockTask task;
  task.b = blockIdx.x / p.blocks_per_row;
  const int j = static_cast<int>(blockIdx.x - task.b * p.blocks_per_row);
  int k = 0;
  while (k + 1 < p.num_streams && j >= p.block_begin[k + 1]) ++k;
  task.k = k;
  task.t0 = static_cast<int64_t>(j - p.block_begin[k]) * p.s[k].tile_t;
  task.count = static_cast<int>(min(static_cast<int64_t>(p.s[k].tile_t), p.T - task.t0));
  return task;
}

// Resolves the block's targets into `plan` (and valid, when WRITE_VALID), whatever the time dtype.
template <bool WRITE_VALID>
__device__ __forceinline__ void plan_stream_tile(const FuseParams& p, const FuseStreamDesc& s, const BlockTask& task,
                                                 unsigned char* staged, TilePlan& plan, bool* valid) {
  const int64_t valid_st = p.K, valid_sb = p.T * p.K;
  switch (p.time_type) {
    case TimeType::Float:
      plan_tile<float, WRITE_VALID>(stream_times<float>(p, s), task.b, task.t0, task.count,
                                    reinterpret_cast<float*>(staged), plan, valid, valid_sb, valid_st);
      break;
    case TimeType::Double:
      plan_tile<double, WRITE_VALID>(stream_times<double>(p, s), task.b, task.t0, task.count,
                                     reinterpret_cast<double*>(staged), plan, valid, valid_sb, valid_st);
      break;
    case TimeType::Long:
      plan_tile<int64_t, WRITE_VALID>(stream_times<int64_t>(p, s), task.b, task.t0, task.count,
                                      reinterpret_cast<int64_t*>(staged), plan, valid, valid_sb, valid_st);
      break;
  }
}

constexpr int cmin(int a, int b) { return a < b ? a : b; }

template <typename in_t, typename out_t, bool FULL>
__device__ __forceinline__ void interpolate_stream(const FuseStreamDesc& s, const BlockTask& task,
                                                   const TilePlan& plan, out_t* out, int64_t out_row_stride,
                                                   unsigned char* ring) {
  constexpr int G = 16 / sizeof(in_t);        // elements per 16-byte load
  constexpr int OUT_MAX = 16 / sizeof(out_t);  // elements per 16-byte store
  const in_t* rows = static_cast<const in_t*>(s.data) + task.b * s.data_sb;
  // 16-byte loads of 16-bit data, whose register loop the light flavour has no registers for: the host
  // picks them there only with the ring (pick_access).
  auto wide = [&](auto out_vec) {
    constexpr int OUT_VEC = decltype(out_vec)::value;
    if constexpr (FULL || G <= 4) {
      interpolate_tile<in_t, out_t, G, true, false, OUT_VEC>(rows, s.data_ss, s.data_sd, s.D, task.count, plan, out,
                                                             out_row_stride, ring);
    } else {
      interpolate_tile_async<in_t, out_t, G, OUT_VEC>(rows, static_cast<int>(s.data_ss), s.D, task.count, plan, out,
                                                      static_cast<int>(out_row_stride), ring);
    }
  };
  switch (s.access) {
    case Access::Wide:
      wide(std::integral_constant<int, cmin(G, OUT_MAX)>{});
      break;
    case Access::Split:
      if constexpr (G == 8) wide(std::integral_constant<int, cmin(4, OUT_MAX)>{});
      break;
    case Access::Mid:
      if constexpr (G > 4) {
        interpolate_tile<in_t, out_t, 4, true, false, cmin(4, OUT_MAX)>(rows, s.data_ss, s.data_sd, s.D, task.count,
                                                                        plan, out, out_row_stride, ring);
      }
      break;
    case Access::Scalar:
      interpolate_tile<in_t, out_t, 1, false, false, 1>(rows, s.data_ss, s.data_sd, s.D, task.count, plan, out,
                                                        out_row_stride);
      break;
    case Access::Slerp:
      if constexpr (FULL) {
        interpolate_tile<in_t, out_t, 4, false, true, 1>(rows, s.data_ss, s.data_sd, s.D, task.count, plan, out,
                                                         out_row_stride);
      }
      break;
  }
}

// Two flavours, because a kernel gets the registers of its heaviest path. The light one (float32,
// float16 and bfloat16 data; 16-byte float32 accesses, 8-byte 16-bit ones, and 16-byte 16-bit ones through
// the async-copy ring; no slerp) is held to 6 blocks of 256 threads per SM (40 registers). The full one adds
// float64 data, slerp and the register loop of 16-byte 16-bit accesses (76 registers: 3 blocks per SM); a
// launch uses it only when one of its streams needs it.
constexpr int kLightMinBlocks = 6, kFullMinBlocks = 3;
// Fuse's forward tiles take at most 4 items per thread (resample's up to 8): see forward_items_per_thread.
constexpr int kFuseMaxItemsPerThread = 4;
// The output bytes per thread that an upsampled stream's tiles are sized for (stream_items_per_thread).
constexpr int kFuseUpsampledBytesPerThread = 96;

template <typename out_t, bool FULL>
__global__ void __launch_bounds__(kThreads, FULL ? kFullMinBlocks : kLightMinBlocks) fuse_kernel(const __grid_constant__ FuseParams p) {
  __shared__ TilePlan plan;
  extern __shared__ __align__(16) unsigned char staged_times[];
  const BlockTask task = block_task(p);
  const FuseStreamDesc& s = p.s[task.k];
  plan_stream_tile<true>(p, s, task, staged_times, plan, p.valid + task.k);
  out_t* out = static_cast<out_t*>(p.out) + (task.b * p.T + task.t0) * p.out_st + s.col;
  unsigned char* ring = p.ring_offset >= 0 ? staged_times + p.ring_offset : nullptr;
  switch (s.dtype) {
    case DataType::Float:
      interpolate_stream<float, out_t, FULL>(s, task, plan, out, p.out_st, ring);
      break;
    case DataType::Double:
      if constexpr (FULL) interpolate_stream<double, out_t, FULL>(s, task, plan, out, p.out_st, ring);
      break;
    case DataType::Half:
      interpolate_stream<at::Half, out_t, FULL>(s, task, plan, out, p.out_st, ring);
      break;
    case DataType::BFloat16:
      interpolate_stream<at::BFloat16, out_t, FULL>(s, task, plan, out, p.out_st, ring);
      break;
  }
}

bool aligned(const void* p, int64_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Items per thread of one stream's forward tiles, where the launch chose `items` (forward_items_per_thread). An
// upsampled stream (fewer samples S than targets T) reads each source row for several targets, from L1 within a
// tile, so its tiles are sized by the bytes a thread stores instead: fuse B256 T500's 300x512 bf16 stream was
// fastest at 6 items of 16 bytes with bf16 output and at 3 items of 32 bytes with float32 output, where the
// 16-stream case's downsampled streams were fastest at 4. On the H100 this rule made fuse B256 3% and its
// float32-output twin 2.5% faster and left the 16-stream and B32 cases as they were (profiling/NOTES.md,
// 2026-12-07 fifth session). A launch too small for kFuseMaxItemsPerThread keeps its choice, as do scalar and
// slerp accesses.
int stream_items_per_thread(int items, int64_t S, int64_t T, Access access, int group, int64_t out_size) {
  if (items < kFuseMaxItemsPerThread || S >= T || access == Access::Scalar || access == Access::Slerp) return items;
  return static_cast<int>(std::clamp<int64_t>(kFuseUpsampledBytesPerThread / (group * out_size), 2, 8));
}

// Whether a stream needs the full kernel flavour (see fuse_kernel).
bool needs_full_kernel(const at::Tensor& d, ResampleMode mode) {
  return d.scalar_type() == at::kDouble || mode == ResampleMode::Slerp;
}

// The widest access (see the file comment) that stream `d` and its place in the output allow. 16-byte
// accesses of 16-bit data only in the full flavour or through the ring (`ring`: the launch may use it).
Access pick_access(const at::Tensor& d, ResampleMode mode, int64_t col, int64_t total_D, const at::Tensor& out,
                   bool full, bool ring) {
  if (mode == ResampleMode::Slerp) return Access::Slerp;
  const int64_t in_size = d.element_size(), out_size = out.element_size();
  const int64_t G = 16 / in_size, out_max = 16 / out_size;
  auto in_ok = [&](int64_t g) {
    return (d.size(2) <= 1 || d.stride(2) == 1) && d.size(2) % g == 0 && (d.size(0) <= 1 || d.stride(0) % g == 0) &&
           (d.size(1) <= 1 || d.stride(1) % g == 0) && aligned(d.const_data_ptr(), g * in_size);
  };
  auto out_ok = [&](int64_t o) {
    return total_D % o == 0 && col % o == 0 && aligned(out.const_data_ptr(), o * out_size);
  };
  const bool wide_ok = (full || ring || G <= 4) && in_ok(G);
  if (wide_ok && out_ok(std::min(G, out_max))) return Access::Wide;
  if (G > 4 && wide_ok && out_ok(std::min<int64_t>(4, out_max))) return Access::Split;
  if (G > 4 && in_ok(4) && out_ok(std::min<int64_t>(4, out_max))) return Access::Mid;
  return Access::Scalar;
}

int access_group(Access a, int64_t in_size) {
  switch (a) {
    case Access::Wide:
    case Access::Split: return static_cast<int>(16 / in_size);
    case Access::Mid:
    case Access::Slerp: return 4;
    case Access::Scalar: return 1;
  }
  return 1;
}

void fill_stream(FuseStreamDesc& s, const at::Tensor& times, const std::optional<at::Tensor>& lengths,
                 const FuseStream& f, int64_t time_size) {
  s.times = times.const_data_ptr();
  s.times_sb = times.dim() == 2 ? times.stride(0) : 0;
  s.times_ss = times.stride(-1);
  s.lengths = lengths.has_value() ? lengths->const_data_ptr<int64_t>() : nullptr;
  s.lengths_stride = lengths.has_value() ? lengths->stride(0) : 0;
  s.S = static_cast<int32_t>(f.S);
  s.D = static_cast<int32_t>(f.D);
  s.col = static_cast<int32_t>(f.offset);
  s.mode = static_cast<int8_t>(f.mode);
  s.has_tolerance = f.has_tolerance;
  s.tolerance = f.tolerance;
  s.stage = stage_times(f.S);
}

void fill_common(FuseParams& p, const at::Tensor& tgt_times, const FuseArgs& a) {
  p.tgt = tgt_times.const_data_ptr();
  p.tgt_sb = tgt_times.dim() == 2 ? tgt_times.stride(0) : 0;
  p.tgt_st = tgt_times.stride(-1);
  p.T = a.T;
  p.K = a.K;
  p.time_type = time_type(tgt_times.scalar_type());
}

// Launch configuration of one chunk: blocks per row and the shared memory for staged times (and, with
// `ring`, the forward's async-copy ring after them).
void finish_chunk(FuseParams& p, int64_t B, int64_t time_size, int64_t& blocks, size_t& shared, const char* op,
                  bool ring) {
  int64_t per_row = 0, staged = 0;
  for (int i = 0; i < p.num_streams; ++i) {
    FuseStreamDesc& s = p.s[i];
    p.block_begin[i] = static_cast<int32_t>(std::min<int64_t>(per_row, std::numeric_limits<int32_t>::max()));
    per_row += ceil_div(p.T, s.tile_t);
    if (s.stage) staged = std::max<int64_t>(staged, s.S * time_size);
  }
  std::fill(p.block_begin + p.num_streams, p.block_begin + kMaxStreams, std::numeric_limits<int32_t>::max());
  TORCH_CHECK_VALUE(per_row < (int64_t{1} << 31) && B * per_row < (int64_t{1} << 31), op,
                    ": too many rows and targets for one launch (", B * per_row, " blocks)");
  p.blocks_per_row = static_cast<int32_t>(per_row);
  blocks = B * per_row;
  shared = static_cast<size_t>(staged);
  p.ring_offset = -1;
  if (ring) {
    p.ring_offset = static_cast<int32_t>(copy_ring_offset(staged));
    shared = static_cast<size_t>(p.ring_offset + kCopyRingBytes);
  }
}

std::tuple<at::Tensor, at::Tensor> fuse_cuda(at::TensorList data, at::TensorList times, const at::Tensor& tgt_times,
                                             std::vector<std::string> modes, std::vector<double> tolerances,
                                             const c10::List<std::optional<at::Tensor>>& src_lengths,
                                             std::optional<c10::string_view> out_dtype) {
  constexpr const char* op = "fuse";
  const FuseArgs a = check_fuse_args(op, data, times, tgt_times, modes, &tolerances, src_lengths,
                                     parse_out_dtype(out_dtype, op));
  const c10::cuda::CUDAGuard guard(data[0].device());
  if (debug_checks_enabled()) debug_check_fuse_inputs(times, src_lengths, a, op);
  at::Tensor out = at::empty({a.B, a.T, a.total_D}, data[0].options().dtype(a.out_dtype));
  at::Tensor valid = at::empty({a.B, a.T, a.K}, data[0].options().dtype(at::kBool));
  if (a.B * a.T == 0) return {out, valid};
  TORCH_CHECK_VALUE(a.total_D < (int64_t{1} << 31), op, ": the fused width sum D must be below 2^31, got ", a.total_D);
  const int64_t time_size = tgt_times.element_size();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  for (int64_t first = 0; first < a.K; first += kMaxStreams) {
    FuseParams p{};
    fill_common(p, tgt_times, a);
    p.out = out.mutable_data_ptr();
    p.out_sb = a.T * a.total_D;
    p.out_st = a.total_D;
    p.out_sc = 1;
    p.valid = valid.mutable_data_ptr<bool>() + first;
    p.num_streams = static_cast<int32_t>(std::min<int64_t>(kMaxStreams, a.K - first));
    bool full = false;
    bool ring_allowed = async_copies_enabled();  // and every stream's offsets fit the ring loop's 32 bits
    for (int i = 0; i < p.num_streams; ++i) {
      const at::Tensor& d = data[first + i];
      full = full || needs_full_kernel(d, a.streams[first + i].mode);
      ring_allowed = ring_allowed && async_offsets_fit(d.size(1), d.stride(1), d.size(2), kMaxTile, a.total_D);
    }
    for (int i = 0; i < p.num_streams; ++i) {
      const int64_t k = first + i;
      const at::Tensor& d = data[k];
      const FuseStream& f = a.streams[k];
      FuseStreamDesc& s = p.s[i];
      fill_stream(s, times[k], src_lengths.get(k), f, time_size);
      s.data = d.const_data_ptr();
      s.data_sb = d.stride(0);
      s.data_ss = d.stride(1);
      s.data_sd = d.stride(2);
      s.dtype = data_type(d.scalar_type());
      s.access = pick_access(d, f.mode, f.offset, a.total_D, out, full, ring_allowed);
    }
    // One tile length rule for the whole launch (as resample's): blocks of all streams count. Upsampled streams
    // then size their tiles by output bytes (stream_items_per_thread); ROBOCACHE_TUNE_ITEMS fixes every stream's.
    auto group = [&](int i) { return access_group(p.s[i].access, data[first + i].element_size()); };
    const bool tuned = tuned_items_per_thread() > 0;
    auto stream_items = [&](int i, int n) {
      return tuned ? n
                   : stream_items_per_thread(n, a.streams[first + i].S, a.T, p.s[i].access, group(i),
                                             out.element_size());
    };
    int items = tuned_items_per_thread();
    if (!tuned) {
      items = forward_items_per_thread(
          data[0].get_device(), full ? kFullMinBlocks : kLightMinBlocks,
          [&](int n) {
            int64_t per_row = 0;
            for (int i = 0; i < p.num_streams; ++i) {
              per_row += ceil_div(a.T, tile_targets(p.s[i].D, group(i), a.T, stream_items(i, n)));
            }
            return a.B * per_row;
          },
          kFuseMaxItemsPerThread);
    }
    for (int i = 0; i < p.num_streams; ++i) {
      p.s[i].tile_t = static_cast<int32_t>(tile_targets(p.s[i].D, group(i), a.T, stream_items(i, items)));
    }
    int64_t blocks;
    size_t shared;
    bool any_wide = false;  // some stream takes aligned vector loads, which the ring serves
    for (int i = 0; i < p.num_streams; ++i) {
      any_wide = any_wide || p.s[i].access == Access::Wide || p.s[i].access == Access::Split ||
                 p.s[i].access == Access::Mid;
    }
    finish_chunk(p, a.B, time_size, blocks, shared, op, any_wide && ring_allowed);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.out_dtype, "fuse_cuda", [&] {
      if (full) {
        fuse_kernel<scalar_t, true><<<blocks, kThreads, shared, stream>>>(p);
      } else {
        fuse_kernel<scalar_t, false><<<blocks, kThreads, shared, stream>>>(p);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return {out, valid};
}

// ---- backward --------------------------------------------------------------------------------------------

template <typename acc_t, typename grad_t>
__device__ __forceinline__ void scatter_tile(const FuseParams& p, const FuseStreamDesc& s, const BlockTask& task,
                                             const TilePlan& plan) {
  acc_t* acc = static_cast<acc_t*>(const_cast<void*>(s.data)) + task.b * s.S * s.D;
  const grad_t* grad = static_cast<const grad_t*>(p.out) + task.b * p.out_sb + task.t0 * p.out_st + s.col * p.out_sc;
  const int64_t D = s.D;
  const int64_t items = task.count * D;
  for (int64_t item = threadIdx.x; item < items; item += blockDim.x) {
    const int i = static_cast<int>(item / D);
    const int64_t d = item - i * D;
    const PlanEntry e = plan.at(i);
    const TargetKind kind = kind_of(e);
    if (kind != TargetKind::Copy && kind != TargetKind::Lerp) continue;
    const acc_t g = static_cast<acc_t>(grad[i * p.out_st + d * p.out_sc]);
    const acc_t w = kind == TargetKind::Lerp ? static_cast<acc_t>(plan.weight[i]) : acc_t(0);
    atomicAdd(acc + e.left * D + d, (acc_t(1) - w) * g);
    if (kind == TargetKind::Lerp) atomicAdd(acc + e.right * D + d, w * g);
  }
}

template <typename grad_t>
__global__ void __launch_bounds__(kThreads) fuse_backward_kernel(const __grid_constant__ FuseParams p) {
  __shared__ TilePlan plan;
  extern __shared__ __align__(16) unsigned char staged_times[];
  const BlockTask task = block_task(p);
  const FuseStreamDesc& s = p.s[task.k];
  plan_stream_tile<false>(p, s, task, staged_times, plan, nullptr);
  if (s.dtype == DataType::Double) {
    scatter_tile<double, grad_t>(p, s, task, plan);
  } else {
    scatter_tile<float, grad_t>(p, s, task, plan);
  }
}

// Converts each stream's float32/float64 gradient buffer to the stream's dtype: blockIdx.y is the stream.
struct ConvertParams {
  struct {
    const void* acc;
    void* out;
    int64_t n;
    DataType out_type;
  } s[kMaxStreams];
};

template <typename acc_t, typename out_t>
__device__ __forceinline__ void convert_range(const void* acc, void* out, int64_t n) {
  const acc_t* a = static_cast<const acc_t*>(acc);
  out_t* o = static_cast<out_t*>(out);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    o[i] = static_cast<out_t>(a[i]);
  }
}

__global__ void __launch_bounds__(kThreads) fuse_backward_convert_kernel(const __grid_constant__ ConvertParams p) {
  const auto& s = p.s[blockIdx.y];
  switch (s.out_type) {
    case DataType::Float: convert_range<float, float>(s.acc, s.out, s.n); break;
    case DataType::Double: convert_range<double, double>(s.acc, s.out, s.n); break;
    case DataType::Half: convert_range<float, at::Half>(s.acc, s.out, s.n); break;
    case DataType::BFloat16: convert_range<float, at::BFloat16>(s.acc, s.out, s.n); break;
  }
}

std::vector<at::Tensor> fuse_backward_cuda(const at::Tensor& grad_out, at::TensorList data, at::TensorList times,
                                           const at::Tensor& tgt_times, std::vector<std::string> modes,
                                           const c10::List<std::optional<at::Tensor>>& src_lengths) {
  constexpr const char* op = "_fuse_backward";
  const FuseArgs a = check_fuse_backward_args(grad_out, data, times, tgt_times, modes, src_lengths);
  const c10::cuda::CUDAGuard guard(data[0].device());
  at::globalContext().alertNotDeterministic("_fuse_backward (CUDA)");
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();

  // One float32 and (for float64 streams) one float64 buffer hold every stream's accumulator.
  std::vector<int64_t> acc_offset(a.K);
  int64_t n_float = 0, n_double = 0;
  for (int64_t k = 0; k < a.K; ++k) {
    const int64_t n = a.B * a.streams[k].S * a.streams[k].D;
    int64_t& total = data[k].scalar_type() == at::kDouble ? n_double : n_float;
    acc_offset[k] = total;
    total += n;
  }
  const auto opts = data[0].options();
  const at::Tensor acc_float = at::zeros({n_float}, opts.dtype(at::kFloat));
  const at::Tensor acc_double = n_double > 0 ? at::zeros({n_double}, opts.dtype(at::kDouble)) : at::Tensor();
  auto acc_ptr = [&](int64_t k) -> void* {
    return data[k].scalar_type() == at::kDouble ? static_cast<void*>(acc_double.data_ptr<double>() + acc_offset[k])
                                                : static_cast<void*>(acc_float.data_ptr<float>() + acc_offset[k]);
  };
  std::vector<at::Tensor> grads;
  grads.reserve(a.K);
  for (int64_t k = 0; k < a.K; ++k) {
    grads.push_back(at::empty({a.B, a.streams[k].S, a.streams[k].D}, data[k].options()));
  }

  const int64_t time_size = tgt_times.element_size();
  if (a.B * a.T > 0 && a.total_D > 0) {
    // Scatter, over the streams that have a gradient (slerp streams keep zeros).
    std::vector<int64_t> active;
    for (int64_t k = 0; k < a.K; ++k) {
      if (a.streams[k].mode != ResampleMode::Slerp && a.streams[k].D > 0 && a.streams[k].S > 0) active.push_back(k);
    }
    for (size_t first = 0; first < active.size(); first += kMaxStreams) {
      FuseParams p{};
      fill_common(p, tgt_times, a);
      p.out = const_cast<void*>(grad_out.const_data_ptr());
      p.out_sb = grad_out.stride(0);
      p.out_st = grad_out.stride(1);
      p.out_sc = grad_out.stride(2);
      p.valid = nullptr;
      p.num_streams = static_cast<int32_t>(std::min<size_t>(kMaxStreams, active.size() - first));
      for (int i = 0; i < p.num_streams; ++i) {
        const int64_t k = active[first + i];
        FuseStreamDesc& s = p.s[i];
        fill_stream(s, times[k], src_lengths.get(k), a.streams[k], time_size);
        s.has_tolerance = false;
        s.data = acc_ptr(k);
        s.dtype = data[k].scalar_type() == at::kDouble ? DataType::Double : DataType::Float;
        s.access = Access::Scalar;
        s.tile_t = static_cast<int32_t>(tile_targets(a.streams[k].D, 1, a.T));
      }
      int64_t blocks;
      size_t shared;
      finish_chunk(p, a.B, time_size, blocks, shared, op, /*ring=*/false);
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(), "fuse_backward_cuda", [&] {
        fuse_backward_kernel<scalar_t><<<blocks, kThreads, shared, stream>>>(p);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    }
  }
  // Convert every stream's buffer (zeros where nothing was scattered) to its dtype.
  for (int64_t first = 0; first < a.K; first += kMaxStreams) {
    ConvertParams p{};
    const int num = static_cast<int>(std::min<int64_t>(kMaxStreams, a.K - first));
    int64_t max_n = 0;
    for (int i = 0; i < num; ++i) {
      const int64_t k = first + i;
      p.s[i].acc = acc_ptr(k);
      p.s[i].out = grads[k].data_ptr();
      p.s[i].n = grads[k].numel();
      p.s[i].out_type = data_type(data[k].scalar_type());
      max_n = std::max(max_n, p.s[i].n);
    }
    if (max_n == 0) continue;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(ceil_div(max_n, kThreads * 4), 4096)), num);
    fuse_backward_convert_kernel<<<grid, kThreads, 0, stream>>>(p);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return grads;
}

}  // namespace

TORCH_LIBRARY_IMPL(robocache, CUDA, m) {
  m.impl("fuse", &fuse_cuda);
  m.impl("_fuse_backward", &fuse_backward_cuda);
}

}  // namespace robocache
