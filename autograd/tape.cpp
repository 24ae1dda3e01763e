#include "autograd/tape.h"

#include <unordered_map>

#include "kernels/elementwise.h"

namespace ssm {

namespace {

thread_local bool g_grad_enabled = true;
thread_local std::vector<TapeEntry> g_tape;

// Adds g into acc (out of place; acc may be undefined).
Tensor accumulate(const Tensor& acc, const Tensor& g) {
  if (!acc.defined()) return g;
  return kernels::binary_forward(kernels::BinaryOp::Add, acc, g);
}

void check_grad(const char* op, const Tensor& g, const Shape& shape, DType dtype, Device device) {
  SSM_CHECK(g.shape() == shape && g.dtype() == dtype && g.device() == device, "backward", "op '",
            op, "' returned a gradient ", g.desc(), " for an input of shape ", shape_str(shape),
            " ", dtype_name(dtype), " ", device.str());
}

// True when g is a plain contiguous tensor that no other handle, view or
// saved tensor shares: its impl and its storage each have one owner.
bool exclusively_owned(const Tensor& g) {
  return g.impl_ptr().use_count() == 1 && g.storage() && g.storage().use_count() == 1 &&
         g.is_contiguous() && g.offset() == 0 && !g.requires_grad();
}

}  // namespace

bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool on) { g_grad_enabled = on; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs) {
    if (t && t->requires_grad()) return true;
  }
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs) {
    if (t.requires_grad()) return true;
  }
  return false;
}

void record(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs,
            BackwardFn backward) {
  TapeEntry e;
  e.name = name;
  e.backward = std::move(backward);
  e.inputs.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    TapeInput in;
    if (t.defined()) {
      in.uid = t.impl()->uid;
      in.requires_grad = t.requires_grad();
      in.shape = t.shape();
      in.dtype = t.dtype();
      in.device = t.device();
      if (in.requires_grad && t.is_leaf()) in.leaf = t.impl_ptr();
    }
    e.inputs.push_back(std::move(in));
  }
  for (const Tensor& t : outputs) {
    TensorImpl* impl = t.impl();
    impl->requires_grad = true;
    impl->is_leaf = false;
    e.output_uids.push_back(impl->uid);
    e.output_shapes.push_back(t.shape());
    e.dtype = t.dtype();
    e.device = t.device();
  }
  g_tape.push_back(std::move(e));
}

void backward(const Tensor& loss) {
  SSM_CHECK(loss.defined() && loss.numel() == 1, "backward", "expected a one-element loss, got ",
            loss.desc(), " (use backward(t, grad) for a non-scalar output)");
  backward(loss, Tensor::ones(loss.shape(), loss.dtype(), loss.device()));
}

void backward(const Tensor& t, const Tensor& grad) {
  SSM_CHECK(t.defined() && t.requires_grad(), "backward",
            "tensor does not require grad (was it computed under NoGradGuard, or from inputs "
            "that do not require grad?)");
  SSM_CHECK(grad.shape() == t.shape(), "backward", "gradient ", grad.desc(),
            " does not match tensor ", t.desc());
  // Take the tape so that ops run inside backward functions record nothing
  // here and so that the tape is released even when backward throws.
  std::vector<TapeEntry> tape;
  tape.swap(g_tape);
  NoGradGuard no_grad;
  if (t.is_leaf()) {
    Tensor g = grad.to(t.dtype()).to(t.device());
    t.set_grad(t.grad().defined() ? accumulate(t.grad(), g) : g.clone());
    return;
  }
  std::unordered_map<std::uint64_t, Tensor> grads;
  grads[t.impl()->uid] = grad.to(t.dtype()).to(t.device());
  for (auto it = tape.rbegin(); it != tape.rend(); ++it) {
    TapeEntry& e = *it;
    GradList gout(e.output_uids.size());
    bool any = false;
    for (std::size_t k = 0; k < e.output_uids.size(); ++k) {
      auto g = grads.find(e.output_uids[k]);
      if (g != grads.end()) {
        gout[k] = std::move(g->second);
        grads.erase(g);
        any = true;
      }
    }
    if (!any) continue;
    for (std::size_t k = 0; k < gout.size(); ++k) {
      if (!gout[k].defined()) gout[k] = Tensor::zeros(e.output_shapes[k], e.dtype, e.device);
    }
    GradList gin = e.backward(gout);
    SSM_CHECK(gin.size() == e.inputs.size(), "backward", "op '", e.name, "' returned ", gin.size(),
              " gradients for ", e.inputs.size(), " inputs");
    for (std::size_t k = 0; k < gin.size(); ++k) {
      const TapeInput& in = e.inputs[k];
      if (!in.requires_grad || !gin[k].defined()) continue;
      check_grad(e.name, gin[k], in.shape, in.dtype, in.device);
      if (in.leaf) {
        Tensor leaf_t(in.leaf);
        Tensor prev = leaf_t.grad();
        // .grad never aliases another tensor: the first gradient is kept as it is
        // only when nothing else holds it or its memory, else copied.
        if (prev.defined()) {
          leaf_t.set_grad(accumulate(prev, gin[k]));
        } else {
          leaf_t.set_grad(exclusively_owned(gin[k]) ? std::move(gin[k]) : gin[k].clone());
        }
      } else {
        grads[in.uid] = accumulate(grads[in.uid], gin[k]);
      }
    }
    e.backward = nullptr;  // release saved tensors as soon as possible
  }
}

void clear_tape() { g_tape.clear(); }
std::size_t tape_size() { return g_tape.size(); }

}  // namespace ssm
