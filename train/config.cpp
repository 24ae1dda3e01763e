// The training config: YAML text -> a table of positioned entries (with the
// overrides applied) -> typed structs, checked key by key.
#include "train/config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <variant>

namespace ssm {
namespace {

// ---------------------------------------------------------------- the field tables
// Every key of a section names one member of its struct; the tables give the
// order of to_yaml and the known keys of error messages.
template <class S>
using Member = std::variant<std::string S::*, std::int64_t S::*, std::uint64_t S::*, double S::*,
                            bool S::*, std::optional<double> S::*>;

template <class S>
struct Field {
  const char* key;
  Member<S> member;
  bool required = false;
};

const std::vector<Field<ModelConfig>>& model_fields() {
  static const std::vector<Field<ModelConfig>> fields = {
      {"name", &ModelConfig::name, true},
      {"d_model", &ModelConfig::d_model},
      {"n_layers", &ModelConfig::n_layers},
      {"d_state", &ModelConfig::d_state},
      {"dropout", &ModelConfig::dropout},
      {"norm", &ModelConfig::norm},
      {"prenorm", &ModelConfig::prenorm},
      {"pooling", &ModelConfig::pooling},
      {"expand", &ModelConfig::expand},
      {"init", &ModelConfig::init},
      {"disc", &ModelConfig::disc},
      {"alpha", &ModelConfig::alpha},
      {"dt_min", &ModelConfig::dt_min},
      {"dt_max", &ModelConfig::dt_max},
      {"channels", &ModelConfig::channels},
      {"bidirectional", &ModelConfig::bidirectional},
      {"learn_a", &ModelConfig::learn_a},
      {"rank", &ModelConfig::rank},
      {"d_conv", &ModelConfig::d_conv},
      {"n_heads", &ModelConfig::n_heads},
      {"causal", &ModelConfig::causal},
      {"positions", &ModelConfig::positions},
      {"patch_size", &ModelConfig::patch_size},
      {"drop_path", &ModelConfig::drop_path},
  };
  return fields;
}

const std::vector<Field<DataConfig>>& data_fields() {
  static const std::vector<Field<DataConfig>> fields = {
      {"name", &DataConfig::name, true},
      {"path", &DataConfig::path},
      {"seq_len", &DataConfig::seq_len},
      {"d_input", &DataConfig::d_input},
      {"num_classes", &DataConfig::num_classes},
      {"train_size", &DataConfig::train_size},
      {"val_size", &DataConfig::val_size},
      {"test_size", &DataConfig::test_size},
      {"noise", &DataConfig::noise},
      {"seed", &DataConfig::seed},
      {"mode", &DataConfig::mode},
      {"permutation", &DataConfig::permutation},
      {"augment", &DataConfig::augment},
      {"min_len", &DataConfig::min_len},
      {"max_len", &DataConfig::max_len},
      {"truncate", &DataConfig::truncate},
      {"vocab_size", &DataConfig::vocab_size},
      {"num_tokens", &DataConfig::num_tokens},
      {"pad", &DataConfig::pad},
      {"pad_length", &DataConfig::pad_length},
      {"prefetch", &DataConfig::prefetch},
  };
  return fields;
}

const std::vector<Field<OptimizerConfig>>& optimizer_fields() {
  static const std::vector<Field<OptimizerConfig>> fields = {
      {"name", &OptimizerConfig::name, true},
      {"lr", &OptimizerConfig::lr, true},
      {"weight_decay", &OptimizerConfig::weight_decay},
      {"beta1", &OptimizerConfig::beta1},
      {"beta2", &OptimizerConfig::beta2},
      {"eps", &OptimizerConfig::eps},
      {"momentum", &OptimizerConfig::momentum},
      {"nesterov", &OptimizerConfig::nesterov},
      {"ssm_lr", &OptimizerConfig::ssm_lr},
      {"ssm_weight_decay", &OptimizerConfig::ssm_weight_decay},
  };
  return fields;
}

const std::vector<Field<SchedulerConfig>>& scheduler_fields() {
  static const std::vector<Field<SchedulerConfig>> fields = {
      {"name", &SchedulerConfig::name},
      {"warmup_steps", &SchedulerConfig::warmup_steps},
      {"min_lr_ratio", &SchedulerConfig::min_lr_ratio},
      {"step_size", &SchedulerConfig::step_size},
      {"gamma", &SchedulerConfig::gamma},
  };
  return fields;
}

const std::vector<Field<TrainConfig>>& train_fields() {
  static const std::vector<Field<TrainConfig>> fields = {
      {"epochs", &TrainConfig::epochs},
      {"max_steps", &TrainConfig::max_steps},
      {"batch_size", &TrainConfig::batch_size, true},
      {"grad_accum", &TrainConfig::grad_accum},
      {"grad_clip", &TrainConfig::grad_clip},
      {"log_every", &TrainConfig::log_every},
      {"eval_every", &TrainConfig::eval_every},
      {"checkpoint_every", &TrainConfig::checkpoint_every},
      {"keep_every", &TrainConfig::keep_every},
      {"seed", &TrainConfig::seed},
      {"device", &TrainConfig::device},
      {"skip_nonfinite", &TrainConfig::skip_nonfinite},
      {"drop_last", &TrainConfig::drop_last},
  };
  return fields;
}

const std::vector<Field<RunConfig>>& run_fields() {
  static const std::vector<Field<RunConfig>> fields = {
      {"name", &RunConfig::name},
      {"output_dir", &RunConfig::output_dir},
  };
  return fields;
}

// The sections by name: their keys, which keys are required, and whether the
// section itself is.
struct SectionInfo {
  std::string name;
  bool required;
  std::vector<std::string> keys;
  std::vector<std::string> required_keys;
};

template <class S>
SectionInfo section_info(const char* name, bool required, const std::vector<Field<S>>& fields) {
  SectionInfo info{name, required, {}, {}};
  for (const Field<S>& f : fields) {
    info.keys.emplace_back(f.key);
    if (f.required) info.required_keys.emplace_back(f.key);
  }
  return info;
}

const std::vector<SectionInfo>& sections() {
  static const std::vector<SectionInfo> infos = {
      section_info("model", true, model_fields()),
      section_info("data", true, data_fields()),
      section_info("optimizer", true, optimizer_fields()),
      section_info("scheduler", false, scheduler_fields()),
      section_info("train", true, train_fields()),
      section_info("run", false, run_fields()),
  };
  return infos;
}

const SectionInfo* find_section(std::string_view name) {
  for (const SectionInfo& s : sections()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

bool has_key(const SectionInfo& s, std::string_view key) {
  for (const std::string& k : s.keys) {
    if (k == key) return true;
  }
  return false;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string section_names() {
  std::vector<std::string> names;
  for (const SectionInfo& s : sections()) names.push_back(s.name);
  return join(names);
}

// ---------------------------------------------------------------- the document
// Each entry remembers where its key and value came from: "file:line:col", or
// "--set arg" for an override.
struct Entry {
  YAML::Node value;
  std::string key_at, value_at;
};

struct Section {
  bool present = false;
  std::string at;  // the section's map (missing keys are reported here)
  std::map<std::string, Entry> entries;
};

struct Document {
  std::string name;
  std::map<std::string, Section> sections;
};

std::string position(const std::string& name, const YAML::Mark& mark) {
  if (mark.is_null()) return name;
  return name + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

[[noreturn]] void fail_at(const std::string& at, const std::string& message) {
  throw ConfigError(at + ": " + message);
}

// "a map", "a list", "null" or the scalar in quotes: what came instead.
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    default: return "null";
  }
}

// A null value written as `key:` carries the mark of the next token, so
// errors about null values point at the key instead.
std::string value_position(const std::string& name, const YAML::Node& key,
                           const YAML::Node& value) {
  return position(name, value.IsNull() ? key.Mark() : value.Mark());
}

// Reads the keys of one section map, rejecting unknown and repeated keys.
void read_section_map(const std::string& name, const SectionInfo& info, const YAML::Node& map,
                      Section& out) {
  for (const auto& item : map) {
    const YAML::Node& key = item.first;
    const std::string key_at = position(name, key.Mark());
    if (!key.IsScalar()) {
      fail_at(key_at, info.name + ": expected a key name, got " + describe(key));
    }
    const std::string& k = key.Scalar();
    if (!has_key(info, k)) {
      fail_at(key_at, "unknown key '" + info.name + "." + k + "' (known: " + join(info.keys) + ")");
    }
    if (const auto seen = out.entries.find(k); seen != out.entries.end()) {
      fail_at(key_at,
              "duplicate key '" + info.name + "." + k + "' (first at " + seen->second.key_at + ")");
    }
    out.entries[k] = Entry{item.second, key_at, value_position(name, key, item.second)};
  }
}

Document parse_document(const std::string& yaml, const std::string& name) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    fail_at(position(name, e.mark), "YAML syntax error: " + e.msg);
  }
  Document doc;
  doc.name = name;
  if (docs.size() > 1) {
    fail_at(position(name, docs[1].Mark()),
            "expected one YAML document, got " + std::to_string(docs.size()));
  }
  if (docs.empty() || docs[0].IsNull()) return doc;  // every section is missing
  const YAML::Node& root = docs[0];
  if (!root.IsMap()) {
    fail_at(position(name, root.Mark()),
            "expected a map of sections (" + section_names() + "), got " + describe(root));
  }
  for (const auto& item : root) {
    const YAML::Node& key = item.first;
    const YAML::Node& value = item.second;
    const std::string key_at = position(name, key.Mark());
    if (!key.IsScalar()) fail_at(key_at, "expected a section name, got " + describe(key));
    const SectionInfo* info = find_section(key.Scalar());
    if (info == nullptr) {
      fail_at(key_at, "unknown key '" + key.Scalar() + "' (known: " + section_names() + ")");
    }
    Section& section = doc.sections[info->name];
    if (section.present) fail_at(key_at, "duplicate section '" + info->name + "'");
    section.present = true;
    if (value.IsNull()) {  // `scheduler:` with every key commented out
      section.at = key_at;
      continue;
    }
    if (!value.IsMap()) {
      fail_at(position(name, value.Mark()),
              info->name + ": expected a map of keys, got " + describe(value));
    }
    section.at = position(name, value.Mark());
    read_section_map(name, *info, value, section);
  }
  return doc;
}

// `section.key=value`: the value is YAML, replacing what the file said.
void apply_override(Document& doc, const std::string& arg) {
  const std::string at = "--set " + arg;
  const std::size_t eq = arg.find('=');
  if (eq == std::string::npos) fail_at(at, "expected section.key=value, got no '='");
  const std::string path = arg.substr(0, eq);
  if (path.empty()) fail_at(at, "expected section.key=value, got an empty key path");
  const std::size_t dot = path.find('.');
  if (dot == std::string::npos || path.find('.', dot + 1) != std::string::npos) {
    fail_at(at, "expected a key path section.key, got '" + path + "'");
  }
  const std::string section_name = path.substr(0, dot), key = path.substr(dot + 1);
  const SectionInfo* info = find_section(section_name);
  if (info == nullptr) {
    fail_at(at, "unknown section '" + section_name + "' (known: " + section_names() + ")");
  }
  if (!has_key(*info, key)) {
    fail_at(at, "unknown key '" + path + "' (known: " + join(info->keys) + ")");
  }
  YAML::Node value;
  try {
    value = YAML::Load(arg.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    fail_at(at, "YAML syntax error: " + e.msg);
  }
  Section& section = doc.sections[section_name];
  if (!section.present) {  // a section the file lacks; missing keys are reported at its top
    section.present = true;
    section.at = doc.name + ":1:1";
  }
  section.entries[key] = Entry{value, at, at};
}

void check_required(const Document& doc) {
  for (const SectionInfo& info : sections()) {
    const auto it = doc.sections.find(info.name);
    if (it == doc.sections.end() || !it->second.present) {
      if (info.required) fail_at(doc.name + ":1:1", "missing required section " + info.name);
      continue;
    }
    for (const std::string& key : info.required_keys) {
      if (it->second.entries.count(key) == 0) {
        fail_at(it->second.at, "missing required key " + info.name + "." + key);
      }
    }
  }
}

// ---------------------------------------------------------------- scalar conversion
bool is_quoted(const YAML::Node& node) {
  return node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
}

// The plain scalar text of a number or boolean, or nothing for a string,
// null, list or map.
std::optional<std::string> plain_scalar(const YAML::Node& node) {
  if (!node.IsScalar() || is_quoted(node)) return std::nullopt;
  return node.Scalar();
}

// Whole-string parse of an integer or floating-point number ('+' allowed).
template <class T>
std::optional<T> parse_number(std::string text) {
  if (!text.empty() && text[0] == '+') text.erase(0, 1);
  if (text.empty() || text[0] == '+') return std::nullopt;
  if constexpr (std::is_unsigned_v<T>) {
    if (text[0] == '-') return std::nullopt;
  }
  T value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) return std::nullopt;
  }
  return value;
}

// What a quoted scalar is called in messages.
std::string describe_for_type(const YAML::Node& node) {
  if (node.IsScalar() && is_quoted(node)) return "the string " + describe(node);
  return describe(node);
}

struct Converter {
  const std::string& full;  // "section.key"
  const Entry& entry;

