// resample: argument checks shared by the CPU and CUDA entry points.
#include "resample.h"

#include <cstdlib>
#include <limits>
#include <string>

namespace robocache {

ResampleMode parse_resample_mode(c10::string_view mode) {
  if (mode == "linear") return ResampleMode::Linear;
  if (mode == "previous") return ResampleMode::Previous;
  if (mode == "nearest") return ResampleMode::Nearest;
  if (mode == "slerp") return ResampleMode::Slerp;
  TORCH_CHECK_VALUE(false, "resample: expected mode to be one of 'linear', 'previous', 'nearest', 'slerp', got '",
                    std::string(mode), "'");
}

OutOfRange parse_out_of_range(c10::string_view out_of_range) {
  if (out_of_range == "hold") return OutOfRange::Hold;
  if (out_of_range == "extrapolate") return OutOfRange::Extrapolate;
  if (out_of_range == "zero") return OutOfRange::Zero;
  TORCH_CHECK_VALUE(false, "resample: expected out_of_range to be one of 'hold', 'extrapolate', 'zero', got '",
                    std::string(out_of_range), "'");
}

ResampleArgs check_resample_args(const at::Tensor& data, const at::Tensor& src_times, const at::Tensor& tgt_times,
                                 c10::string_view mode, const std::optional<at::Tensor>& src_lengths,
                                 std::optional<double> tolerance, c10::string_view out_of_range) {
  constexpr const char* op = "resample";
  check_rank(data, 3, op, "data [B,S,D]");
  check_float_dtype(data, op, "data");
  ResampleArgs a;
  a.B = data.size(0);
  a.S = data.size(1);
  a.D = data.size(2);
  TORCH_CHECK_VALUE(a.D <= std::numeric_limits<int32_t>::max(), op, ": expected fewer than 2^31 columns, got D=",
                    a.D);
  TORCH_CHECK_VALUE(src_times.dim() == 1 || src_times.dim() == 2, op,
                    ": expected src_times of shape [B,S] or [S], got shape ", shape_str(src_times));
  TORCH_CHECK_VALUE(tgt_times.dim() == 1 || tgt_times.dim() == 2, op,
                    ": expected tgt_times of shape [B,T] or [T], got shape ", shape_str(tgt_times));
  const bool src_batched = src_times.dim() == 2;
  TORCH_CHECK_VALUE(src_times.size(-1) == a.S && (!src_batched || src_times.size(0) == a.B), op,
                    ": expected src_times of shape [", a.B, ", ", a.S, "] or [", a.S, "] to match data ",
                    shape_str(data), ", got shape ", shape_str(src_times));
  TORCH_CHECK_VALUE(tgt_times.dim() == 1 || tgt_times.size(0) == a.B, op, ": expected tgt_times of shape [", a.B,
                    ", T] or [T] to match data ", shape_str(data), ", got shape ", shape_str(tgt_times));
  a.T = tgt_times.size(-1);
  check_same_device(src_times, data, op, "src_times", "data");
  check_same_device(tgt_times, data, op, "tgt_times", "data");
  const auto tdt = src_times.scalar_type();
  TORCH_CHECK_TYPE(tdt == at::kFloat || tdt == at::kDouble || tdt == at::kLong, op,
                   ": expected src_times to be float32, float64 or int64, got ", tdt);
  TORCH_CHECK_TYPE(tgt_times.scalar_type() == tdt, op, ": expected tgt_times to have the dtype of src_times (", tdt,
                   "), got ", tgt_times.scalar_type());
  if (src_lengths.has_value()) check_lengths(*src_lengths, a.B, data, op, "src_lengths");
  a.mode = parse_resample_mode(mode);
  a.oor = parse_out_of_range(out_of_range);
  if (a.mode == ResampleMode::Slerp) {
    TORCH_CHECK_VALUE(a.D % 4 == 0, op, ": mode='slerp' expects D to be a multiple of 4 (x, y, z, w quaternions), got D=",
                      a.D);
  }
  a.has_tolerance = tolerance.has_value();
  a.tolerance = tolerance.value_or(0.0);
  TORCH_CHECK_VALUE(!a.has_tolerance || a.tolerance >= 0.0, op, ": expected tolerance >= 0, got ", a.tolerance);
  TORCH_CHECK_VALUE(a.S < (int64_t{1} << 31) && a.T < (int64_t{1} << 31), op,
                    ": S and T must each be below 2^31, got S=", a.S, " T=", a.T);
  return a;
}

}  // namespace robocache

