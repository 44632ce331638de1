// resample: the host-side contract and the per-target math shared by the CPU and CUDA kernels.
//
// Each target time x of row b is resolved once into a TargetPlan: which source rows feed it, with what
// weight, whether it is valid, and which segment's slope is d out / d x. The D columns are then a pure
// gather/lerp over that plan. Keeping this one function for both backends (and for fuse) is what makes
// CPU and CUDA agree on every index decision: searches compare times in their own dtype, and distances
// and weights are computed in float64 (int64 differences are taken exactly before the conversion, so
// epoch-scale nanosecond clocks lose nothing).
#pragma once

#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>

#include "checks.h"

namespace robocache {

enum class ResampleMode : int { Linear = 0, Previous = 1, Nearest = 2, Slerp = 3 };
enum class OutOfRange : int { Hold = 0, Extrapolate = 1, Zero = 2 };

// How the D columns of one target are produced.
enum class TargetKind : int8_t {
  Zero = 0,  // zeros (empty row, or "zero" policy outside the range)
  NaN = 1,   // NaN target time: a NaN row
  Copy = 2,  // bit-exact copy of source row `left`
  Lerp = 3,  // v[left] + weight * (v[right] - v[left]) (slerp mode: spherical interpolation)
};

struct TargetPlan {
  int64_t left = 0;
  int64_t right = 0;
  double weight = 0.0;
  TargetKind kind = TargetKind::Zero;
  bool valid = false;
  // d out / d x = slope_scale * (v[slope_hi] - v[slope_lo]); slope_scale == 0 where the value is held.
  int64_t slope_lo = 0;
  int64_t slope_hi = 0;
  double slope_scale = 0.0;
};

// Strided view of one row of timestamps.
template <typename time_t>
struct TimeRow {
  const time_t* ptr;
  int64_t stride;
  C10_HOST_DEVICE time_t operator[](int64_t i) const { return ptr[i * stride]; }
};

C10_HOST_DEVICE inline double time_diff(int64_t a, int64_t b) { return static_cast<double>(a - b); }
C10_HOST_DEVICE inline double time_diff(double a, double b) { return a - b; }
C10_HOST_DEVICE inline double time_diff(float a, float b) {
  return static_cast<double>(a) - static_cast<double>(b);
}
C10_HOST_DEVICE inline bool time_is_nan(int64_t) { return false; }
C10_HOST_DEVICE inline bool time_is_nan(double x) { return x != x; }
C10_HOST_DEVICE inline bool time_is_nan(float x) { return x != x; }

// The last index i in [0, L) with src[i] <= x, or -1 (upper_bound - 1), for src sorted over [0, L), L >= 1 and x
// not NaN. Sensor clocks tick at a nearly constant rate, so the search starts where a uniform clock would have x
// and gallops from there: for a jittered clock that is two or three dependent reads (on the GPU each one a memory
// round trip, which made bisection's log2(L) reads the cost of a tile's plan, profiling/NOTES.md), and at most
// about 2 log2(L) when the rate varies wildly. Unsorted times get some index in [-1, L), never one outside it.
template <typename time_t>
C10_HOST_DEVICE inline int64_t find_left(TimeRow<time_t> src, int64_t L, time_t x) {
  const time_t first = src[0], last = src[L - 1];
  if (!(first <= x)) return -1;
  if (!(x < last)) return L - 1;
  // first <= x < last: L >= 2 and the answer is in [0, L - 2].
  const double guess = time_diff(x, first) / time_diff(last, first) * static_cast<double>(L - 1);
  const double top = static_cast<double>(L - 2);
  const int64_t g = static_cast<int64_t>(guess >= 0.0 ? (guess < top ? guess : top) : 0.0);  // NaN: 0
  const time_t at_g = src[g], after_g = src[g + 1];  // issued together: one round trip when the guess is right
  if (at_g <= x && x < after_g) return g;
  int64_t lo, hi;  // src[lo] <= x < src[hi] (for sorted times) when the galloping stops
  if (at_g <= x) {
    lo = g + 1;
    hi = g + 2 < L - 1 ? g + 2 : L - 1;
    for (int64_t step = 2; hi < L - 1 && src[hi] <= x; step *= 2) {
      lo = hi;
      hi = lo + step < L - 1 ? lo + step : L - 1;
    }
  } else {  // x < src[g], so g >= 1 (src[0] <= x)
    hi = g;
    lo = g - 1;
    for (int64_t step = 2; lo > 0 && src[lo] > x; step *= 2) {
      hi = lo;
      lo = hi - step > 0 ? hi - step : 0;
    }
  }
  while (hi - lo > 1) {
    const int64_t mid = lo + ((hi - lo) >> 1);
    if (src[mid] <= x) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// `has_tolerance == false` means no tolerance test. `L` is the row's real length, already in [0, S].
template <typename time_t>
C10_HOST_DEVICE inline TargetPlan resolve_target(TimeRow<time_t> src, int64_t L, time_t x, ResampleMode mode,
                                                 OutOfRange oor, bool has_tolerance, double tolerance) {
  TargetPlan p;
  if (L <= 0) return p;  // zeros, invalid (NaN targets included)
  if (time_is_nan(x)) {
    p.kind = TargetKind::NaN;
    return p;
  }
  // left = last index with src[left] <= x (upper bound - 1), so the last duplicate wins.
  const int64_t left = find_left(src, L, x);
  const bool linear = mode == ResampleMode::Linear;
  const bool can_extrapolate = oor == OutOfRange::Extrapolate && linear && L >= 2;

  if (left < 0 || (left == L - 1 && !(x == src[L - 1]))) {
    // Outside [s_0, s_{L-1}]: never valid.
    if (oor == OutOfRange::Zero) return p;
    const bool below = left < 0;
    const int64_t a = below ? 0 : L - 2;  // the end segment [a, a+1]
    if (can_extrapolate) {
      const double len = time_diff(src[a + 1], src[a]);
      if (len > 0.0) {
        p.kind = TargetKind::Lerp;
        p.left = a;
        p.right = a + 1;
        p.weight = time_diff(x, src[a]) / len;
        p.slope_lo = a;
        p.slope_hi = a + 1;
        p.slope_scale = 1.0 / len;
        return p;
      }
    }
    p.kind = TargetKind::Copy;
    p.left = p.right = below ? 0 : L - 1;
    return p;
  }

  // Inside the range: src[left] <= x, and either left < L-1 with x < src[left+1], or x == src[L-1].
  const double d_left = time_diff(x, src[left]);
  const bool exact = x == src[left];
  const bool has_right = left + 1 < L;
  const double d_right = has_right ? time_diff(src[left + 1], x) : 0.0;
  const double nearest_distance = (!has_right || d_left <= d_right) ? d_left : d_right;
  const double used_distance = mode == ResampleMode::Previous ? d_left : nearest_distance;
  p.valid = !has_tolerance || used_distance <= tolerance;
  p.left = p.right = left;

  if (linear) {
    if (has_right) {
      const double len = time_diff(src[left + 1], src[left]);
      p.slope_lo = left;
      p.slope_hi = left + 1;
      p.slope_scale = 1.0 / len;
    } else if (oor == OutOfRange::Extrapolate && L >= 2) {
      // x == s_{L-1}: the derivative continues the extrapolated end segment.
      const double len = time_diff(src[L - 1], src[L - 2]);
      if (len > 0.0) {
        p.slope_lo = L - 2;
        p.slope_hi = L - 1;
        p.slope_scale = 1.0 / len;
      }
    }
  }
  if (exact || !has_right) {
    p.kind = TargetKind::Copy;
    return p;
  }
  switch (mode) {
    case ResampleMode::Previous:
      p.kind = TargetKind::Copy;
      break;
    case ResampleMode::Nearest:
      p.kind = TargetKind::Copy;
      if (d_right < d_left) p.left = p.right = left + 1;  // halfway goes to the earlier sample
      break;
    case ResampleMode::Linear:
    case ResampleMode::Slerp:
      p.kind = TargetKind::Lerp;
      p.right = left + 1;
      p.weight = d_left / time_diff(src[left + 1], src[left]);
      break;
  }
  return p;
}

// Unit quaternion (a zero quaternion stays zero rather than becoming NaN).
template <typename acc_t>
C10_HOST_DEVICE inline void normalize_quaternion(acc_t q[4]) {
  const acc_t n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  if (n > acc_t(0)) {
    for (int k = 0; k < 4; ++k) q[k] = q[k] / n;
  }
}

// Spherical interpolation of unit quaternions a -> b (x, y, z, w) along the shortest arc, normalised.
// Close quaternions (dot > 0.9995) fall back to a normalised lerp, where acos loses precision.
template <typename acc_t>
C10_HOST_DEVICE inline void slerp_quaternion(const acc_t a[4], const acc_t b_in[4], acc_t w, acc_t out[4]) {
  acc_t b[4];
  acc_t dot = a[0] * b_in[0] + a[1] * b_in[1] + a[2] * b_in[2] + a[3] * b_in[3];
  const acc_t sign = dot < acc_t(0) ? acc_t(-1) : acc_t(1);
  for (int k = 0; k < 4; ++k) b[k] = sign * b_in[k];
  dot = dot * sign;
  acc_t s0, s1;
  if (dot > acc_t(0.9995)) {
    s0 = acc_t(1) - w;
    s1 = w;
  } else {
    const acc_t theta0 = std::acos(dot < acc_t(1) ? dot : acc_t(1));
    const acc_t sin_theta0 = std::sin(theta0);
    s0 = std::sin((acc_t(1) - w) * theta0) / sin_theta0;
    s1 = std::sin(w * theta0) / sin_theta0;
  }
  for (int k = 0; k < 4; ++k) out[k] = s0 * a[k] + s1 * b[k];
  normalize_quaternion(out);
}

// ---- host side -------------------------------------------------------------------------------------

ResampleMode parse_resample_mode(c10::string_view mode);
OutOfRange parse_out_of_range(c10::string_view out_of_range);

// Validated sizes and options of one resample call.
struct ResampleArgs {
  int64_t B, S, T, D;
  ResampleMode mode;
  OutOfRange oor;
  bool has_tolerance;
  double tolerance;
};

ResampleArgs check_resample_args(const at::Tensor& data, const at::Tensor& src_times, const at::Tensor& tgt_times,
                                 c10::string_view mode, const std::optional<at::Tensor>& src_lengths,
                                 std::optional<double> tolerance, c10::string_view out_of_range);

// ROBOCACHE_DEBUG=1: verify what the kernels cannot check without a host sync (sorted source times,
// lengths within [0, S]). Synchronises on CUDA; off by default.
bool debug_checks_enabled();
void debug_check_resample_inputs(const at::Tensor& src_times, const std::optional<at::Tensor>& src_lengths,
                                 int64_t S, const char* op);

// The device-independent halves of _resample_backward, shared by the CPU and CUDA kernels.
struct ResampleBackwardBuffers {
  at::Tensor grad_out;       // contiguous, in data's dtype
  at::Tensor grad_data_acc;  // [B,S,D] zeros in float32 (float64 for float64 data); undefined when not wanted
  at::Tensor grad_tgt;       // [B,T] in tgt_times's dtype; undefined when not wanted
};
// Checks grad_out against the forward's shape and device and allocates the buffers output_mask asks for.
ResampleBackwardBuffers start_resample_backward(const at::Tensor& grad_out, const at::Tensor& data,
                                                const at::Tensor& tgt_times, const ResampleArgs& a,
                                                std::array<bool, 2> output_mask);
// The op's outputs: grad_data in data's dtype and grad_tgt_times in tgt_times's shape (summed over rows for a
// shared 1-D time base), each [0] when not wanted.
std::tuple<at::Tensor, at::Tensor> finish_resample_backward(ResampleBackwardBuffers& buffers, const at::Tensor& data,
                                                            const at::Tensor& tgt_times);

}  // namespace robocache
