// Argument checks shared by every op. Each message starts with the op name and says what was expected
// and what was given; value errors surface in Python as ValueError, type errors as TypeError.
#pragma once

#include <ATen/ATen.h>

#include <sstream>
#include <string>

namespace robocache {

inline std::string shape_str(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

inline void check_rank(const at::Tensor& t, int64_t rank, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == rank, op, ": expected ", name, " to have ", rank, " dimensions, got shape ",
                    shape_str(t));
}

inline void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* name,
                              const char* ref_name) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), op, ": expected ", name, " on the same device as ", ref_name,
                    " (", ref.device(), "), got ", t.device());
}

inline void check_float_dtype(const at::Tensor& t, const char* op, const char* name) {
  const auto d = t.scalar_type();
  TORCH_CHECK_TYPE(d == at::kFloat || d == at::kDouble || d == at::kHalf || d == at::kBFloat16, op, ": expected ",
                   name, " to be float32, float64, float16 or bfloat16, got ", d);
}

inline void check_lengths(const at::Tensor& lengths, int64_t batch, const at::Tensor& ref, const char* op,
                          const char* name) {
  check_same_device(lengths, ref, op, name, "data");
  TORCH_CHECK_TYPE(lengths.scalar_type() == at::kLong, op, ": expected ", name, " to be int64, got ",
                   lengths.scalar_type());
  TORCH_CHECK_VALUE(lengths.dim() == 1 && lengths.size(0) == batch, op, ": expected ", name, " of shape [", batch,
                    "], got shape ", shape_str(lengths));
}

// Dispatch over the time dtypes (float32, float64, int64) with `time_t` bound inside the lambda.
#define ROBOCACHE_DISPATCH_TIME_TYPES(TYPE, NAME, ...)                         \
  AT_DISPATCH_SWITCH(TYPE, NAME,                                               \
                     AT_PRIVATE_CASE_TYPE_USING_HINT(at::kFloat, time_t, __VA_ARGS__)  \
                     AT_PRIVATE_CASE_TYPE_USING_HINT(at::kDouble, time_t, __VA_ARGS__) \
                     AT_PRIVATE_CASE_TYPE_USING_HINT(at::kLong, time_t, __VA_ARGS__))

}  // namespace robocache