namespace robocache {

bool debug_checks_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("ROBOCACHE_DEBUG");
    return v != nullptr && std::string(v) != "0" && std::string(v) != "";
  }();
  return enabled;
}

void debug_check_resample_inputs(const at::Tensor& src_times, const std::optional<at::Tensor>& src_lengths,
                                 int64_t S, const char* op) {
  const at::Tensor times = src_times.dim() == 1 ? src_times.unsqueeze(0) : src_times;
  at::Tensor lengths;
  if (src_lengths.has_value()) {
    lengths = *src_lengths;
    const bool in_range = at::logical_and(lengths >= 0, lengths <= S).all().item<bool>();
    TORCH_CHECK_VALUE(in_range, op, ": expected every src_lengths value in [0, ", S, "], got ", lengths.cpu());
  }
  if (S < 2) return;
  // A step i -> i+1 counts when both samples are real: i + 1 < L.
  at::Tensor decreasing = times.narrow(-1, 1, S - 1) < times.narrow(-1, 0, S - 1);
  if (src_lengths.has_value()) {
    const at::Tensor step = at::arange(1, S, times.options().dtype(at::kLong));
    decreasing = at::logical_and(decreasing, step.unsqueeze(0) < lengths.unsqueeze(1));
  }
  TORCH_CHECK_VALUE(!decreasing.any().item<bool>(), op,
                    ": ROBOCACHE_DEBUG found source times that decrease within a row; they must be non-decreasing");
}

ResampleBackwardBuffers start_resample_backward(const at::Tensor& grad_out, const at::Tensor& data,
                                                const at::Tensor& tgt_times, const ResampleArgs& a,
                                                std::array<bool, 2> output_mask) {
  constexpr const char* op = "_resample_backward";
  TORCH_CHECK_VALUE(grad_out.sizes() == at::IntArrayRef({a.B, a.T, a.D}), op, ": expected grad_out of shape [", a.B,
                    ", ", a.T, ", ", a.D, "], got ", shape_str(grad_out));
  check_same_device(grad_out, data, op, "grad_out", "data");
  ResampleBackwardBuffers buffers;
  buffers.grad_out = grad_out.to(data.scalar_type()).contiguous();
  if (output_mask[0]) {
    const auto acc_dtype = data.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    buffers.grad_data_acc = at::zeros({a.B, a.S, a.D}, data.options().dtype(acc_dtype));
  }
  if (output_mask[1]) {
    TORCH_CHECK_TYPE(tgt_times.is_floating_point(), op, ": a gradient for tgt_times needs float times");
    buffers.grad_tgt = at::empty({a.B, a.T}, tgt_times.options());
  }
  return buffers;
}

std::tuple<at::Tensor, at::Tensor> finish_resample_backward(ResampleBackwardBuffers& buffers, const at::Tensor& data,
                                                            const at::Tensor& tgt_times) {
  at::Tensor grad_data = buffers.grad_data_acc.defined() ? buffers.grad_data_acc.to(data.scalar_type())
                                                         : at::empty({0}, data.options());
  at::Tensor grad_tgt = buffers.grad_tgt;
  if (!grad_tgt.defined()) {
    grad_tgt = at::empty({0}, tgt_times.options());
  } else if (tgt_times.dim() == 1) {
    grad_tgt = grad_tgt.sum(0);  // a time base shared by all rows
  }
  return {grad_data, grad_tgt};
}

}  // namespace robocache
