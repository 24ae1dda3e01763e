#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "autograd/ops.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/progress.h"

namespace ssm {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ------------------------------------------------------------------ helpers

Device resolve_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda") {
    SSM_CHECK(cuda_available(), "train", "device 'cuda' requested but no CUDA GPU is visible");
    return Device::cuda();
  }
  if (name == "auto") {
    if (cuda_available()) {
      static bool said = false;
      if (!said) {
        std::cerr << "ssmkit: a GPU is visible, but only the core ops have CUDA kernels so far "
                     "(the SSM layers' arrive later); device auto uses the CPU, --device cuda "
                     "runs the models built from core ops (mlp_mixer) on the GPU\n";
        said = true;
      }
    }
    return Device::cpu();
  }
  fail("train", "device must be cpu, cuda or auto, got '", name, "'");
}

std::shared_ptr<Model> build_model(const Config& config, const data::Dataset& ds,
                                   Generator* dropout_gen) {
  Generator init_gen(config.train.seed, 0);
  ModelIO io{ds.d_input(), ds.vocab_size(), ds.num_classes()};
  // The data's longest sequence (learned positions size by it): the first
  // example's length, or the configured limits when longer (variable-length
  // tasks: data.max_len, a fixed pad_length).
  if (ds.size() > 0) io.max_len = ds.get(0).x.size(0);
  io.max_len = std::max({io.max_len, config.data.max_len, config.data.pad_length});
  // Two sequences per example that are not targets: a paired task.
  io.paired = ds.size() > 0 && !ds.x2_is_target() && ds.get(0).x2.defined();
  return make_model(config.model, io, init_gen, dropout_gen);
}

namespace {

// Correct predictions of logits (B, C) against labels (B).
std::int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  const auto pred = max_with_index(logits.detach(), 1).second.to_vector<std::int64_t>();
  const auto y = labels.to_vector<std::int64_t>();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) correct += pred[i] == y[i];
  return correct;
}

// metrics.jsonl: appends one object per line; on resume, lines of steps after
// the checkpoint's are dropped (written to a temporary file, then renamed).
class MetricsLog {
 public:
  MetricsLog(const fs::path& path, std::int64_t keep_through_step) : path_(path) {
    if (keep_through_step < 0) {
      std::ofstream(path_, std::ios::trunc);
    } else if (fs::exists(path_)) {
      std::ifstream in(path_);
      std::ostringstream kept;
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) break;  // a torn last line
        if (j.value("step", std::int64_t{0}) > keep_through_step) continue;
        kept << line << '\n';
      }
      const fs::path tmp = path_.string() + ".tmp";
      std::ofstream(tmp, std::ios::trunc) << kept.str();
      fs::rename(tmp, path_);
    }
    out_.open(path_, std::ios::app);
    SSM_CHECK(out_.good(), "train", path_.string(), ": cannot open for writing");
  }
  void write(const json& j) {
    out_ << j.dump() << '\n';
    out_.flush();
  }

 private:
  fs::path path_;
  std::ofstream out_;
};

json lr_json(const Optimizer& opt) {
  json j = json::object();
  for (const auto& g : opt.groups()) j[g.name] = g.lr;
  return j;
}

// The first parameter (in named_parameters order) whose gradient holds a NaN or Inf.
std::string first_nonfinite_grad(const std::vector<NamedParameter>& params) {
  for (const auto& p : params) {
    const Tensor g = p.tensor.grad();
    if (!g.defined()) continue;
    for (double v : g.to_vector<double>()) {
      if (!std::isfinite(v)) return p.name;
    }
  }
  return "";
}

Tensor to_device(const Tensor& t, Device d) { return t.device() == d ? t : t.to(d); }

}  // namespace

BatchLoss batch_loss(Model& model, const data::Batch& b, bool sequence_targets, Device device) {
  const Tensor x = to_device(b.x, device), lengths = to_device(b.lengths, device);
  if (!sequence_targets) {
    const Tensor y = to_device(b.y, device);
    // A paired task (x2 is the second sequence): the two-tower head.
    const Tensor logits = b.x2.defined() ? model.forward_pair(x, lengths, to_device(b.x2, device),
                                                              to_device(b.lengths2, device))
                                         : model.forward(x, lengths);  // (B, C)
    return {cross_entropy(logits, y), count_correct(logits, y), b.size()};
  }
  // Sequence-output tasks: the target tokens x2 (B, n) are the classes of the
  // last n positions; the loss is the mean over every target token, the
  // accuracy counts tokens.
  SSM_CHECK(b.x2.defined() && b.x2.dim() == 2, "train", "a sequence-output batch needs targets");
  const std::int64_t B = b.x2.size(0), n = b.x2.size(1);
  for (const std::int64_t len : b.lengths2.to_vector<std::int64_t>()) {
    SSM_CHECK(len == n, "train", "sequence targets of different lengths (", len, " and ", n,
              ") are not supported");
  }
  const Tensor logits = model.forward_outputs(x, lengths, n);    // (B, n, C)
  const Tensor flat = reshape(logits, {B * n, logits.size(2)});  // (B n, C)
  const Tensor y = to_device(b.x2, device).reshape({B * n});     // (B n)
  return {cross_entropy(flat, y), count_correct(flat, y), B * n};
}

