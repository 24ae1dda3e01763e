// HDF5 checkpoints: a bitwise round trip of every field, atomic overwrite,
// the errors for truncated, foreign, incomplete and newer files, and the
// choice of find_latest_checkpoint among valid, invalid and leftover files.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "tests/testing.h"
#include "train/checkpoint.h"
#include "train/checkpoint_testing.h"

using namespace ssm;
using ssm::testing::error_message;
namespace fs = std::filesystem;
using ssm::testing::TempDir;

namespace {

std::vector<unsigned char> bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  std::vector<unsigned char> out(static_cast<std::size_t>(c.numel()) * dtype_size(c.dtype()));
  if (!out.empty()) std::memcpy(out.data(), c.raw_data(), out.size());
  return out;
}

// Same dtype, shape and bytes; the read tensor is a contiguous CPU tensor.
void require_same_tensor(const Tensor& got, const Tensor& want) {
  INFO("got " << got.desc() << ", want " << want.desc());
  REQUIRE(got.defined());
  CHECK(got.device() == Device::cpu());
  CHECK(got.is_contiguous());
  REQUIRE(got.dtype() == want.dtype());
  REQUIRE(got.shape() == want.shape());
  CHECK(bytes_of(got) == bytes_of(want));
}

template <class T>
std::vector<std::string> keys_of(const std::vector<std::pair<std::string, T>>& entries) {
  std::vector<std::string> keys;
  for (const auto& e : entries) keys.push_back(e.first);
  return keys;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A YAML text of about 100 KiB over many lines, with quotes, colons and UTF-8.
std::string long_config() {
  std::string yaml = "# resolved config\nmodel:\n  name: s4d\n  layers:\n";
  for (int i = 0; i < 2000; ++i) {
    yaml += "    - {index: " + std::to_string(i) +
            ", d_model: 256, note: \"größe: 'x' \\\"y\\\"\", dropout: 0.1}\n";
  }
  return yaml + "optimizer: {name: adamw, lr: 0.001}\n";
}

// A checkpoint with every field set to something a default would not give.
Checkpoint make_checkpoint(std::int64_t step = 1000001) {
  Checkpoint ck;
  const float inf = std::numeric_limits<float>::infinity();
  ck.model.emplace_back("layers.0.mixer.in_proj.weight",
                        ssm::testing::random_tensor({3, 4}, 1, -2, 2, DType::Float32, false));
  ck.model.emplace_back(
      "layers.0.mixer.special",
      Tensor::from_vector<float>({-0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                                  std::numeric_limits<float>::denorm_min(), 1e38f},
                                 {6}));
  ck.model.emplace_back("layers.0.mixer.log_dt", ssm::testing::random_tensor({5}, 2));
  ck.model.emplace_back("embedding.ids", Tensor::from_vector<std::int32_t>(
                                             {-7, 0, 2147483647, -2147483647 - 1}, {2, 2}));
  ck.model.emplace_back("norm.num_batches_tracked",
                        Tensor::from_vector<std::int64_t>(
                            {std::numeric_limits<std::int64_t>::min(), 1, 1LL << 40}, {3, 1}));
  ck.model.emplace_back("decoder.scale", Tensor::scalar(0.625, DType::Float64));
  // A non-contiguous view: a transpose.
  ck.model.emplace_back(
      "decoder.weight",
      ssm::testing::random_tensor({3, 5}, 3, -1, 1, DType::Float32, false).transpose(0, 1));
  ck.model.emplace_back("a.empty", Tensor::empty({0, 3}, DType::Float32));
  // Keys interleaved across parameters, so that the order is not per-group.
  ck.optimizer.tensors.emplace_back("layers.0.mixer.in_proj.weight/exp_avg",
                                    ssm::testing::random_tensor({3, 4}, 4));
  ck.optimizer.tensors.emplace_back("decoder.weight/momentum_buffer",
                                    ssm::testing::random_tensor({5, 3}, 5));
  ck.optimizer.tensors.emplace_back("layers.0.mixer.in_proj.weight/exp_avg_sq",
                                    ssm::testing::random_tensor({3, 4}, 6));
  ck.optimizer.counters.emplace_back("layers.0.mixer.in_proj.weight/step", 12);
  ck.optimizer.counters.emplace_back("decoder.weight/step", 1LL << 50);
  ck.optimizer.counters.emplace_back("a.empty/step", -3);
  ck.rng = {std::numeric_limits<std::uint64_t>::max(), 0xdeadbeefu, (1ULL << 63) + 5};
  ck.data_epoch = 3;
  ck.data_index = 12345;
  ck.step = step;
  ck.epoch = 4;
  ck.best_metric = 0.1234567890123456789;
  ck.config_yaml = long_config();
  return ck;
}

void require_same_checkpoint(const Checkpoint& got, const Checkpoint& want) {
  REQUIRE(keys_of(got.model) == keys_of(want.model));
  for (std::size_t i = 0; i < want.model.size(); ++i) {
    INFO(want.model[i].first);
    require_same_tensor(got.model[i].second, want.model[i].second);
  }
  REQUIRE(keys_of(got.optimizer.tensors) == keys_of(want.optimizer.tensors));
  for (std::size_t i = 0; i < want.optimizer.tensors.size(); ++i) {
    INFO(want.optimizer.tensors[i].first);
    require_same_tensor(got.optimizer.tensors[i].second, want.optimizer.tensors[i].second);
  }
  CHECK(got.optimizer.counters == want.optimizer.counters);
  CHECK(got.rng == want.rng);
  CHECK(got.data_epoch == want.data_epoch);
  CHECK(got.data_index == want.data_index);
  CHECK(got.step == want.step);
  CHECK(got.epoch == want.epoch);
  CHECK(std::memcmp(&got.best_metric, &want.best_metric, sizeof(double)) == 0);
  CHECK(got.config_yaml == want.config_yaml);
}

bool has_tmp_file(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".tmp") return true;
  }
  return false;
}

}  // namespace

