// The one factory of the filters: a FilterKind and its settings in, an EnsembleFilter out,
// running on the CPU or (Backend::kGpu) on this rank's GPU through kernels/hip.
#pragma once

#include <memory>

#include "filters/ensemble_filter.hpp"
#include "filters/ensf.hpp"
#include "filters/letkf.hpp"
#include "hip/device.hpp"

namespace rtda::filters {

// Throws std::invalid_argument (the settings' validate()) for settings out of range.
std::unique_ptr<EnsembleFilter> make_filter(FilterKind kind, const LetkfSettings& letkf,
                                            const EnsfSettings& ensf,
                                            device::Backend backend = device::Backend::kCpu);

}  // namespace rtda::filters
