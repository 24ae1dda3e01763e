#pragma once
// The autograd tape. Every differentiable op that runs while grad mode is on
// and has an input that requires grad appends one Entry to the calling
// thread's tape: the ids of its outputs, its inputs, and a backward function
// that maps output gradients to input gradients. backward() walks the tape in
// reverse, accumulates gradients by tensor id, adds them into .grad of leaf
// tensors, and clears the tape (releasing every saved tensor).
//
// Gradient rule: leaf .grad accumulates (+=) across backward calls until
// zero_grad(); everything else is written fresh by each backward.
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace ssm {

// Gradients of an op's inputs, in input order; an undefined Tensor means
// "no gradient" (the input does not require grad, or is not differentiable).
using GradList = std::vector<Tensor>;
// (gradients of the outputs) -> gradients of the inputs. Output gradients are
// never undefined: an output that received no gradient gets zeros.
using BackwardFn = std::function<GradList(const GradList& grad_outputs)>;

struct TapeInput {
  std::uint64_t uid = 0;
  bool requires_grad = false;
  Shape shape;  // checked against the gradient backward returns
  DType dtype = DType::Float32;
  Device device;
  std::shared_ptr<TensorImpl> leaf;  // set for leaves: where .grad goes
};

struct TapeEntry {
  const char* name = "";
  std::vector<TapeInput> inputs;
  std::vector<std::uint64_t> output_uids;
  std::vector<Shape> output_shapes;
  DType dtype = DType::Float32;
  Device device;
  BackwardFn backward;
};

// Grad mode is per thread and on by default.
bool grad_enabled();
void set_grad_enabled(bool on);

// Turns grad mode off for its scope (evaluation, inference, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and any input requires grad: the op must record.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records an op: marks the outputs as requiring grad (non-leaf) and appends
// the entry. Call only when needs_grad(...) is true.
void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward);

// backward(loss): loss must have one element; its gradient is 1.
void backward(const Tensor& loss);
// backward(t, grad): seeds t's gradient with grad (same shape as t).
void backward(const Tensor& t, const Tensor& grad);

// Drops every entry of this thread's tape without running it.
void clear_tape();
std::size_t tape_size();

}  // namespace ssm
