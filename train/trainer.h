#pragma once
// The training loop behind `train` and the evaluation behind `evaluate`.
//
// A run lives in its folder (run.output_dir/run.name):
//   config.yaml    the resolved config
//   metrics.jsonl  one JSON object per logged step ("train"), per evaluation
//                  ("eval", split val) and at the end ("test", on best.h5)
//   last.h5        the newest checkpoint (every train.checkpoint_every steps,
//                  at each evaluation and at the end)
//   best.h5        the checkpoint with the best validation accuracy so far
//   step_<N>.h5    kept every train.keep_every steps when set
//
// Determinism: parameters are initialised from Philox(train.seed, stream 0),
// dropout draws from Philox(train.seed, stream 1) whose state the checkpoint
// stores, and the loader shuffles epoch e with Philox(train.seed ^ φ, stream
// e) (φ = 0x9e3779b97f4a7c15) from its stored position. A run resumed from any checkpoint therefore
// ends, on CPU, with bit-identical parameters and the same logged losses as
// the run that never stopped; on resume, metrics.jsonl is cut back to the
// checkpoint's step before the run continues.
//
// One optimizer step takes train.grad_accum micro-batches (fewer at the end
// of an epoch); the loss is the mean cross-entropy over all their examples.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>

#include "data/dataset.h"
#include "data/registry.h"
#include "layers/models/model.h"
#include "train/config.h"

namespace ssm {

struct EvalResult {
  double loss = 0.0;      // mean cross-entropy over the split (per target token: sequence outputs)
  double accuracy = 0.0;  // in [0, 1]; per target token for sequence-output tasks
  std::int64_t examples = 0;
};

// One batch's mean cross-entropy (recorded when grad mode is on), correct
// predictions and the count they are out of: per example (logits of
// model.forward against the labels), or, with sequence_targets (a dataset
// whose x2 holds target tokens), per target token (model.forward_outputs
// at the last n positions against x2 (B, n)).
struct BatchLoss {
  Tensor loss;
  std::int64_t correct = 0;
  std::int64_t count = 0;
};
BatchLoss batch_loss(Model& model, const data::Batch& b, bool sequence_targets, Device device);

// Mean loss and accuracy of `model` (put in eval mode) over `dataset`, in
// batches of batch_size, in index order, without recording.
EvalResult evaluate_model(Model& model, const data::Dataset& dataset, std::int64_t batch_size,
                          Device device);

// cpu | cuda | auto -> a device. auto is the CPU until the CUDA backend has
// the training ops (a one-line notice says so when a GPU is visible); cuda
// without a visible GPU throws.
Device resolve_device(const std::string& name);

// The model a config describes, for a dataset's input shape, initialised
// from Philox(seed, 0) (what train builds and evaluate loads into).
std::shared_ptr<Model> build_model(const Config& config, const data::Dataset& example_source,
                                   Generator* dropout_gen);

struct TrainOptions {
  std::string resume;           // "": fresh run; "auto": newest valid checkpoint in the run folder
                                // (fresh when none); otherwise a checkpoint path
  std::string device;           // overrides train.device when set
  std::ostream* out = nullptr;  // progress and messages (std::cout when null)
  bool progress_bar = false;    // a live bar (a terminal) instead of plain lines
  // Tests: stop after this optimizer step as if killed (0: never).
  std::int64_t stop_after_step = 0;
  // Tests: use these datasets instead of config.data.
  data::Splits datasets;
};

struct TrainResult {
  std::string run_dir;
  std::int64_t steps = 0;          // optimizer steps taken (including resumed ones)
  std::int64_t skipped_steps = 0;  // non-finite steps skipped (skip_nonfinite)
  double best_val_accuracy = 0.0;
  EvalResult test;  // on best.h5 at the end (examples == 0 when stopped early)
  bool stopped_early = false;
};

// Trains as the config says. Throws ssm::Error for bad input, a checkpoint
// that does not match the model, or a non-finite loss or gradient (naming
// the step and the first parameter affected) unless train.skip_nonfinite.
TrainResult train(const Config& config, const TrainOptions& options = {});

}  // namespace ssm