  [[noreturn]] void wrong_type(const std::string& expected) const {
    fail_at(entry.value_at,
            full + ": expected " + expected + ", got " + describe_for_type(entry.value));
  }

  void operator()(std::string& out) const {
    if (!entry.value.IsScalar()) wrong_type("a string");
    out = entry.value.Scalar();
  }
  void operator()(std::int64_t& out) const {
    const auto text = plain_scalar(entry.value);
    const auto v = text ? parse_number<std::int64_t>(*text) : std::nullopt;
    if (!v) wrong_type("an integer");
    out = *v;
  }
  void operator()(std::uint64_t& out) const {
    const auto text = plain_scalar(entry.value);
    const auto v = text ? parse_number<std::uint64_t>(*text) : std::nullopt;
    if (!v) wrong_type("a non-negative integer");
    out = *v;
  }
  void operator()(double& out) const {
    const auto text = plain_scalar(entry.value);
    const auto v = text ? parse_number<double>(*text) : std::nullopt;
    if (!v) wrong_type("a number");
    out = *v;
  }
  void operator()(bool& out) const {
    const auto text = plain_scalar(entry.value);
    if (text == "true") {
      out = true;
    } else if (text == "false") {
      out = false;
    } else {
      wrong_type("true or false");
    }
  }
  void operator()(std::optional<double>& out) const {
    if (entry.value.IsNull()) {
      out.reset();
      return;
    }
    double v = 0.0;
    (*this)(v);
    out = v;
  }
};

// Reads the entries of one section into its struct (defaults stay where a
// key is absent).
template <class S>
S read_struct(const Document& doc, const std::string& section_name,
              const std::vector<Field<S>>& fields) {
  S out{};
  const auto it = doc.sections.find(section_name);
  if (it == doc.sections.end()) return out;
  for (const Field<S>& f : fields) {
    const auto e = it->second.entries.find(f.key);
    if (e == it->second.entries.end()) continue;
    const std::string full = section_name + "." + f.key;
    const Converter convert{full, e->second};
    std::visit([&](auto member) { convert(out.*member); }, f.member);
  }
  return out;
}

// ---------------------------------------------------------------- range checks
std::string format_double(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);  // shortest exact form
  return std::string(buf, ptr);
}

