// fuse: argument checks shared by the CPU and CUDA entry points (forward and backward).
#include "fuse.h"

#include <cmath>
#include <limits>

namespace robocache {
namespace {

ResampleMode parse_stream_mode(const char* op, const std::string& mode, int64_t k) {
  if (mode == "linear") return ResampleMode::Linear;
  if (mode == "previous") return ResampleMode::Previous;
  if (mode == "nearest") return ResampleMode::Nearest;
  if (mode == "slerp") return ResampleMode::Slerp;
  TORCH_CHECK_VALUE(false, op, ": expected modes[", k, "] to be one of 'linear', 'previous', 'nearest', 'slerp', got '",
                    mode, "'");
}

}  // namespace

FuseArgs check_fuse_args(const char* op, at::TensorList data, at::TensorList times, const at::Tensor& tgt_times,
                         const std::vector<std::string>& modes, const std::vector<double>* tolerances,
                         const c10::List<std::optional<at::Tensor>>& src_lengths,
                         std::optional<at::ScalarType> out_dtype) {
  FuseArgs a;
  a.K = static_cast<int64_t>(data.size());
  TORCH_CHECK_VALUE(a.K > 0, op, ": expected at least one stream, got an empty list of data tensors");
  TORCH_CHECK_VALUE(static_cast<int64_t>(times.size()) == a.K, op, ": expected one times tensor per stream (", a.K,
                    "), got ", times.size());
  TORCH_CHECK_VALUE(static_cast<int64_t>(modes.size()) == a.K, op, ": expected one entry of modes per stream (", a.K,
                    "), got ", modes.size());
  TORCH_CHECK_VALUE(tolerances == nullptr || static_cast<int64_t>(tolerances->size()) == a.K, op,
                    ": expected one entry of tolerances per stream (", a.K, "), got ",
                    tolerances ? tolerances->size() : 0);
  TORCH_CHECK_VALUE(static_cast<int64_t>(src_lengths.size()) == a.K, op,
                    ": expected one entry of src_lengths per stream (", a.K, "), got ", src_lengths.size());

  const at::Tensor& ref = data[0];
  TORCH_CHECK_VALUE(ref.dim() == 3, op, ": expected data[0] [B,S,D] to have 3 dimensions, got shape ", shape_str(ref));
  a.B = ref.size(0);
  TORCH_CHECK_VALUE(tgt_times.dim() == 1 || tgt_times.dim() == 2, op,
                    ": expected tgt_times of shape [B,T] or [T], got shape ", shape_str(tgt_times));
  TORCH_CHECK_VALUE(tgt_times.dim() == 1 || tgt_times.size(0) == a.B, op, ": expected tgt_times of shape [", a.B,
                    ", T] or [T] to match data[0] ", shape_str(ref), ", got shape ", shape_str(tgt_times));
  TORCH_CHECK_VALUE(tgt_times.device() == ref.device(), op, ": expected tgt_times on the same device as data[0] (",
                    ref.device(), "), got ", tgt_times.device());
  const auto tdt = tgt_times.scalar_type();
  TORCH_CHECK_TYPE(tdt == at::kFloat || tdt == at::kDouble || tdt == at::kLong, op,
                   ": expected tgt_times to be float32, float64 or int64, got ", tdt);
  a.T = tgt_times.size(-1);

  bool same_dtype = true;
  a.total_D = 0;
  a.streams.resize(a.K);
  for (int64_t k = 0; k < a.K; ++k) {
    const at::Tensor& d = data[k];
    const at::Tensor& t = times[k];
    TORCH_CHECK_VALUE(d.dim() == 3, op, ": expected data[", k, "] [B,S,D] to have 3 dimensions, got shape ",
                      shape_str(d));
    TORCH_CHECK_VALUE(d.device() == ref.device(), op, ": expected data[", k, "] on the same device as data[0] (",
                      ref.device(), "), got ", d.device());
    const auto dt = d.scalar_type();
    TORCH_CHECK_TYPE(dt == at::kFloat || dt == at::kDouble || dt == at::kHalf || dt == at::kBFloat16, op,
                     ": expected data[", k, "] to be float32, float64, float16 or bfloat16, got ", dt);
    same_dtype = same_dtype && dt == ref.scalar_type();
    TORCH_CHECK_VALUE(d.size(0) == a.B, op, ": expected data[", k, "] with batch B=", a.B, " (as data[0]), got shape ",
                      shape_str(d));
    FuseStream& s = a.streams[k];
    s.S = d.size(1);
    s.D = d.size(2);
    TORCH_CHECK_VALUE(s.D <= std::numeric_limits<int32_t>::max(), op, ": expected data[", k,
                      "] with fewer than 2^31 columns, got D=", s.D);
    s.offset = a.total_D;
    a.total_D += s.D;
    TORCH_CHECK_VALUE(t.dim() == 1 || t.dim() == 2, op, ": expected times[", k, "] of shape [B,S] or [S], got shape ",
                      shape_str(t));
    TORCH_CHECK_VALUE(t.size(-1) == s.S && (t.dim() == 1 || t.size(0) == a.B), op, ": expected times[", k,
                      "] of shape [", a.B, ", ", s.S, "] or [", s.S, "] to match data[", k, "] ", shape_str(d),
                      ", got shape ", shape_str(t));
    TORCH_CHECK_VALUE(t.device() == ref.device(), op, ": expected times[", k, "] on the same device as data[0] (",
                      ref.device(), "), got ", t.device());
    TORCH_CHECK_TYPE(t.scalar_type() == tdt, op, ": expected times[", k, "] to have the dtype of tgt_times (", tdt,
                     "), got ", t.scalar_type());
    const std::optional<at::Tensor> lengths = src_lengths.get(k);
    if (lengths.has_value()) {
      const std::string name = "src_lengths[" + std::to_string(k) + "]";
      TORCH_CHECK_VALUE(lengths->device() == ref.device(), op, ": expected ", name, " on the same device as data[0] (",
                        ref.device(), "), got ", lengths->device());
      TORCH_CHECK_TYPE(lengths->scalar_type() == at::kLong, op, ": expected ", name, " to be int64, got ",
                       lengths->scalar_type());
      TORCH_CHECK_VALUE(lengths->dim() == 1 && lengths->size(0) == a.B, op, ": expected ", name, " of shape [", a.B,
                        "], got shape ", shape_str(*lengths));
    }
    s.mode = parse_stream_mode(op, modes[k], k);
    if (s.mode == ResampleMode::Slerp) {
      TORCH_CHECK_VALUE(s.D % 4 == 0, op, ": modes[", k,
                        "]='slerp' expects D to be a multiple of 4 (x, y, z, w quaternions), got data[", k,
                        "] of shape ", shape_str(d));
    }
    s.has_tolerance = false;
    s.tolerance = 0.0;
    if (tolerances != nullptr) {
      const double tol = (*tolerances)[k];
      TORCH_CHECK_VALUE(!std::isnan(tol), op, ": expected tolerances[", k,
                        "] to be a number >= 0 (or < 0 for none), got nan");
      s.has_tolerance = tol >= 0.0;
      s.tolerance = s.has_tolerance ? tol : 0.0;
    }
    TORCH_CHECK_VALUE(s.S < (int64_t{1} << 31), op, ": S must be below 2^31, got S=", s.S, " for data[", k, "]");
  }
  TORCH_CHECK_VALUE(a.T < (int64_t{1} << 31), op, ": T must be below 2^31, got T=", a.T);
  if (out_dtype.has_value()) {
    const auto o = *out_dtype;
    TORCH_CHECK_TYPE(o == at::kFloat || o == at::kDouble || o == at::kHalf || o == at::kBFloat16, op,
                     ": expected out_dtype to be float32, float64, float16 or bfloat16, got ", o);
    a.out_dtype = o;
  } else {
    if (!same_dtype) {
      std::ostringstream dtypes;
      for (int64_t k = 0; k < a.K; ++k) dtypes << (k ? ", " : "") << data[k].scalar_type();
      TORCH_CHECK_TYPE(false, op, ": streams have different dtypes (", dtypes.str(),
                       "); pass out_dtype to choose the output dtype");
    }
    a.out_dtype = ref.scalar_type();
  }
  return a;
}

void debug_check_fuse_inputs(at::TensorList times, const c10::List<std::optional<at::Tensor>>& src_lengths,
                             const FuseArgs& a, const char* op) {
  for (int64_t k = 0; k < a.K; ++k) debug_check_resample_inputs(times[k], src_lengths.get(k), a.streams[k].S, op);
}

std::optional<at::ScalarType> parse_out_dtype(const std::optional<c10::string_view>& name, const char* op) {
  if (!name.has_value()) return std::nullopt;
  if (*name == "float32") return at::kFloat;
  if (*name == "float64") return at::kDouble;
  if (*name == "float16") return at::kHalf;
  if (*name == "bfloat16") return at::kBFloat16;
  TORCH_CHECK_TYPE(false, op, ": expected out_dtype to be float32, float64, float16 or bfloat16, got '",
                   std::string(*name), "'");
}

FuseArgs check_fuse_backward_args(const at::Tensor& grad_out, at::TensorList data, at::TensorList times,
                                  const at::Tensor& tgt_times, const std::vector<std::string>& modes,
                                  const c10::List<std::optional<at::Tensor>>& src_lengths) {
  constexpr const char* op = "_fuse_backward";
  check_float_dtype(grad_out, op, "grad_out");
  FuseArgs a = check_fuse_args(op, data, times, tgt_times, modes, nullptr, src_lengths, grad_out.scalar_type());
  TORCH_CHECK_VALUE(grad_out.sizes() == at::IntArrayRef({a.B, a.T, a.total_D}), op, ": expected grad_out of shape [",
                    a.B, ", ", a.T, ", ", a.total_D, "], got ", shape_str(grad_out));
  check_same_device(grad_out, data[0], op, "grad_out", "data[0]");
  return a;
}

}  // namespace robocache
