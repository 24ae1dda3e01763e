#include "layers/module.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "autograd/tape.h"

namespace ssm {

namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

void check_name(const char* op, const std::string& name) {
  SSM_CHECK(!name.empty() && name.find('.') == std::string::npos, op, "name '", name,
            "' must be non-empty and contain no '.'");
}

std::string tensor_sig(const Tensor& t) {
  std::ostringstream os;
  os << shape_str(t.shape()) << ' ' << dtype_name(t.dtype());
  return os.str();
}

}  // namespace

bool NamedParameter::has_tag(const std::string& tag) const {
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

std::string LoadReport::message() const {
  std::ostringstream os;
  for (const auto& k : missing) os << "missing key " << k << '\n';
  for (const auto& k : unexpected) os << "unexpected key " << k << '\n';
  for (const auto& k : mismatched) os << "mismatch " << k << '\n';
  std::string s = os.str();
  if (!s.empty()) s.pop_back();
  return s;
}

Tensor& Module::register_parameter(const std::string& name, Tensor t,
                                   std::vector<std::string> tags) {
  check_name("register_parameter", name);
  SSM_CHECK(t.defined() && t.is_leaf(), "register_parameter", "parameter '", name,
            "' must be a defined leaf tensor");
  for (const auto& p : params_) {
    SSM_CHECK(p->name != name, "register_parameter", "duplicate parameter '", name, "'");
  }
  t.set_requires_grad(true);
  params_.push_back(std::make_unique<Param>(Param{name, std::move(t), std::move(tags)}));
  return params_.back()->tensor;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  check_name("register_buffer", name);
  SSM_CHECK(t.defined(), "register_buffer", "buffer '", name, "' is undefined");
  for (const auto& b : buffers_) {
    SSM_CHECK(b->first != name, "register_buffer", "duplicate buffer '", name, "'");
  }
  buffers_.push_back(std::make_unique<std::pair<std::string, Tensor>>(name, std::move(t)));
  return buffers_.back()->second;
}

void Module::add_submodule(const std::string& name, std::shared_ptr<Module> m) {
  check_name("register_module", name);
  SSM_CHECK(m != nullptr, "register_module", "submodule '", name, "' is null");
  for (const auto& c : children_) {
    SSM_CHECK(c.first != name, "register_module", "duplicate submodule '", name, "'");
  }
  children_.emplace_back(name, std::move(m));
}

std::vector<NamedParameter> Module::named_parameters(const std::string& prefix) const {
  std::vector<NamedParameter> out;
  for (const auto& p : params_) out.push_back({join(prefix, p->name), p->tensor, p->tags});
  for (const auto& [name, child] : children_) {
    auto sub = child->named_parameters(join(prefix, name));
    out.insert(out.end(), std::make_move_iterator(sub.begin()), std::make_move_iterator(sub.end()));
  }
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& p : named_parameters()) out.push_back(p.tensor);
  return out;
}

std::int64_t Module::num_parameters() const {
  std::int64_t n = 0;
  for (const auto& p : named_parameters()) n += p.tensor.numel();
  return n;
}

StateDict Module::named_buffers(const std::string& prefix) const {
  StateDict out;
  for (const auto& b : buffers_) out.emplace_back(join(prefix, b->first), b->second);
  for (const auto& [name, child] : children_) {
    auto sub = child->named_buffers(join(prefix, name));
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

StateDict Module::state_dict() const {
  StateDict out;
  for (auto& p : named_parameters()) out.emplace_back(p.name, p.tensor);
  for (auto& b : named_buffers()) out.push_back(b);
  return out;
}

LoadReport Module::load_state_dict(const StateDict& state, bool strict) {
  const StateDict own = state_dict();
  LoadReport report;
  std::set<std::string> own_names;
  for (const auto& [name, t] : own) own_names.insert(name);
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination, source)
  std::set<std::string> seen;
  for (const auto& [name, src] : state) {
    if (!own_names.count(name) || !seen.insert(name).second) {
      report.unexpected.push_back(name);
    }
  }
  for (const auto& [name, dst] : own) {
    auto it = std::find_if(state.begin(), state.end(),
                           [&](const auto& entry) { return entry.first == name; });
    if (it == state.end()) {
      report.missing.push_back(name);
      continue;
    }
    const Tensor& src = it->second;
    if (!src.defined() || src.shape() != dst.shape() || src.dtype() != dst.dtype()) {
      report.mismatched.push_back(name + ": expected " + tensor_sig(dst) + ", got " +
                                  (src.defined() ? tensor_sig(src) : std::string("undefined")));
      continue;
    }
    copies.emplace_back(dst, src);
  }
  if (strict && !report.ok()) {
    fail("load_state_dict", "state dict does not match the model:\n", report.message());
  }
  NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.detach().copy_(src);
  return report;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Device device) {
  for (auto& p : params_) {
    if (p->tensor.device() == device) continue;
    Tensor moved = p->tensor.detach().to(device);
    moved.set_requires_grad(true);
    p->tensor = moved;
  }
  for (auto& b : buffers_) {
    if (b->second.device() != device) b->second = b->second.to(device);
  }
  for (auto& [name, child] : children_) child->to(device);
}

}  // namespace ssm
