#include "data/templates.h"

#include <cmath>
#include <vector>

#include "core/rng.h"

namespace ssm::data {

TemplatesDataset::TemplatesDataset(const TemplatesOptions& o, std::int64_t size, int split)
    : o_(o), size_(size), split_(split) {
  SSM_CHECK(o.num_classes >= 2 && o.seq_len > 0 && o.d_input > 0 && o.noise >= 0.0, "templates",
            "expected num_classes >= 2, seq_len > 0, d_input > 0, noise >= 0");
  SSM_CHECK(size > 0 && split >= 0 && split <= 2, "templates", "expected size > 0, got ", size);
  const std::int64_t c = o.num_classes, l = o.seq_len, d = o.d_input;
  // stream 0: templates; 1 + split: labels and noise of the split
  Generator tgen(o.seed, 0), gen(o.seed, static_cast<std::uint32_t>(1 + split));
  const Tensor templates = randn({c, l, d}, DType::Float32, Device::cpu(), tgen);  // (C, L, D)
  const auto u = rand({size}, DType::Float32, Device::cpu(), gen).to_vector<float>();
  std::vector<std::int64_t> labels(static_cast<std::size_t>(size));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    labels[i] = std::min<std::int64_t>(c - 1, static_cast<std::int64_t>(u[i] * c));
  }
  y_ = Tensor::from_vector<std::int64_t>(labels, {size});
  x_ = randn({size, l, d}, DType::Float32, Device::cpu(), gen);  // (N, L, D) noise
  float* px = x_.data<float>();
  const float* pt = templates.data<float>();
  const std::int64_t per = l * d;
  for (std::int64_t i = 0; i < size; ++i) {
    const float* t = pt + labels[static_cast<std::size_t>(i)] * per;
    for (std::int64_t k = 0; k < per; ++k) {
      px[i * per + k] = t[k] + static_cast<float>(o.noise) * px[i * per + k];
    }
  }
}

Example TemplatesDataset::get(std::int64_t i) const {
  SSM_CHECK(i >= 0 && i < size_, "templates", "index ", i, " outside [0, ", size_, ")");
  Example e;
  e.x = x_.select(0, i);  // (L, D)
  e.label = y_.data<std::int64_t>()[i];
  e.length = o_.seq_len;
  return e;
}

std::string TemplatesDataset::name() const {
  static const char* splits[] = {"train", "val", "test"};
  return std::string("templates/") + splits[split_];
}

}  // namespace ssm::data
