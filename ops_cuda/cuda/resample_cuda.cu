// resample on CUDA: one launch, one block per (row b, tile of targets); the block body (plan the tile's
// targets once, then interpolate its D columns with wide loads) lives in resample_tile.cuh, shared with fuse.
//
// The backward recomputes the plans and scatters grad_out into a float32 (float64) buffer with atomics,
// and reduces <grad_out, slope> per target in shared memory for the time gradient.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/resample_tile.cuh"

namespace robocache {
namespace {

constexpr int kThreads = kResampleThreads;

// Forward blocks an SM holds at once: __launch_bounds__ caps registers at 40 for this (45 unbounded gave 5;
// measured on the H100: 6 is faster at every bench shape, profiling/NOTES.md). Slerp and float64 keep the
// compiler's choice (their math needs more registers and would spill).
constexpr int kForwardMinBlocks = 6;
template <typename scalar_t, bool SLERP>
constexpr int forward_min_blocks() {
  return (SLERP || sizeof(scalar_t) == 8) ? 1 : kForwardMinBlocks;
}

// ROBOCACHE_TUNE_STAGE=0 (profiling/sweep_resample.py only, not an API; read once) searches source times in
// global memory even when the row would fit in shared memory.
bool staging_allowed() {
  static const bool allowed = env_int("ROBOCACHE_TUNE_STAGE", 1) != 0;
  return allowed;
}

// The forward's tile (see forward_items_per_thread), unless a tuning override fixes the items.
int64_t forward_tile_targets(int64_t B, int64_t D, int group, int64_t T, int device) {
  int items = tuned_items_per_thread();
  if (items == 0) {
    items = forward_items_per_thread(device, kForwardMinBlocks, [&](int n) {
      return B * ceil_div(T, tile_targets(D, group, T, n));
    });
  }
  return tile_targets(D, group, T, items);
}

template <typename time_t>
SourceTimes<time_t> source_times(const at::Tensor& src_times, const at::Tensor& tgt_times,
                                 const std::optional<at::Tensor>& src_lengths, const ResampleArgs& a) {
  SourceTimes<time_t> st;
  st.src = src_times.const_data_ptr<time_t>();
  st.src_sb = src_times.dim() == 2 ? src_times.stride(0) : 0;
  st.src_ss = src_times.stride(-1);
  st.tgt = tgt_times.const_data_ptr<time_t>();
  st.tgt_sb = tgt_times.dim() == 2 ? tgt_times.stride(0) : 0;
  st.tgt_st = tgt_times.stride(-1);
  st.lengths = src_lengths.has_value() ? src_lengths->const_data_ptr<int64_t>() : nullptr;
  st.lengths_stride = src_lengths.has_value() ? src_lengths->stride(0) : 0;
  st.S = a.S;
  st.stage = stage_times(a.S) && staging_allowed();
  st.mode = a.mode;
  st.oor = a.oor;
  st.has_tolerance = a.has_tolerance;
  st.tolerance = a.tolerance;
  return st;
}

template <typename scalar_t>
struct DataView {
  const scalar_t* ptr;
  int64_t sb, ss, sd, D, T;
  int64_t tile_t, tiles_per_row;
  int64_t ring_offset;  // of the async-copy ring in dynamic shared memory; -1: none (register loop)
};

template <typename scalar_t, typename time_t, int GROUP, bool WIDE, bool SLERP>
__global__ void __launch_bounds__(kThreads, (forward_min_blocks<scalar_t, SLERP>()))
    resample_kernel(const SourceTimes<time_t> st, const DataView<scalar_t> data, scalar_t* __restrict__ out,
                    bool* __restrict__ valid) {
  __shared__ TilePlan plan;
  extern __shared__ __align__(16) unsigned char staged_times[];
  const int64_t b = blockIdx.x / data.tiles_per_row;
  const int64_t t0 = (blockIdx.x - b * data.tiles_per_row) * data.tile_t;
  const int count = static_cast<int>(min(data.tile_t, data.T - t0));
  plan_tile(st, b, t0, count, reinterpret_cast<time_t*>(staged_times), plan, valid, data.T, 1);
  interpolate_tile<scalar_t, scalar_t, GROUP, WIDE, SLERP>(
      data.ptr + b * data.sb, data.ss, data.sd, data.D, count, plan, out + (b * data.T + t0) * data.D, data.D,
      data.ring_offset >= 0 ? staged_times + data.ring_offset : nullptr);
}

template <typename scalar_t, typename time_t, int GROUP, bool WIDE, bool SLERP>
void launch_forward(const SourceTimes<time_t>& st, const at::Tensor& data_t, const ResampleArgs& a, at::Tensor& out,
                    at::Tensor& valid) {
  DataView<scalar_t> data{data_t.const_data_ptr<scalar_t>(), data_t.stride(0), data_t.stride(1), data_t.stride(2),
                          a.D, a.T, 0, 0, -1};
  data.tile_t = forward_tile_targets(a.B, a.D, GROUP, a.T, data_t.get_device());
  data.tiles_per_row = ceil_div(a.T, data.tile_t);
  const int64_t blocks = a.B * data.tiles_per_row;
  TORCH_CHECK_VALUE(blocks < (int64_t{1} << 31), "resample: too many rows and targets for one launch (", blocks,
                    " blocks)");
  size_t shared = st.stage ? st.S * sizeof(time_t) : 0;
  if (WIDE && !SLERP && async_copies_enabled() && async_offsets_fit(a.S, data.ss, a.D, data.tile_t, a.D)) {
    data.ring_offset = copy_ring_offset(static_cast<int64_t>(shared));
    shared = static_cast<size_t>(data.ring_offset + kCopyRingBytes);
  }
  resample_kernel<scalar_t, time_t, GROUP, WIDE, SLERP>
      <<<blocks, kThreads, shared, c10::cuda::getCurrentCUDAStream()>>>(st, data, out.mutable_data_ptr<scalar_t>(),
                                                                        valid.mutable_data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor> resample_cuda(const at::Tensor& data, const at::Tensor& src_times,
                                                 const at::Tensor& tgt_times, c10::string_view mode,
                                                 const std::optional<at::Tensor>& src_lengths,
                                                 std::optional<double> tolerance, c10::string_view out_of_range) {
  const ResampleArgs a = check_resample_args(data, src_times, tgt_times, mode, src_lengths, tolerance, out_of_range);
  const c10::cuda::CUDAGuard guard(data.device());
  if (debug_checks_enabled()) debug_check_resample_inputs(src_times, src_lengths, a.S, "resample");
  at::Tensor out = at::empty({a.B, a.T, a.D}, data.options());
  at::Tensor valid = at::empty({a.B, a.T}, data.options().dtype(at::kBool));
  if (a.B * a.T == 0) return {out, valid};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, data.scalar_type(), "resample_cuda", [&] {
    ROBOCACHE_DISPATCH_TIME_TYPES(src_times.scalar_type(), "resample_cuda", [&] {
      const SourceTimes<time_t> st = source_times<time_t>(src_times, tgt_times, src_lengths, a);
      constexpr int kVec = 16 / sizeof(scalar_t);
      if (a.mode == ResampleMode::Slerp) {
        launch_forward<scalar_t, time_t, 4, false, true>(st, data, a, out, valid);
      } else if (data.stride(2) == 1 && pick_vector_width<scalar_t>(data.const_data_ptr(), a.D,
                                                                      {data.stride(0), data.stride(1)}) == kVec) {
        launch_forward<scalar_t, time_t, kVec, true, false>(st, data, a, out, valid);
      } else {
        launch_forward<scalar_t, time_t, 1, false, false>(st, data, a, out, valid);
      }
    });
  });
  return {out, valid};
}

// ---- backward --------------------------------------------------------------------------------------------

template <typename scalar_t, typename time_t, typename grad_time_t>
__global__ void __launch_bounds__(kThreads)
    resample_backward_kernel(const SourceTimes<time_t> st, const DataView<scalar_t> data,
                             const scalar_t* __restrict__ grad_out, at::opmath_type<scalar_t>* __restrict__ grad_data,
                             grad_time_t* __restrict__ grad_tgt) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ int32_t s_left[kMaxTile], s_right[kMaxTile], s_slope_lo[kMaxTile], s_slope_hi[kMaxTile];
  __shared__ acc_t s_weight[kMaxTile], s_dot[kMaxTile];
  __shared__ double s_slope_scale[kMaxTile];
  __shared__ TargetKind s_kind[kMaxTile];
  extern __shared__ __align__(16) unsigned char staged_times[];

  const int64_t b = blockIdx.x / data.tiles_per_row;
  const int64_t t0 = (blockIdx.x - b * data.tiles_per_row) * data.tile_t;
  const int count = static_cast<int>(min(data.tile_t, data.T - t0));
  const int64_t L = st.length(b);
  TimeRow<time_t> times{st.src + b * st.src_sb, st.src_ss};
  if (st.stage) {
    time_t* staged = reinterpret_cast<time_t*>(staged_times);
    stage_row(times, L, staged);
    __syncthreads();
    times = {staged, 1};
  }
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    const TargetPlan plan = resolve_target(times, L, st.tgt[b * st.tgt_sb + (t0 + i) * st.tgt_st], st.mode, st.oor,
                                           false, 0.0);
    s_left[i] = static_cast<int32_t>(plan.left);
    s_right[i] = static_cast<int32_t>(plan.right);
    s_weight[i] = plan.kind == TargetKind::Lerp ? static_cast<acc_t>(plan.weight) : acc_t(0);
    s_kind[i] = plan.kind;
    const bool has_slope = plan.kind == TargetKind::Copy || plan.kind == TargetKind::Lerp;
    s_slope_lo[i] = static_cast<int32_t>(plan.slope_lo);
    s_slope_hi[i] = static_cast<int32_t>(plan.slope_hi);
    s_slope_scale[i] = has_slope ? plan.slope_scale : 0.0;
    s_dot[i] = acc_t(0);
  }
  __syncthreads();