EvalResult evaluate_model(Model& model, const data::Dataset& dataset, std::int64_t batch_size,
                          Device device) {
  NoGradGuard no_grad;
  model.eval();
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.pad = data::Pad::Longest;  // the model ignores padded positions
  data::DataLoader loader(std::shared_ptr<const data::Dataset>(&dataset, [](auto*) {}), lo);
  double loss_sum = 0.0;
  std::int64_t correct = 0, n = 0;
  data::Batch b;
  std::int64_t examples = 0;
  while (loader.next(b)) {
    const BatchLoss r = batch_loss(model, b, dataset.x2_is_target(), device);
    loss_sum += r.loss.item<double>() * static_cast<double>(r.count);
    correct += r.correct;
    n += r.count;
    examples += b.size();
  }
  return {loss_sum / static_cast<double>(n), static_cast<double>(correct) / static_cast<double>(n),
          examples};
}

// ------------------------------------------------------------------ train

TrainResult train(const Config& config, const TrainOptions& options) {
  std::ostream& out = options.out ? *options.out : std::cout;
  const TrainConfig& tc = config.train;
  const Device device = resolve_device(options.device.empty() ? tc.device : options.device);

  const data::Splits splits =
      options.datasets.train ? options.datasets : data::make_datasets(config.data);
  SSM_CHECK(splits.train && splits.val && splits.test, "train", "dataset '", config.data.name,
            "' lacks a train, val or test split");

  // Run folder and resolved config.
  const fs::path run_dir = fs::path(config.run.output_dir) / config.run.name;
  fs::create_directories(run_dir);
  const std::string config_yaml = to_yaml(config);
  {
    std::ofstream f(run_dir / "config.yaml", std::ios::trunc);
    f << config_yaml;
    SSM_CHECK(f.good(), "train", (run_dir / "config.yaml").string(), ": cannot write");
  }

  // One input sequence and one label; or (a sequence-output task) one
  // sequence and the target tokens of its last positions; or (a paired task)
  // two sequences and one label, through the model's two-tower head.
  const bool sequence_targets = splits.train->x2_is_target();
  Generator dropout_gen(tc.seed, 1);
  std::shared_ptr<Model> model = build_model(config, *splits.train, &dropout_gen);
  model->to(device);
  const std::vector<NamedParameter> params = model->named_parameters();
  std::vector<Tensor> param_tensors;
  for (const auto& p : params) param_tensors.push_back(p.tensor);
  std::unique_ptr<Optimizer> opt = make_optimizer(params, config.optimizer);

  // The loader's Philox key differs from the init (stream 0) and dropout
  // (stream 1) generators' key, so its per-epoch streams are independent of them.
  data::LoaderOptions lo;
  lo.batch_size = tc.batch_size;
  lo.shuffle = true;
  lo.drop_last = tc.drop_last;
  lo.seed = tc.seed ^ 0x9e3779b97f4a7c15ULL;
  lo.pad = config.data.pad == "none"    ? data::Pad::None
           : config.data.pad == "fixed" ? data::Pad::Fixed
                                        : data::Pad::Longest;
  lo.pad_length = config.data.pad_length;
  lo.prefetch = config.data.prefetch;
  data::DataLoader loader(splits.train, lo);
  const std::int64_t batches_per_epoch = loader.batches_per_epoch();
  SSM_CHECK(batches_per_epoch > 0, "train", "the training split has no full batch");
  const std::int64_t steps_per_epoch = (batches_per_epoch + tc.grad_accum - 1) / tc.grad_accum;
  const std::int64_t total_steps = tc.max_steps > 0 ? tc.max_steps : tc.epochs * steps_per_epoch;

  // Resume.
  std::int64_t step = 0;
  double best = -1.0;  // best validation accuracy; -1: none yet
  std::string resume_path = options.resume;
  if (resume_path == "auto") {
    resume_path = find_latest_checkpoint(run_dir.string());
    if (resume_path.empty())
      out << "resume auto: no checkpoint in " << run_dir.string() << ", starting fresh\n";
  }
  if (!resume_path.empty()) {
    const Checkpoint ck = read_checkpoint(resume_path);
    StateDict cpu_state = ck.model;
    model->load_state_dict(cpu_state);
    opt->load_state(ck.optimizer);
    dropout_gen.set_state(ck.rng);
    loader.set_position({ck.data_epoch, ck.data_index});
    step = ck.step;
    best = ck.best_metric;
    if (ck.config_yaml != config_yaml) {
      out << "note: " << resume_path << " was written with a different config; continuing with "
          << "the one given\n";
    }
    out << "resumed from " << resume_path << " at step " << step << " (epoch " << ck.data_epoch + 1
        << ", example " << ck.data_index << ")\n";
  }
  MetricsLog metrics(run_dir / "metrics.jsonl", resume_path.empty() ? -1 : step);

  auto save = [&](const fs::path& path) {
    Checkpoint ck;
    for (const auto& [name, t] : model->state_dict())
      ck.model.emplace_back(name, to_device(t, Device::cpu()));
    ck.optimizer = opt->state();
    for (auto& [key, t] : ck.optimizer.tensors) t = to_device(t, Device::cpu());
    ck.rng = dropout_gen.state();
    ck.data_epoch = loader.position().epoch;
    ck.data_index = loader.position().index;
    ck.step = step;
    ck.epoch = loader.position().epoch;
    ck.best_metric = best;
    ck.config_yaml = config_yaml;
    write_checkpoint(path.string(), ck);
  };

  auto validate = [&]() {
    const EvalResult r = evaluate_model(*model, *splits.val, tc.batch_size, device);
    model->train();
    metrics.write({{"event", "eval"},
                   {"split", "val"},
                   {"step", step},
                   {"epoch", loader.position().epoch},
                   {"loss", r.loss},
                   {"accuracy", r.accuracy}});
    const bool improved = r.accuracy > best;
    if (improved) best = r.accuracy;
    char line[160];
    std::snprintf(line, sizeof line, "eval step %lld: val loss %.4f acc %.4f%s",
                  static_cast<long long>(step), r.loss, r.accuracy, improved ? " (best)" : "");
    out << line << std::endl;
    return improved;
  };

  out << "run " << run_dir.string() << ": model " << config.model.name << " ("
      << model->num_parameters() << " parameters), data " << config.data.name << " ("
      << splits.train->size() << " train examples), " << total_steps << " steps on " << device.str()
      << std::endl;

  TrainResult result;
  result.run_dir = run_dir.string();
  model->train();
  const auto t_start = std::chrono::steady_clock::now();
  auto t_window = t_start;
  std::int64_t window_samples = 0, steps_this_session = 0;
  const std::int64_t n_train = splits.train->size();
  auto epoch_finished = [&] {
    const std::int64_t left = n_train - loader.position().index;
    return left == 0 || (tc.drop_last && left < tc.batch_size);
  };
  bool evaluated_at_step = false;

  while (step < total_steps) {
    // Gather this step's micro-batches (fewer at the end of an epoch).
    std::vector<data::Batch> micro;
    while (static_cast<std::int64_t>(micro.size()) < tc.grad_accum && !epoch_finished()) {
      data::Batch b;
      if (!loader.next(b)) break;
      micro.push_back(std::move(b));
    }
    SSM_CHECK(!micro.empty(), "train", "internal: no batch at step ", step);
    std::int64_t n_step = 0;
    for (const auto& b : micro) n_step += b.size();

    opt->set_lr_factor(lr_factor(config.scheduler, step, total_steps));
    double loss = 0.0;
    std::int64_t correct = 0;
    std::int64_t counted = 0;  // examples, or target tokens of a sequence-output task
    for (const auto& b : micro) {
      const BatchLoss r = batch_loss(*model, b, sequence_targets, device);
      const Tensor l = r.loss;  // mean over the micro-batch
      const double w = static_cast<double>(b.size()) / static_cast<double>(n_step);
      backward(mul(l, w));
      loss += l.item<double>() * w;
      correct += r.correct;
      counted += r.count;
    }
    const double grad_norm = clip_grad_norm(param_tensors, tc.grad_clip);
    bool skipped = false;
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      const std::string bad = first_nonfinite_grad(params);
      std::ostringstream msg;
      msg << "step " << step + 1 << ": ";
      if (!std::isfinite(loss)) {
        msg << "loss is " << loss;
      } else {
        msg << "gradient norm is " << grad_norm;
      }
      msg << (bad.empty() ? std::string("; every gradient is finite")
                          : "; first parameter with a non-finite gradient: " + bad);
      if (!tc.skip_nonfinite) {
        fail("train", msg.str(), " (set train.skip_nonfinite: true to skip such steps)");
      }
      out << "skipped " << msg.str() << std::endl;
      skipped = true;
      ++result.skipped_steps;
    } else {
      opt->step();
    }
    opt->zero_grad();
    ++step;
    ++steps_this_session;
    window_samples += n_step;
    evaluated_at_step = false;

    // metrics.jsonl (and plain lines) every log_every steps; a live bar every step.
    const bool log_now = step % tc.log_every == 0 || step == total_steps;
    if (log_now || options.progress_bar) {
      const auto now = std::chrono::steady_clock::now();
      const double window_s = std::chrono::duration<double>(now - t_window).count();
      const double elapsed = std::chrono::duration<double>(now - t_start).count();
      const double sps = window_s > 0 ? static_cast<double>(window_samples) / window_s : 0.0;
      const double eta = elapsed / static_cast<double>(steps_this_session) *
                         static_cast<double>(total_steps - step);
      const double acc = static_cast<double>(correct) / static_cast<double>(counted);
      if (log_now) {
        json j = {
            {"event", "train"},       {"step", step},        {"epoch", loader.position().epoch},
            {"loss", loss},           {"accuracy", acc},     {"lr", lr_json(*opt)},
            {"grad_norm", grad_norm}, {"samples_per_s", sps}};
        if (skipped) j["skipped"] = true;
        metrics.write(j);
      }
      ProgressLine p;
      p.epoch = loader.position().epoch + 1;
      p.epochs = tc.max_steps > 0 ? 0 : tc.epochs;
      p.step = step;
      p.total_steps = total_steps;
      p.epoch_step = (loader.position().index + tc.batch_size * tc.grad_accum - 1) /
                     (tc.batch_size * tc.grad_accum);
      p.epoch_steps = steps_per_epoch;
      p.loss = loss;
      p.accuracy = acc;
      p.lr = opt->groups().front().lr;
      p.samples_per_s = sps;
      p.eta_s = eta;
      if (options.progress_bar) {
        out << '\r' << format_bar(p) << "\033[K" << std::flush;
      } else {
        out << format_plain(p) << std::endl;
      }
      if (log_now) {
        t_window = now;
        window_samples = 0;
      }
    }

    // End of epoch: the loader moves on; evaluate when eval_every is 0.
    bool improved = false;
    if (epoch_finished()) {
      if (options.progress_bar) out << '\n';
      loader.set_position({loader.position().epoch + 1, 0});
      if (tc.eval_every == 0) {
        improved = validate();
        evaluated_at_step = true;
      }
    }
    if (tc.eval_every > 0 && step % tc.eval_every == 0) {
      if (options.progress_bar) out << '\n';
      improved = validate();
      evaluated_at_step = true;
    }
    // One checkpoint write per step, after everything the step logged.
    const bool periodic = tc.checkpoint_every > 0 && step % tc.checkpoint_every == 0;
    if (periodic || evaluated_at_step) save(run_dir / "last.h5");
    if (improved) save(run_dir / "best.h5");
    if (tc.keep_every > 0 && step % tc.keep_every == 0) {
      save(run_dir / ("step_" + std::to_string(step) + ".h5"));
    }
    if (options.stop_after_step > 0 && step >= options.stop_after_step && step < total_steps) {
      out << "stopped after step " << step << " (as asked)\n";
      result.steps = step;
      result.stopped_early = true;
      result.best_val_accuracy = best;
      return result;
    }
  }

  // The end: validate (unless just done), write last.h5, then test best.h5.
  if (!evaluated_at_step) {
    if (validate()) save(run_dir / "best.h5");
    save(run_dir / "last.h5");
  }
  const Checkpoint best_ck = read_checkpoint((run_dir / "best.h5").string());
  model->load_state_dict(best_ck.model);
  const EvalResult test = evaluate_model(*model, *splits.test, tc.batch_size, device);
  metrics.write({{"event", "test"},
                 {"split", "test"},
                 {"step", step},
                 {"checkpoint_step", best_ck.step},
                 {"loss", test.loss},
                 {"accuracy", test.accuracy}});
  char line[200];
  std::snprintf(
      line, sizeof line,
      "done: %lld steps in %s; best val acc %.4f; test (best.h5, step %lld) loss "
      "%.4f acc %.4f",
      static_cast<long long>(step),
      format_duration(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count())
          .c_str(),
      best, static_cast<long long>(best_ck.step), test.loss, test.accuracy);
  out << line << std::endl;
  result.steps = step;
  result.best_val_accuracy = best;
  result.test = test;
  return result;
}

}  // namespace ssm
