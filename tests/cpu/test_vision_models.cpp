// The image models (layers/models/vision.h): vim (Vision Mamba) and
// mambaout_image (MambaOut's gated CNN): parameter names and shapes as the
// reference code's, the class token in the middle, drop path only in
// training, and the input gradient of each whole model against finite
// differences (float64).
#include <map>

#include "autograd/ops.h"
#include "layers/models/model.h"
#include "tests/testing.h"

using namespace ssm;
using ssm::testing::error_message;
using ssm::testing::random_tensor;
using ssm::testing::require_gradcheck;

namespace {

ModelConfig image_config(const std::string& name) {
  ModelConfig c;
  c.name = name;
  c.d_model = 8;
  c.n_layers = 2;
  c.d_state = 4;
  c.patch_size = 2;
  return c;
}

}  // namespace

TEST_CASE("vim: Vision Mamba's parameter names and shapes, the class token in the middle",
          "[cpu][vision]") {
  ModelConfig c = image_config("vim");
  Generator gen(3);
  // 6 x 6 images of 2 channels, 2 x 2 patches: n = 9 patches + the class token.
  auto m = make_model(c, {.d_input = 2, .num_classes = 4, .dtype = DType::Float64, .max_len = 36},
                      gen, nullptr);
  std::map<std::string, Tensor> p;
  for (const auto& np : m->named_parameters()) p[np.name] = np.tensor;
  CHECK(p.at("patch_embed.proj.weight").shape() == Shape{8, 2, 2, 2});
  CHECK(p.at("patch_embed.proj.bias").shape() == Shape{8});
  CHECK(p.at("cls_token").shape() == Shape{1, 1, 8});
  CHECK(p.at("pos_embed").shape() == Shape{1, 10, 8});
  CHECK(p.at("layers.1.norm.weight").shape() == Shape{8});
  CHECK(p.count("layers.1.mixer.in_proj.weight") == 1);
  CHECK(p.count("layers.1.mixer.A_b_log") == 1);  // the backward scan of the v2 block
  CHECK(p.at("norm_f.weight").shape() == Shape{8});
  CHECK(p.at("head.weight").shape() == Shape{4, 8});
  // The logits read the class token's slot (position n / 2 = 4): a change of
  // pos_embed there moves them; the logits depend on every patch too.
  m->eval();
  const Tensor x = random_tensor({2, 36, 2}, 5);
  NoGradGuard ng;
  const Tensor y0 = m->forward(x, Tensor());
  REQUIRE(y0.shape() == Shape{2, 4});
  p.at("pos_embed").select(1, 4).fill_(0.5);
  const Tensor y1 = m->forward(x, Tensor());
  CHECK(ssm::testing::max_abs(sub(y1, y0)) > 1e-6);
  // Images must be square and divisible into patches.
  CHECK(error_message([&] {
          m->forward(random_tensor({1, 35, 2}, 1), Tensor());
        }).find("square") != std::string::npos);
  c.patch_size = 4;
  Generator g2(1);
  CHECK(error_message([&] {
          make_model(c, {.d_input = 2, .num_classes = 4, .max_len = 36}, g2, nullptr);
        }).find("patch_size") != std::string::npos);
}

TEST_CASE("vim: drop path draws per example in training only", "[cpu][vision]") {
  ModelConfig c = image_config("vim");
  c.drop_path = 0.5;
  Generator gen(4), drop(5);
  auto m = make_model(c, {.d_input = 1, .num_classes = 3, .max_len = 16}, gen, &drop);
  const Tensor x = random_tensor({8, 16, 1}, 6).to(DType::Float32);
  NoGradGuard ng;
  m->eval();
  const Tensor e1 = m->forward(x, Tensor()), e2 = m->forward(x, Tensor());
  CHECK(ssm::testing::max_abs(sub(e1, e2)) == 0.0);
  m->train();
  const Tensor t1 = m->forward(x, Tensor());
  CHECK(ssm::testing::max_abs(sub(t1, e1)) > 0.0);
  Generator g2(4);
  c.drop_path = 0.0;
  CHECK_NOTHROW(make_model(c, {.d_input = 1, .num_classes = 3, .max_len = 16}, g2, nullptr));
}

TEST_CASE("mambaout_image: MambaOut's names and shapes; mean-pooled patches", "[cpu][vision]") {
  ModelConfig c = image_config("mambaout_image");
  c.expand = 8.0 / 3.0;
  c.d_conv = 3;
  Generator gen(3);
  auto m = make_model(c, {.d_input = 1, .num_classes = 5, .dtype = DType::Float64, .max_len = 36},
                      gen, nullptr);
  std::map<std::string, Shape> s;
  for (const auto& np : m->named_parameters()) s[np.name] = np.tensor.shape();
  CHECK(s.at("stem.weight") == Shape{8, 1, 2, 2});
  CHECK(s.at("blocks.1.norm.weight") == Shape{8});
  CHECK(s.at("blocks.1.fc1.weight") == Shape{2 * 21, 8});  // hidden = int(8 * 8/3) = 21
  CHECK(s.at("blocks.1.conv.weight") == Shape{8, 1, 3, 3});
  CHECK(s.at("blocks.1.fc2.weight") == Shape{8, 21});
  CHECK(s.at("norm.weight") == Shape{8});
  CHECK(s.at("head.weight") == Shape{5, 8});
  c.d_conv = 4;
  Generator g2(1);
  CHECK(error_message([&] {
          make_model(c, {.d_input = 1, .num_classes = 5, .max_len = 36}, g2, nullptr);
        }).find("odd") != std::string::npos);
}

TEST_CASE("vim and mambaout_image: the input gradient passes gradcheck", "[cpu][vision][grad]") {
  for (const std::string name : {"vim", "mambaout_image"}) {
    INFO(name);
    ModelConfig c = image_config(name);
    c.n_layers = 1;
    c.d_conv = name == "vim" ? 2 : 3;
    Generator gen(7);
    auto m = make_model(c, {.d_input = 1, .num_classes = 3, .dtype = DType::Float64, .max_len = 16},
                        gen, nullptr);
    Tensor x = random_tensor({2, 16, 1}, 8);
    x.set_requires_grad(true);
    require_gradcheck([&](const std::vector<Tensor>& in) { return m->forward(in[0], Tensor()); },
                      {x});
  }
}