  const scalar_t* rows = data.ptr + b * data.sb;
  const int64_t D = data.D;
  const int64_t items = count * D;
  for (int64_t item = threadIdx.x; item < items; item += blockDim.x) {
    const int i = static_cast<int>(item / D);
    const int64_t d = item - i * D;
    const TargetKind kind = s_kind[i];
    if (kind != TargetKind::Copy && kind != TargetKind::Lerp) continue;
    const acc_t g = static_cast<acc_t>(grad_out[(b * data.T + t0 + i) * D + d]);
    if (grad_data != nullptr) {
      const acc_t w = s_weight[i];
      atomicAdd(grad_data + (b * st.S + s_left[i]) * D + d, (acc_t(1) - w) * g);
      if (kind == TargetKind::Lerp) atomicAdd(grad_data + (b * st.S + s_right[i]) * D + d, w * g);
    }
    if (grad_tgt != nullptr && s_slope_scale[i] != 0.0) {
      const acc_t rise = static_cast<acc_t>(rows[s_slope_hi[i] * data.ss + d * data.sd]) -
                         static_cast<acc_t>(rows[s_slope_lo[i] * data.ss + d * data.sd]);
      atomicAdd(&s_dot[i], g * rise);
    }
  }
  if (grad_tgt == nullptr) return;
  __syncthreads();
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    grad_tgt[b * data.T + t0 + i] = static_cast<grad_time_t>(static_cast<double>(s_dot[i]) * s_slope_scale[i]);
  }
}

