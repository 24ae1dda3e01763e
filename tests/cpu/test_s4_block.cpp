// S4Block and the S4-family models: for every kernel family, the
// convolutional forward equals the recurrent view (step by step, and over
// the reversed sequence for a bidirectional layer) at L = 1024 in float32;
// gradients of a whole float64 model check against finite differences;
// parameter names, tags and config errors.
#include <cmath>

#include "layers/models/s4_family.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::rel_error;
using ssm::testing::require_close;

namespace {

ModelConfig family_config(const std::string& name) {
  ModelConfig c;
  c.name = name;
  c.d_model = 4;
  c.d_state = name == "rtf" ? 6 : 8;
  return c;
}

}  // namespace

TEST_CASE("S4Block: convolution mode equals recurrent mode for every family (L = 1024, float32)",
          "[cpu][s4block]") {
  for (const std::string family : {"s4d", "s4", "lssl", "rtf"}) {
    for (const bool bidirectional : {false, true}) {
      for (const std::int64_t channels : {1, 2}) {
        if (channels == 2 && bidirectional) continue;
        INFO(family << (bidirectional ? " bidirectional" : "") << " channels " << channels);
        ModelConfig c = family_config(family);
        c.bidirectional = bidirectional;
        c.channels = channels;
        Generator gen(11);
        auto block = make_s4_block(c, gen, nullptr);
        block->eval();
        const Tensor x = randn({2, 1024, c.d_model}, DType::Float32, Device::cpu(), gen);
        Tensor conv;
        {
          NoGradGuard ng;
          conv = block->forward(x);
        }
        const Tensor rec = block->forward_recurrent(x);
        REQUIRE(conv.shape() == rec.shape());
        const double err = rel_error(conv, rec);
        INFO("relative error " << err);
        CHECK(err < 1e-4);
        if (!bidirectional) {
          // step() one position at a time gives the same outputs.
          block->setup_step();
          Tensor state = block->default_state(2);
          for (std::int64_t t = 0; t < 5; ++t) {
            const Tensor y = block->step(x.select(1, t).contiguous(), state);
            require_close(y, conv.select(1, t).contiguous(), 1e-5, 1e-4);
          }
        } else {
          Tensor state = block->default_state(2);
          CHECK(ssm::testing::error_message([&] {
                  block->step(x.select(1, 0), state);
                }).find("bidirectional") != std::string::npos);
        }
      }
    }
  }
}

TEST_CASE("S4Block: the recurrent view follows the sequence length (S4's and RTF's truncation)",
          "[cpu][s4block]") {
  for (const std::string family : {"s4", "rtf"}) {
    INFO(family);
    Generator gen(4);
    auto block = make_s4_block(family_config(family), gen, nullptr);
    block->eval();
    const Tensor x = randn({1, 300, 4}, DType::Float32, Device::cpu(), gen);
    const Tensor rec = block->forward_recurrent(x);  // before any forward(): default l_max 1024
    NoGradGuard ng;
    CHECK(rel_error(block->forward(x), rec) < 1e-4);
  }
}

TEST_CASE("S4-family models: parameter names, tags, gradients and config errors",
          "[cpu][s4block]") {
  for (const std::string family : {"s4d", "s4", "lssl", "rtf"}) {
    INFO(family);
    ModelConfig c = family_config(family);
    c.n_layers = 1;
    c.d_model = 3;
    c.learn_a = true;
    ModelIO io;
    io.d_input = 2;
    io.num_classes = 3;
    io.dtype = DType::Float64;
    Generator gen(5);
    auto model = make_model(c, io, gen, nullptr);
    bool has_D = false, has_out = false, has_ssm_tag = false;
    for (const auto& p : model->named_parameters()) {
      if (p.name == "layers.0.mixer.D") has_D = true;
      if (p.name == "layers.0.mixer.output_linear.weight") {
        has_out = true;
        CHECK(p.tensor.shape() == Shape{6, 3});
      }
      if (p.name.rfind("layers.0.mixer.kernel.", 0) == 0 && p.has_tag("ssm")) has_ssm_tag = true;
      if (p.has_tag("ssm")) CHECK(p.name.find(".C") == std::string::npos);
    }
    CHECK(has_D);
    CHECK(has_out);
    CHECK(has_ssm_tag);
    // Whole-model gradient check (float64) with respect to the input.
    const Tensor x = ssm::testing::random_tensor({2, 12, 2}, 3);
    ssm::testing::require_gradcheck(
        [&](const std::vector<Tensor>& in) { return model->forward(in[0], Tensor()); }, {x});
  }
  ModelConfig bad = family_config("s4");
  bad.disc = "zoh";
  Generator gen(1);
  CHECK(ssm::testing::error_message([&] {
          make_s4_block(bad, gen, nullptr);
        }).find("[s4] model.disc 'zoh' is not available for s4") == 0);
  bad = family_config("s4d");
  bad.init = "legt";
  CHECK(ssm::testing::error_message([&] {
          make_s4_block(bad, gen, nullptr);
        }).find("[s4d] model.init 'legt'") == 0);
}
