// The ViT's patch embedding (surrogate.embedding; docs/surrogate.md), header-only so that the
// configuration can hold it without linking the surrogate.
#pragma once

#include "core/names.hpp"

namespace rtda::surrogate {

// kJoint: one Linear on the 2 p^2 values of both levels of a patch; kPerLevel: a Linear
// p^2 -> dim per level, the two tokens merged by cross-attention from a learned query.
enum class PatchEmbedding { kJoint, kPerLevel };
inline constexpr core::NameTable<PatchEmbedding, 2> kPatchEmbeddingNames{{{
    {PatchEmbedding::kJoint, "joint"},
    {PatchEmbedding::kPerLevel, "per-level"},
}}};

}  // namespace rtda::surrogate
