#include "layers/models/s4_family.h"

#include "layers/models/backbone.h"
#include "layers/ssm/lssl.h"
#include "layers/ssm/rtf.h"
#include "layers/ssm/s4.h"
#include "layers/ssm/s4d.h"

namespace ssm {

namespace {

[[noreturn]] void reject(const std::string& family, const char* key, const std::string& value,
                         const char* accepted) {
  fail(family.c_str(), "model.", key, " '", value, "' is not available for ", family,
       "; accepted: ", accepted);
}

std::shared_ptr<SSMKernel> make_kernel(const ModelConfig& c, std::int64_t kernel_channels,
                                       Generator& gen, DType dtype) {
  const std::string& f = c.name;
  const std::int64_t H = c.d_model, N = c.d_state;
  if (f == "s4d") {
    S4DOptions o;
    if (c.init != "legs" && c.init != "lin" && c.init != "inv" && c.init != "real") {
      reject(f, "init", c.init, "legs, lin, inv, real");
    }
    o.init = c.init;
    if (c.disc != "auto" && c.disc != "zoh" && c.disc != "bilinear") {
      reject(f, "disc", c.disc, "auto (zoh), zoh, bilinear");
    }
    o.disc = c.disc == "auto" ? "zoh" : c.disc;
    o.dt_min = c.dt_min;
    o.dt_max = c.dt_max;
    return std::make_shared<S4DKernel>(H, N, kernel_channels, o, gen, dtype);
  }
  if (f == "s4") {
    if (c.init != "legs") reject(f, "init", c.init, "legs (the DPLR form of HiPPO-LegS)");
    if (c.disc != "auto" && c.disc != "bilinear") reject(f, "disc", c.disc, "auto, bilinear");
    S4Options o;
    o.rank = c.rank;
    o.dt_min = c.dt_min;
    o.dt_max = c.dt_max;
    return std::make_shared<S4Kernel>(H, N, kernel_channels, o, gen, dtype);
  }
  if (f == "lssl") {
    if (c.init != "legs" && c.init != "legt" && c.init != "lagt" && c.init != "fout") {
      reject(f, "init", c.init, "the HiPPO measures legs, legt, lagt, fout");
    }
    LSSLOptions o;
    o.measure = c.init;
    o.learn_A = c.learn_a;
    if (c.disc == "auto" || c.disc == "bilinear") {
      o.disc = "gbt";
      o.alpha = 0.5;
    } else if (c.disc == "gbt") {
      o.disc = "gbt";
      o.alpha = c.alpha;
    } else {
      o.disc = "zoh";
    }
    o.dt_min = c.dt_min;
    o.dt_max = c.dt_max;
    return std::make_shared<LSSLKernel>(H, N, kernel_channels, o, gen, dtype);
  }
  if (f == "rtf") {
    if (c.disc != "auto") reject(f, "disc", c.disc, "auto (RTF is discrete by construction)");
    return std::make_shared<RTFKernel>(H, N, kernel_channels, RTFOptions{}, gen, dtype);
  }
  fail("make_s4_block", "unknown S4-family layer '", f, "'; known: s4d, s4, lssl, rtf");
}

}  // namespace

std::shared_ptr<S4Block> make_s4_block(const ModelConfig& config, Generator& gen,
                                       Generator* dropout_gen, DType dtype) {
  S4BlockOptions o;
  o.channels = config.channels;
  o.bidirectional = config.bidirectional;
  o.dropout = config.dropout;
  const std::int64_t kernel_channels = config.channels * (config.bidirectional ? 2 : 1);
  auto kernel = make_kernel(config, kernel_channels, gen, dtype);
  return std::make_shared<S4Block>(kernel, o, gen, dropout_gen, dtype);
}

std::shared_ptr<Model> make_s4_family_model(const ModelConfig& config, const ModelIO& io,
                                            Generator& init_gen, Generator* dropout_gen) {
  check_model_args(config.name, config, io, dropout_gen);
  return std::make_shared<SequenceClassifier>(
      config.name, config, io, init_gen, dropout_gen,
      [&](std::int64_t) { return make_s4_block(config, init_gen, dropout_gen, io.dtype); });
}

}  // namespace ssm
