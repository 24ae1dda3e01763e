#pragma once
// Every differentiable op of ssmkit. Layers include this header.
#include "autograd/ops/conv.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/fftconv.h"
#include "autograd/ops/linalg.h"
#include "autograd/ops/loss.h"
#include "autograd/ops/lssl.h"
#include "autograd/ops/norm.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/rtf.h"
#include "autograd/ops/s4.h"
#include "autograd/ops/shape.h"
#include "autograd/tape.h"