// Checks the values of one section; failures point at the value at fault.
class Checker {
 public:
  Checker(const Document& doc, std::string section) : doc_(doc), section_(std::move(section)) {}

  // Fails with "section.key: rule, got <value>" unless ok.
  void require(bool ok, const char* key, const std::string& rule) const {
    if (!ok) fail(key, rule + ", got " + got(key));
  }
  void one_of(const std::string& value, const char* key,
              const std::vector<std::string>& allowed) const {
    for (const std::string& a : allowed) {
      if (value == a) return;
    }
    fail(key, "expected one of " + join(allowed) + ", got '" + value + "'");
  }
  [[noreturn]] void fail(const char* key, const std::string& message) const {
    fail_at(where(key), section_ + "." + key + ": " + message);
  }

 private:
  const Entry* entry(const char* key) const {
    const auto s = doc_.sections.find(section_);
    if (s == doc_.sections.end()) return nullptr;
    const auto e = s->second.entries.find(key);
    return e == s->second.entries.end() ? nullptr : &e->second;
  }
  std::string where(const char* key) const {
    if (const Entry* e = entry(key)) return e->value_at;
    const auto s = doc_.sections.find(section_);
    if (s != doc_.sections.end() && s->second.present) return s->second.at;
    return doc_.name + ":1:1";
  }
  // The value as written: numbers in their own spelling, text in quotes.
  std::string got(const char* key) const {
    const Entry* e = entry(key);
    if (e == nullptr) return "the default";
    const auto text = plain_scalar(e->value);
    if (text && parse_number<double>(*text)) return *text;
    return describe(e->value);
  }