std::tuple<at::Tensor, at::Tensor> resample_backward_cuda(const at::Tensor& grad_out, const at::Tensor& data,
                                                          const at::Tensor& src_times, const at::Tensor& tgt_times,
                                                          c10::string_view mode,
                                                          const std::optional<at::Tensor>& src_lengths,
                                                          c10::string_view out_of_range,
                                                          std::array<bool, 2> output_mask) {
  const ResampleArgs a =
      check_resample_args(data, src_times, tgt_times, mode, src_lengths, std::nullopt, out_of_range);
  ResampleBackwardBuffers buffers = start_resample_backward(grad_out, data, tgt_times, a, output_mask);
  const c10::cuda::CUDAGuard guard(data.device());
  if (output_mask[0]) at::globalContext().alertNotDeterministic("_resample_backward (CUDA, gradient of data)");
  if (a.B * a.T > 0 && (output_mask[0] || output_mask[1])) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, data.scalar_type(), "resample_backward_cuda", [&] {
      ROBOCACHE_DISPATCH_TIME_TYPES(src_times.scalar_type(), "resample_backward_cuda", [&] {
        using grad_time_t = std::conditional_t<std::is_same_v<time_t, double>, double, float>;
        const SourceTimes<time_t> st = source_times<time_t>(src_times, tgt_times, src_lengths, a);
        DataView<scalar_t> view{data.const_data_ptr<scalar_t>(), data.stride(0), data.stride(1), data.stride(2),
                                a.D, a.T, 0, 0, -1};
        view.tile_t = tile_targets(a.D, 1, a.T);
        view.tiles_per_row = ceil_div(a.T, view.tile_t);
        const int64_t blocks = a.B * view.tiles_per_row;
        const size_t shared = st.stage ? st.S * sizeof(time_t) : 0;
        resample_backward_kernel<scalar_t, time_t, grad_time_t>
            <<<blocks, kThreads, shared, c10::cuda::getCurrentCUDAStream()>>>(
                st, view, buffers.grad_out.const_data_ptr<scalar_t>(),
                output_mask[0] ? buffers.grad_data_acc.mutable_data_ptr<at::opmath_type<scalar_t>>() : nullptr,
                output_mask[1] ? buffers.grad_tgt.mutable_data_ptr<grad_time_t>() : nullptr);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return finish_resample_backward(buffers, data, tgt_times);
}

}  // namespace

TORCH_LIBRARY_IMPL(robocache, CUDA, m) {
  m.impl("resample", &resample_cuda);
  m.impl("_resample_backward", &resample_backward_cuda);
}

}  // namespace robocache
