// Graph rewrites done once after loading, before inference and placement.
#pragma once

#include "graph.h"

namespace outpost {

// Folds Relu and Clip (constant float bounds) into the Conv that feeds them, when the Conv's
// output has no other use and is not a graph output. Returns how many were fused.
int FuseActivations(Graph* g);

}  // namespace outpost
