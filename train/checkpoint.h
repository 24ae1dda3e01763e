#pragma once
// HDF5 checkpoints (layout in docs/checkpoint.md):
//   /model/<parameter or buffer name>       datasets, one per state_dict entry
//   /optimizer/tensors/<key>                datasets (exp_avg, momentum_buffer, ...)
//   /optimizer/counters/<key>               int64 scalars (per-parameter step counts)
//   /rng/{seed,stream,offset}               the generator's state (uint64, uint32, uint64)
//   /data/{epoch,index}                     the loader's position (int64)
//   attributes on /: format ("ssmkit-checkpoint"), format_version, step, epoch,
//                    best_metric, config (the resolved YAML text)
// Names with dots are stored as they are (`layers.0.mixer.in_proj.weight`);
// a '/' in a key opens a subgroup, so the optimizer's `w/exp_avg` is the
// dataset /optimizer/tensors/w/exp_avg. Each of /model, /optimizer/tensors
// and /optimizer/counters lists its keys in a `names` attribute, and
// read_checkpoint returns the entries in that (the written) order.
//
// write_checkpoint takes tensors on any device and of any layout (float32,
// float64, int32, int64; bfloat16 throws) and stores their values row-major.
// It writes `path.tmp`, syncs it and renames it onto `path`, so a crash
// mid-write leaves the previous file intact; on failure it removes the tmp
// file. read_checkpoint returns contiguous CPU tensors and throws ssm::Error
// "[checkpoint] <path>: ..." naming the dataset or attribute for a truncated
// or foreign file, a missing dataset, or a wrong format version.
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "layers/module.h"
#include "train/optim.h"

namespace ssm {

inline constexpr std::int64_t kCheckpointFormatVersion = 1;

struct Checkpoint {
  StateDict model;           // CPU tensors
  OptimizerState optimizer;  // CPU tensors
  GeneratorState rng;
  std::int64_t data_epoch = 0;  // loader position: epoch and index within its permutation
  std::int64_t data_index = 0;
  std::int64_t step = 0;  // optimizer steps taken
  std::int64_t epoch = 0;
  double best_metric = 0.0;
  std::string config_yaml;
};

void write_checkpoint(const std::string& path, const Checkpoint& ckpt);
Checkpoint read_checkpoint(const std::string& path);

// Every dataset directly under `group` of an HDF5 file (any layout, e.g.
// golden files written by h5py), as tensors by name, sorted by name. Datasets
// must be float32, float64, int32 or int64; sub-groups are skipped. Throws
// "[checkpoint] <path>: ..." for a missing file or group or another dtype.
StateDict read_hdf5_group(const std::string& path, const std::string& group);

// Writes the tensors as datasets at the root of a new HDF5 file (dumps,
// exported weights), with a string attribute per entry of `attributes`.
// Written to `path`.tmp and renamed, like checkpoints; keys must be unique
// and non-empty, and may contain '/' (intermediate groups are created).
void write_hdf5_tensors(const std::string& path, const StateDict& tensors,
                        const std::vector<std::pair<std::string, std::string>>& attributes = {});

// True when `path` is a complete checkpoint of this format: every group,
// dataset and attribute that read_checkpoint needs is present with a usable
// type (tensor data is not read). Never throws.
bool is_valid_checkpoint(const std::string& path);

// The newest valid checkpoint (*.h5, by step, then modification time) in
// `dir`; `.tmp` leftovers and invalid files are skipped. Empty when none.
std::string find_latest_checkpoint(const std::string& dir);

}  // namespace ssm