  const Document& doc_;
  std::string section_;
};

void check_model(const Document& doc, const ModelConfig& m) {
  const Checker c(doc, "model");
  c.require(!m.name.empty(), "name", "must be a non-empty name");
  c.require(m.d_model > 0, "d_model", "must be > 0");
  c.require(m.n_layers > 0, "n_layers", "must be > 0");
  c.require(m.d_state > 0, "d_state", "must be > 0");
  c.require(m.dropout >= 0.0 && m.dropout < 1.0, "dropout", "must be in [0, 1)");
  c.one_of(m.norm, "norm", {"layer", "rms"});
  c.one_of(m.pooling, "pooling", {"mean", "last"});
  c.require(m.expand > 0.0, "expand", "must be > 0");
  c.one_of(m.init, "init", {"legs", "lin", "inv", "real", "legt", "lagt", "fout"});
  c.one_of(m.disc, "disc", {"auto", "zoh", "bilinear", "gbt"});
  c.require(m.alpha >= 0.0 && m.alpha <= 1.0, "alpha", "must be in [0, 1]");
  c.require(m.dt_min > 0.0, "dt_min", "must be > 0");
  c.require(m.dt_max >= m.dt_min, "dt_max", "must be >= dt_min");
  c.require(m.channels >= 1, "channels", "must be >= 1");
  c.require(m.rank >= 1, "rank", "must be >= 1");
  c.require(m.d_conv >= 0 && m.d_conv <= 31, "d_conv",
            "must be in [0, 31] (0: the family's default)");
  c.require(m.n_heads >= 1, "n_heads", "must be >= 1");
  if (m.name == "transformer" && m.d_model % m.n_heads != 0) {
    c.fail("n_heads", std::string("must divide model.d_model (")
                          .append(std::to_string(m.d_model))
                          .append("), got ")
                          .append(std::to_string(m.n_heads)));
  }
  c.one_of(m.positions, "positions", {"learned", "sinusoidal"});
  c.require(m.patch_size >= 1, "patch_size", "must be >= 1");
  c.require(m.drop_path >= 0.0 && m.drop_path < 1.0, "drop_path", "must be in [0, 1)");
}

