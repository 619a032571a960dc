// Graph rewrites done once after loading, before inference and placement.
#pragma once

#include <string>

#include "graph.h"

namespace outpost {

// Folds Relu and Clip (constant float bounds) into the Conv that feeds them, when the Conv's
// output has no other use and is not a graph output. Returns how many were fused.
int FuseActivations(Graph* g);

// Rewrites QDQ patterns (DequantizeLinear -> float op -> [Relu/Clip] -> QuantizeLinear) into
// integer nodes: QLinearConv, QLinearMatMul, com.microsoft QGemm (when registered), QLinearAdd,
// QLinearMul, QLinearAveragePool, QLinearGlobalAveragePool, QLinearConcat; movement ops (MaxPool,
// Resize nearest, Transpose, Reshape, Flatten, Squeeze, Unsqueeze) run on the integer tensor
// when DQ and Q agree, and Relu/Clip become an integer Clip. Only when every condition holds:
// constant scales and zero points, 8-bit types, per-tensor activations, DQ outputs used only by
// the pattern. Each new node carries kQdqFrom (what it replaced). Returns how many were fused.
int FuseQdq(Graph* g);

// Attribute on nodes made by FuseQdq: the float op (and activation) they replace, e.g.
// "Conv+Relu"; `outpost inspect` shows it. The loader refuses model attributes with this prefix.
inline constexpr const char kQdqFrom[] = "_outpost_qdq_from";

// The clamp [lo, hi] an activation node applies (Relu; Clip with constant float bounds), or
// false when it is not one of those.
bool ActivationClamp(const Graph& g, const Node& n, float* lo, float* hi, std::string* name);

kernels::Attribute FloatAttr(float f);

// Puts the nodes in a topological order (keeping the current one where it is one) and rebuilds
// every value's producer and consumers.
void SortAndRebuildUses(Graph* g);

}  // namespace outpost
