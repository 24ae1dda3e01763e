#pragma once
// Test support, not part of the checkpoint API: edits a checkpoint file in
// place to make the damaged files (a dataset deleted with h5py, a file from
// a newer build, a foreign HDF5 file) that read_checkpoint must reject. The
// tests cannot call HDF5 themselves (its headers are private to ssm_train).
// Each function throws ssm::Error "[checkpoint] <path>: ..." when it fails.
#include <cstdint>
#include <string>

namespace ssm::checkpoint_testing {

// Deletes the link `link` ("/model/encoder.weight", "/data") from the file.
void remove_link(const std::string& path, const std::string& link);
// Deletes the attribute `name` ("format") of the root group.
void remove_root_attribute(const std::string& path, const std::string& name);
// Sets the root attribute `name` ("format_version") to an int64 scalar.
void set_root_attribute(const std::string& path, const std::string& name, std::int64_t value);

}  // namespace ssm::checkpoint_testing