void check_data(const Document& doc, const DataConfig& d) {
  const Checker c(doc, "data");
  c.require(!d.name.empty(), "name", "must be a non-empty name");
  c.require(d.seq_len > 0, "seq_len", "must be > 0");
  c.require(d.d_input > 0, "d_input", "must be > 0");
  c.require(d.num_classes >= 2, "num_classes", "must be >= 2");
  c.require(d.train_size > 0, "train_size", "must be > 0");
  c.require(d.val_size >= 0, "val_size", "must be >= 0");
  c.require(d.test_size > 0, "test_size", "must be > 0");
  c.require(d.noise >= 0.0, "noise", "must be >= 0");
  c.one_of(d.mode, "mode", {"rgb", "gray", "tokens"});
  c.one_of(d.permutation, "permutation", {"bit_reversal", "random", "none"});
  c.require(d.max_len >= 0, "max_len", "must be >= 0");
  c.require(d.min_len >= 0 && d.min_len <= d.seq_len, "min_len", "must be in [0, seq_len]");
  c.require(d.vocab_size >= 2, "vocab_size", "must be >= 2");
  c.require(d.num_tokens > 0, "num_tokens", "must be > 0");
  c.one_of(d.pad, "pad", {"none", "longest", "fixed"});
  if (d.pad == "fixed") c.require(d.pad_length > 0, "pad_length", "must be > 0 with pad: fixed");
  c.require(d.pad_length >= 0, "pad_length", "must be >= 0");
  c.require(d.prefetch >= 0, "prefetch", "must be >= 0");
}

