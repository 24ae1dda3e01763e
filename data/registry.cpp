#include "data/registry.h"

#include <sstream>

#include "data/templates.h"

namespace ssm::data {

std::vector<std::string> dataset_names() { return {"templates"}; }

Splits make_datasets(const DataConfig& c) {
  if (c.name == "templates") {
    const TemplatesOptions o{c.num_classes, c.seq_len, c.d_input, c.noise, c.seed};
    return {std::make_shared<TemplatesDataset>(o, c.train_size, 0),
            std::make_shared<TemplatesDataset>(o, c.val_size, 1),
            std::make_shared<TemplatesDataset>(o, c.test_size, 2)};
  }
  std::ostringstream known;
  for (const auto& n : dataset_names()) known << ' ' << n;
  fail("data", "unknown dataset '", c.name, "'; known:", known.str());
}

}  // namespace ssm::data
