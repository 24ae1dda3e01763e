#pragma once
// ModuleList: PyTorch's nn.ModuleList, submodules named "0", "1", ... in
// the order they are appended (`layers.0.mixer.in_proj.weight`).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace ssm {

template <class M>
class ModuleList : public Module {
 public:
  std::shared_ptr<M> append(std::shared_ptr<M> m) {
    items_.push_back(register_module(std::to_string(items_.size()), std::move(m)));
    return items_.back();
  }
  std::int64_t size() const { return static_cast<std::int64_t>(items_.size()); }
  M& operator[](std::int64_t i) const { return *items_.at(static_cast<std::size_t>(i)); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

}  // namespace ssm