void check_optimizer(const Document& doc, const OptimizerConfig& o) {
  const Checker c(doc, "optimizer");
  c.one_of(o.name, "name", {"adamw", "adam", "sgd"});
  c.require(o.lr > 0.0, "lr", "must be > 0");
  c.require(o.weight_decay >= 0.0, "weight_decay", "must be >= 0");
  c.require(o.beta1 >= 0.0 && o.beta1 < 1.0, "beta1", "must be in [0, 1)");
  c.require(o.beta2 >= 0.0 && o.beta2 < 1.0, "beta2", "must be in [0, 1)");
  c.require(o.eps > 0.0, "eps", "must be > 0");
  c.require(o.momentum >= 0.0, "momentum", "must be >= 0");
  if (o.nesterov && (o.name != "sgd" || o.momentum <= 0.0)) {
    c.fail("nesterov", "true needs name sgd and momentum > 0, got name '" + o.name +
                           "', momentum " + format_double(o.momentum));
  }
  c.require(!o.ssm_lr || *o.ssm_lr > 0.0, "ssm_lr", "must be > 0 when set");
  c.require(o.ssm_weight_decay >= 0.0, "ssm_weight_decay", "must be >= 0");
}

void check_scheduler(const Document& doc, const SchedulerConfig& s) {
  const Checker c(doc, "scheduler");
  c.one_of(s.name, "name", {"constant", "cosine", "step"});
  c.require(s.warmup_steps >= 0, "warmup_steps", "must be >= 0");
  c.require(s.min_lr_ratio >= 0.0 && s.min_lr_ratio <= 1.0, "min_lr_ratio", "must be in [0, 1]");
  c.require(s.step_size > 0, "step_size", "must be > 0");
  c.require(s.gamma > 0.0 && s.gamma <= 1.0, "gamma", "must be in (0, 1]");
}

