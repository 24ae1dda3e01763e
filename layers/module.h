#pragma once
// Module: a node of the model tree. It owns named parameters (leaf tensors
// that require grad), named buffers (state saved with the model but not
// trained, e.g. batch-norm running statistics) and named submodules. Names
// are dotted paths from the root, the same as PyTorch's state_dict keys:
// `layers.0.mixer.in_proj.weight`.
//
// Parameters carry tags that optimizer groups select on: "ssm" (A, B, dt,
// log_dt, P, A_log, ...: own learning rate, no weight decay) and "no_decay"
// (biases, norm weights, embeddings that should not decay).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace ssm {

struct NamedParameter {
  std::string name;  // dotted path from the root
  Tensor tensor;     // a leaf that requires grad
  std::vector<std::string> tags;
  bool has_tag(const std::string& tag) const;
};

// state_dict(): parameters and buffers by dotted name, in registration order.
using StateDict = std::vector<std::pair<std::string, Tensor>>;

// What load_state_dict found: keys the module has but the dict lacks,
// keys the dict has but the module lacks, and shape or dtype mismatches.
struct LoadReport {
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::vector<std::string> mismatched;  // "name: expected (2, 3) float32, got (3, 2) float32"
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string message() const;  // one line per problem, empty when ok()
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its submodules, depth first in
  // registration order, with dotted names (prefixed by `prefix`).
  std::vector<NamedParameter> named_parameters(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  std::int64_t num_parameters() const;  // total elements
  StateDict named_buffers(const std::string& prefix = "") const;

  // Parameters then buffers, each by dotted name.
  StateDict state_dict() const;
  // Copies matching entries into this module's tensors (no autograd). With
  // strict (the default) any missing, unexpected or mismatched key throws an
  // ssm::Error naming them all ([load_state_dict] ...), and nothing is copied.
  // Without strict, the matching entries are copied and the report returned.
  LoadReport load_state_dict(const StateDict& state, bool strict = true);

  // train(true) / train(false): sets the mode of this module and every submodule.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves every parameter and buffer to `device` (parameters stay leaves).
  void to(Device device);

 protected:
  // Registers and returns the tensor (marked requires_grad).
  Tensor& register_parameter(const std::string& name, Tensor t, std::vector<std::string> tags = {});
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_submodule(name, m);
    return m;
  }

 private:
  void add_submodule(const std::string& name, std::shared_ptr<Module> m);
  struct Param {
    std::string name;
    Tensor tensor;
    std::vector<std::string> tags;
  };
  // Each entry lives in its own node so that the reference register_*
  // returned stays valid as more are registered.
  std::vector<std::unique_ptr<Param>> params_;
  std::vector<std::unique_ptr<std::pair<std::string, Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace ssm