TEST_CASE("a checkpoint round-trips every field bitwise, in order", "[cpu][checkpoint]") {
  TempDir dir("checkpoint");
  const std::string path = dir.file("run.h5");
  const Checkpoint ck = make_checkpoint();
  REQUIRE(!ck.model[6].second.is_contiguous());  // the test covers a strided input
  write_checkpoint(path, ck);
  CHECK(fs::exists(path));
  CHECK(!has_tmp_file(dir.path()));
  CHECK(is_valid_checkpoint(path));
  const Checkpoint back = read_checkpoint(path);
  require_same_checkpoint(back, ck);
  // The strided input was stored in its logical (row-major) order.
  CHECK(back.model[6].second.to_vector<float>() == ck.model[6].second.to_vector<float>());
  CHECK(back.model[5].second.dim() == 0);
  CHECK(std::isnan(back.model[1].second.to_vector<float>()[3]));
}

TEST_CASE("an empty checkpoint and one with thousands of entries round-trip", "[cpu][checkpoint]") {
  TempDir dir("checkpoint");
  SECTION("empty: no tensors, no counters, default fields") {
    Checkpoint empty;
    write_checkpoint(dir.file("empty.h5"), empty);
    require_same_checkpoint(read_checkpoint(dir.file("empty.h5")), empty);
  }
  SECTION("5000 entries: the names list is larger than 64 KiB") {
    Checkpoint big;
    for (int i = 0; i < 5000; ++i) {
      // Descending numbers, so that neither name nor creation order of the
      // links in the file could stand in for the names list.
      big.model.emplace_back("blocks." + std::to_string(4999 - i) + ".a_rather_long_name.weight",
                             Tensor::scalar(i, DType::Int64));
    }
    write_checkpoint(dir.file("big.h5"), big);
    require_same_checkpoint(read_checkpoint(dir.file("big.h5")), big);
  }
}

TEST_CASE("overwriting a checkpoint replaces its content and leaves no .tmp", "[cpu][checkpoint]") {
  TempDir dir("checkpoint");
  const std::string path = dir.file("last.h5");
  write_checkpoint(path, make_checkpoint(10));
  Checkpoint second;
  second.step = 20;
  second.model.emplace_back("only.weight", Tensor::full({2, 2}, 3.0));
  second.config_yaml = "short: true\n";
  write_checkpoint(path, second);
  require_same_checkpoint(read_checkpoint(path), second);
  CHECK(!has_tmp_file(dir.path()));
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
}