void check_train(const Document& doc, const TrainConfig& t) {
  const Checker c(doc, "train");
  c.require(t.max_steps >= 0, "max_steps", "must be >= 0");
  c.require(t.epochs > 0 || t.max_steps > 0, "epochs", "must be > 0 when max_steps is 0");
  c.require(t.batch_size > 0, "batch_size", "must be > 0");
  c.require(t.grad_accum >= 1, "grad_accum", "must be >= 1");
  c.require(t.grad_clip >= 0.0, "grad_clip", "must be >= 0");
  c.require(t.log_every >= 1, "log_every", "must be >= 1");
  c.require(t.eval_every >= 0, "eval_every", "must be >= 0");
  c.require(t.checkpoint_every >= 0, "checkpoint_every", "must be >= 0");
  c.require(t.keep_every >= 0, "keep_every", "must be >= 0");
  c.one_of(t.device, "device", {"cpu", "cuda", "auto"});
}

void check_run(const Document& doc, const RunConfig& r) {
  const Checker c(doc, "run");
  c.require(!r.name.empty() && r.name.find('/') == std::string::npos, "name",
            "must be a non-empty name without '/'");
  c.require(!r.output_dir.empty(), "output_dir", "must be a non-empty path");
}

// ---------------------------------------------------------------- output
// Plain when the text reads back as the same string in any YAML reader,
// double-quoted otherwise.
std::string yaml_string(const std::string& s) {
  bool plain = !s.empty() && (std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_');
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    plain = plain && (std::isalnum(u) || ch == '_' || ch == '-' || ch == '.' || ch == '/');
  }
  if (plain) {
    std::string lower;
    for (const char ch : s)
      lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    for (const char* word : {"null", "true", "false", "yes", "no", "on", "off", "y", "n"}) {
      if (lower == word) plain = false;
    }
  }
  if (plain) return s;
  std::string out = "\"";
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20 || u == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

template <class S>
void emit_section(std::ostringstream& os, const char* name, const std::vector<Field<S>>& fields,
                  const S& value) {
  os << name << ":\n";
  for (const Field<S>& f : fields) {
    std::visit(
        [&](auto member) {
          const auto& v = value.*member;
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::optional<double>>) {
            if (v) os << "  " << f.key << ": " << format_double(*v) << "\n";
          } else {
            os << "  " << f.key << ": ";
            if constexpr (std::is_same_v<T, std::string>) {
              os << yaml_string(v);
            } else if constexpr (std::is_same_v<T, bool>) {
              os << (v ? "true" : "false");
            } else if constexpr (std::is_same_v<T, double>) {
              os << format_double(v);
            } else {
              os << v;
            }
            os << "\n";
          }
        },
        f.member);
  }
}

}  // namespace

Config load_config_string(const std::string& yaml, const std::string& name,
                          const std::vector<std::string>& overrides) {
  Document doc = parse_document(yaml, name);
  for (const std::string& arg : overrides) apply_override(doc, arg);
  check_required(doc);

  Config config;
  config.source = name;
  config.model = read_struct(doc, "model", model_fields());
  check_model(doc, config.model);
  config.data = read_struct(doc, "data", data_fields());
  check_data(doc, config.data);
  config.optimizer = read_struct(doc, "optimizer", optimizer_fields());
  check_optimizer(doc, config.optimizer);
  config.scheduler = read_struct(doc, "scheduler", scheduler_fields());
  check_scheduler(doc, config.scheduler);
  config.train = read_struct(doc, "train", train_fields());
  check_train(doc, config.train);
  config.run = read_struct(doc, "run", run_fields());
  check_run(doc, config.run);
  return config;
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError(path + ": cannot open config file (it is a directory)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open config file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": cannot read config file");
  return load_config_string(text.str(), path, overrides);
}

std::string to_yaml(const Config& config) {
  std::ostringstream os;
  emit_section(os, "model", model_fields(), config.model);
  emit_section(os, "data", data_fields(), config.data);
  emit_section(os, "optimizer", optimizer_fields(), config.optimizer);
  emit_section(os, "scheduler", scheduler_fields(), config.scheduler);
  emit_section(os, "train", train_fields(), config.train);
  emit_section(os, "run", run_fields(), config.run);
  return os.str();
}

}  // namespace ssm
