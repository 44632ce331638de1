// fuse's row-tile forward kernel (fuse_cuda.cu), offered to resample as a one-stream fuse.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "resample.h"

namespace robocache {

// resample's forward through the row-tile kernel: out [B,T,D] and valid [B,T] are written on the current
// stream. Returns false, having launched nothing, where that kernel does not apply (slerp, float64 data,
// two rows wider than its shared memory).
bool resample_forward_row_tiles(const at::Tensor& data, const at::Tensor& src_times, const at::Tensor& tgt_times,
                                const std::optional<at::Tensor>& src_lengths, const ResampleArgs& a, at::Tensor& out,
                                at::Tensor& valid);

}  // namespace robocache