TEST_CASE("a failed write throws naming the path, leaves no .tmp and keeps the old file",
          "[cpu][checkpoint]") {
  TempDir dir("checkpoint");
  SECTION("a folder that does not exist") {
    const std::string path = dir.file("missing/sub/ck.h5");
    const std::string msg = error_message([&] { write_checkpoint(path, make_checkpoint()); });
    INFO(msg);
    CHECK(msg.rfind("[checkpoint] " + path + ": ", 0) == 0);
    CHECK(!fs::exists(path + ".tmp"));
    CHECK(!fs::exists(path));
  }
  SECTION("bad content: the previous checkpoint stays intact") {
    const std::string path = dir.file("last.h5");
    const Checkpoint good = make_checkpoint(7);
    write_checkpoint(path, good);
    struct Case {
      std::string name;
      Tensor tensor;
      std::string expect;
    };
    const std::vector<Case> cases = {
        {"x.bf16", Tensor::zeros({2}, DType::BFloat16), "/model/x.bf16 has dtype bfloat16"},
        {"x.undefined", Tensor(), "/model/x.undefined is an undefined tensor"},
        {"", Tensor::zeros({2}), "invalid name '' in /model"},
        {"x/./y", Tensor::zeros({2}), "invalid name 'x/./y' in /model"},
        {"layers.0.mixer.log_dt", Tensor::zeros({2}),
         "duplicate name 'layers.0.mixer.log_dt' in /model"},
    };
    for (const auto& bad : cases) {
      Checkpoint ck = make_checkpoint(8);
      ck.model.emplace_back(bad.name, bad.tensor);
      const std::string msg = error_message([&] { write_checkpoint(path, ck); });
      INFO(msg);
      CHECK(msg.rfind("[checkpoint] " + path + ": ", 0) == 0);
      CHECK(msg.find(bad.expect) != std::string::npos);
      CHECK(!has_tmp_file(dir.path()));
      require_same_checkpoint(read_checkpoint(path), good);
    }
  }
  SECTION("the path is a folder") {
    const std::string path = dir.file("taken.h5");
    fs::create_directory(path);
    const std::string msg = error_message([&] { write_checkpoint(path, make_checkpoint()); });
    INFO(msg);
    CHECK(msg.rfind("[checkpoint] " + path + ": ", 0) == 0);
    CHECK(!fs::exists(path + ".tmp"));
    CHECK(fs::is_directory(path));
  }
}

TEST_CASE("truncated and foreign files are rejected with an error naming the file",
          "[cpu][checkpoint]") {
  TempDir dir("checkpoint");
  const std::string path = dir.file("ck.h5");
  write_checkpoint(path, make_checkpoint());
  const auto size = fs::file_size(path);
  SECTION("truncated") {
    for (const std::uintmax_t keep : {size / 2, size - 1, std::uintmax_t{512}, std::uintmax_t{0}}) {
      write_checkpoint(path, make_checkpoint());
      fs::resize_file(path, keep);
      INFO("kept " << keep << " of " << size << " bytes");
      const std::string msg = error_message([&] { read_checkpoint(path); });
      CHECK(msg.rfind("[checkpoint] " + path + ": not an HDF5 file (truncated or foreign)", 0) ==
            0);
      CHECK(!is_valid_checkpoint(path));
    }
  }
  SECTION("a text file") {
    write_text(path, "step: 3\nthis is not HDF5\n");
    CHECK(error_message([&] { read_checkpoint(path); }) ==
          "[checkpoint] " + path + ": not an HDF5 file (truncated or foreign)");
    CHECK(!is_valid_checkpoint(path));
  }
  SECTION("an HDF5 file without the format attribute") {
    checkpoint_testing::remove_root_attribute(path, "format");
    CHECK(error_message([&] { read_checkpoint(path); }) ==
          "[checkpoint] " + path + ": not an ssmkit checkpoint (no attribute format on /)");
    CHECK(!is_valid_checkpoint(path));
  }
  SECTION("a file that does not exist") {
    const std::string missing = dir.file("nope.h5");
    CHECK(error_message([&] { read_checkpoint(missing); }) ==
          "[checkpoint] " + missing + ": no such file");
    CHECK(!is_valid_checkpoint(missing));
  }
}

TEST_CASE("a missing dataset, group or attribute is named in the error", "[cpu][checkpoint]") {
  TempDir dir("checkpoint");
  const std::string path = dir.file("ck.h5");
  struct Case {
    std::string link;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"/model/layers.0.mixer.in_proj.weight",
       "missing dataset /model/layers.0.mixer.in_proj.weight"},
      {"/optimizer/tensors/decoder.weight/momentum_buffer",
       "missing dataset /optimizer/tensors/decoder.weight/momentum_buffer"},
      {"/optimizer/counters/a.empty/step", "missing dataset /optimizer/counters/a.empty/step"},
      {"/rng/offset", "missing dataset /rng/offset"},
      {"/data/index", "missing dataset /data/index"},
      {"/data", "missing group /data"},
      {"/optimizer", "missing group /optimizer"},
  };
  for (const auto& c : cases) {
    write_checkpoint(path, make_checkpoint());
    checkpoint_testing::remove_link(path, c.link);
    INFO(c.link);
    CHECK(error_message([&] { read_checkpoint(path); }) ==
          "[checkpoint] " + path + ": " + c.expect);
    CHECK(!is_valid_checkpoint(path));
  }
  write_checkpoint(path, make_checkpoint());
  checkpoint_testing::remove_root_attribute(path, "step");
  CHECK(error_message([&] { read_checkpoint(path); }) ==
        "[checkpoint] " + path + ": missing attribute step on /");
}

TEST_CASE("a checkpoint of a newer or invalid format version is refused", "[cpu][checkpoint]") {
  TempDir dir("checkpoint");
  const std::string path = dir.file("ck.h5");
  write_checkpoint(path, make_checkpoint());
  checkpoint_testing::set_root_attribute(path, "format_version", kCheckpointFormatVersion);
  CHECK(is_valid_checkpoint(path));  // the edit itself keeps the file valid
  checkpoint_testing::set_root_attribute(path, "format_version", kCheckpointFormatVersion + 1);
  CHECK(error_message([&] { read_checkpoint(path); }) ==
        "[checkpoint] " + path + ": format 'ssmkit-checkpoint' version " +
            std::to_string(kCheckpointFormatVersion + 1) + " is newer than this build (" +
            std::to_string(kCheckpointFormatVersion) + ")");
  CHECK(!is_valid_checkpoint(path));
  checkpoint_testing::set_root_attribute(path, "format_version", 0);
  CHECK(error_message([&] { read_checkpoint(path); }) ==
        "[checkpoint] " + path + ": format 'ssmkit-checkpoint' has invalid version 0");
  CHECK(!is_valid_checkpoint(path));
}

TEST_CASE("find_latest_checkpoint picks the valid checkpoint with the highest step",
          "[cpu][checkpoint]") {
  TempDir dir("checkpoint");
  SECTION("missing or empty folder") {
    CHECK(find_latest_checkpoint(dir.file("absent")).empty());
    CHECK(find_latest_checkpoint(dir.path().string()).empty());
    write_text(dir.file("notes.txt"), "nothing here");
    CHECK(find_latest_checkpoint(dir.path().string()).empty());
  }
  SECTION("valid, invalid and leftover files") {
    // A crashed write left garbage in last.h5.tmp; writing last.h5 still works.
    write_text(dir.file("last.h5.tmp"), "half-written garbage");
    write_checkpoint(dir.file("last.h5"), make_checkpoint(30));
    CHECK(!fs::exists(dir.file("last.h5.tmp")));
    write_text(dir.file("last.h5.tmp"), "more garbage");
    write_checkpoint(dir.file("step10.h5"), make_checkpoint(10));
    write_checkpoint(dir.file("step20.h5"), make_checkpoint(20));
    // Invalid files with higher steps are skipped: truncated, text, newer
    // version; so is a valid checkpoint without the .h5 extension.
    write_checkpoint(dir.file("truncated.h5"), make_checkpoint(100));
    fs::resize_file(dir.file("truncated.h5"), fs::file_size(dir.file("truncated.h5")) / 2);
    write_text(dir.file("foreign.h5"), "not a checkpoint");
    write_checkpoint(dir.file("newer.h5"), make_checkpoint(200));
    checkpoint_testing::set_root_attribute(dir.file("newer.h5"), "format_version",
                                           kCheckpointFormatVersion + 1);
    write_checkpoint(dir.file("other.bin"), make_checkpoint(300));
    fs::create_directory(dir.file("folder.h5"));
    CHECK(find_latest_checkpoint(dir.path().string()) == dir.file("last.h5"));

    // Equal steps: the newer file wins, whichever way round the times are.
    write_checkpoint(dir.file("best.h5"), make_checkpoint(30));
    const auto now = fs::file_time_type::clock::now();
    fs::last_write_time(dir.file("best.h5"), now - std::chrono::hours(1));
    fs::last_write_time(dir.file("last.h5"), now);
    CHECK(find_latest_checkpoint(dir.path().string()) == dir.file("last.h5"));
    fs::last_write_time(dir.file("best.h5"), now + std::chrono::hours(1));
    CHECK(find_latest_checkpoint(dir.path().string()) == dir.file("best.h5"));

    // A higher step wins over a newer file.
    write_checkpoint(dir.file("step31.h5"), make_checkpoint(31));
    fs::last_write_time(dir.file("step31.h5"), now - std::chrono::hours(2));
    CHECK(find_latest_checkpoint(dir.path().string()) == dir.file("step31.h5"));
  }
}
