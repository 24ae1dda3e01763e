#include "layers/ssm/mamba.h"

#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/selective_scan.h"

namespace ssm {

namespace {

const char* kOp = "Mamba";

}  // namespace

Tensor reverse_valid(const Tensor& x, const Tensor& lengths) {
  SSM_CHECK(x.dim() >= 2, "reverse_valid", "expected x (B, L, ...), got ", x.desc());
  if (!lengths.defined()) return flip(x, {1});
  const std::int64_t B = x.size(0), L = x.size(1);
  SSM_CHECK(lengths.dim() == 1 && lengths.size(0) == B, "reverse_valid", "expected lengths (", B,
            "), got ", lengths.desc());
  const auto len = lengths.to_vector<std::int64_t>();
  std::int64_t inner = 1;
  for (std::int64_t d = 2; d < x.dim(); ++d) inner *= x.size(d);
  std::vector<std::int64_t> idx(static_cast<std::size_t>(B * L * inner));
  for (std::int64_t b = 0; b < B; ++b) {
    SSM_CHECK(len[b] >= 1 && len[b] <= L, "reverse_valid", "lengths[", b, "] = ", len[b],
              " lies outside [1, ", L, "]");
    for (std::int64_t t = 0; t < L; ++t) {
      const std::int64_t src = t < len[b] ? len[b] - 1 - t : t;
      std::fill_n(idx.begin() + (b * L + t) * inner, inner, src);
    }
  }
  const Tensor index = Tensor::from_vector(idx, x.shape(), DType::Int64).to(x.device());
  return gather(x, 1, index);
}

Mamba::Direction Mamba::make_direction(const std::string& suffix, Generator& gen, DType dtype) {
  Direction d;
  const std::int64_t N = opt_.d_state;
  d.conv1d = register_module(
      "conv1d" + suffix, std::make_shared<CausalConv1d>(d_inner_, opt_.d_conv, true, gen, dtype));
  d.x_proj = register_module(
      "x_proj" + suffix, std::make_shared<Linear>(d_inner_, dt_rank_ + 2 * N, false, gen, dtype));
  d.dt_proj = register_module("dt_proj" + suffix,
                              std::make_shared<Linear>(dt_rank_, d_inner_, true, gen, dtype));
  {
    NoGradGuard ng;
    const double std = 1.0 / std::sqrt(static_cast<double>(dt_rank_));
    Tensor w = d.dt_proj->weight();
    uniform_(w, -std, std, gen);
    // dt ~ logU[dt_min, dt_max], floored; the bias is softplus^-1(dt) = dt + log(-expm1(-dt)).
    Tensor u = Tensor::empty({d_inner_}, DType::Float64);
    uniform_(u, 0.0, 1.0, gen);
    auto v = u.to_vector<double>();
    const double lo = std::log(opt_.dt_min), hi = std::log(opt_.dt_max);
    for (double& e : v) {
      const double dt = std::max(std::exp(lo + e * (hi - lo)), opt_.dt_init_floor);
      e = dt + std::log(-std::expm1(-dt));
    }
    Tensor bias = d.dt_proj->bias();
    bias.copy_(Tensor::from_vector(v, {d_inner_}).to(dtype));
  }
  std::vector<double> a_log(static_cast<std::size_t>(d_inner_ * N));
  for (std::int64_t i = 0; i < d_inner_; ++i) {
    for (std::int64_t n = 0; n < N; ++n) a_log[i * N + n] = std::log(static_cast<double>(n + 1));
  }
  const std::string a_name = suffix.empty() ? "A_log" : "A" + suffix + "_log";
  d.A_log = &register_parameter(a_name, Tensor::from_vector(a_log, {d_inner_, N}).to(dtype),
                                {"no_decay"});
  d.D = &register_parameter("D" + suffix, Tensor::ones({d_inner_}, dtype), {"no_decay"});
  return d;
}

Mamba::Mamba(std::int64_t d_model, const MambaOptions& options, Generator& gen, DType dtype)
    : d_model_(d_model), opt_(options) {
  SSM_CHECK(d_model >= 1, kOp, "d_model must be >= 1, got ", d_model);
  SSM_CHECK(options.d_state >= 1 && options.d_state <= 256, kOp,
            "d_state must be in [1, 256] (the selective scan's limit), got ", options.d_state);
  SSM_CHECK(options.d_conv >= 1 && options.d_conv <= 8, kOp, "d_conv must be in [1, 8], got ",
            options.d_conv);
  SSM_CHECK(options.expand > 0.0, kOp, "expand must be > 0, got ", options.expand);
  SSM_CHECK(options.dt_min > 0.0 && options.dt_max >= options.dt_min, kOp,
            "need 0 < dt_min <= dt_max, got ", options.dt_min, ", ", options.dt_max);
  d_inner_ = static_cast<std::int64_t>(options.expand * static_cast<double>(d_model));
  SSM_CHECK(d_inner_ >= 1, kOp, "expand * d_model must be >= 1");
  dt_rank_ = options.dt_rank > 0 ? options.dt_rank : (d_model + 15) / 16;
  in_proj_ = register_module("in_proj",
                             std::make_shared<Linear>(d_model, 2 * d_inner_, false, gen, dtype));
  fwd_ = make_direction("", gen, dtype);
  if (opt_.bidirectional) bwd_ = make_direction("_b", gen, dtype);
  out_proj_ =
      register_module("out_proj", std::make_shared<Linear>(d_inner_, d_model, false, gen, dtype));
  if (opt_.out_proj_scale != 1.0) {
    NoGradGuard ng;
    Tensor w = out_proj_->weight();
    w.copy_(mul(w, opt_.out_proj_scale));
  }
}

Tensor Mamba::ssm_branch(const Direction& dir, const Tensor& x, const Tensor& z) const {
  const std::int64_t N = opt_.d_state, R = dt_rank_;
  const Tensor xc = dir.conv1d->forward(x, /*silu=*/true);                    // (B, Di, L)
  const Tensor x_dbl = dir.x_proj->forward(transpose(xc, 1, 2));              // (B, L, R + 2N)
  const Tensor dt = narrow(x_dbl, 2, 0, R);                                   // (B, L, R)
  const Tensor Bm = contiguous(transpose(narrow(x_dbl, 2, R, N), 1, 2));      // (B, N, L)
  const Tensor Cm = contiguous(transpose(narrow(x_dbl, 2, R + N, N), 1, 2));  // (B, N, L)
  const Tensor delta =
      contiguous(transpose(linear(dt, dir.dt_proj->weight()), 1, 2));  // (B, Di, L)
  const Tensor A = neg(exp(*dir.A_log));                               // (Di, N)
  return selective_scan(xc, delta, A, Bm, Cm, *dir.D, z, dir.dt_proj->bias(), true).y;
}

Tensor Mamba::run(const Tensor& x, const Tensor& lengths) {
  SSM_CHECK(x.dim() == 3 && x.size(2) == d_model_, kOp, "expected x (B, L, ", d_model_, "), got ",
            x.desc());
  const Tensor xz = in_proj_->forward(x);  // (B, L, 2 Di)
  auto branch = [&](const Direction& dir, const Tensor& xz_dir) {
    const Tensor t = contiguous(transpose(xz_dir, 1, 2));  // (B, 2 Di, L)
    return transpose(ssm_branch(dir, narrow(t, 1, 0, d_inner_), narrow(t, 1, d_inner_, d_inner_)),
                     1, 2);  // (B, L, Di)
  };
  Tensor y = branch(fwd_, xz);
  if (opt_.bidirectional) {
    const Tensor y_b = reverse_valid(branch(bwd_, reverse_valid(xz, lengths)), lengths);
    y = mul(add(y, y_b), 0.5);
  }
  return out_proj_->forward(y);  // (B, L, d_model)
}

Tensor Mamba::forward(const Tensor& x) { return run(x, Tensor()); }

Tensor Mamba::forward_padded(const Tensor& x, const Tensor& lengths) { return run(x, lengths); }

MambaState Mamba::default_state(std::int64_t batch) const {
  const DType dt = in_proj_->weight().dtype();
  const Device dev = in_proj_->weight().device();
  return {Tensor::zeros({batch, d_inner_, opt_.d_conv}, dt, dev),
          Tensor::zeros({batch, d_inner_, opt_.d_state}, dt, dev)};
}

Tensor Mamba::step_branch(const Direction& dir, const Tensor& x_t, const Tensor& z_t,
                          MambaState& state) const {
  const std::int64_t N = opt_.d_state, R = dt_rank_;
  const Tensor xc = causal_conv1d_update(x_t.contiguous(), state.conv, dir.conv1d->weight(),
                                         dir.conv1d->bias(), /*silu=*/true);  // (B, Di)
  const Tensor x_db = dir.x_proj->forward(xc);                                // (B, R + 2N)
  const Tensor delta = linear(narrow(x_db, 1, 0, R), dir.dt_proj->weight());  // (B, Di)
  const Tensor Bt = unsqueeze(narrow(x_db, 1, R, N), 1).contiguous();         // (B, 1, N)
  const Tensor Ct = unsqueeze(narrow(x_db, 1, R + N, N), 1).contiguous();     // (B, 1, N)
  const Tensor A = neg(exp(*dir.A_log));
  return selective_state_update(state.ssm, xc, delta.contiguous(), A, Bt, Ct, *dir.D,
                                z_t.contiguous(), dir.dt_proj->bias(), true);  // (B, Di)
}

Tensor Mamba::step(const Tensor& x_t, MambaState& state) {
  SSM_CHECK(!opt_.bidirectional, "Mamba::step",
            "a bidirectional block has no causal step mode (it reads the future); use "
            "forward_recurrent or forward");
  SSM_CHECK(x_t.dim() == 2 && x_t.size(1) == d_model_, "Mamba::step", "expected x_t (B, ", d_model_,
            "), got ", x_t.desc());
  NoGradGuard ng;
  const Tensor xz = in_proj_->forward(x_t);  // (B, 2 Di)
  const Tensor y =
      step_branch(fwd_, narrow(xz, 1, 0, d_inner_), narrow(xz, 1, d_inner_, d_inner_), state);
  return out_proj_->forward(y);
}

Tensor Mamba::forward_recurrent(const Tensor& x) {
  SSM_CHECK(x.dim() == 3 && x.size(2) == d_model_, "Mamba::forward_recurrent", "expected x (B, L, ",
            d_model_, "), got ", x.desc());
  NoGradGuard ng;
  const std::int64_t B = x.size(0), L = x.size(1);
  const Tensor xz = in_proj_->forward(x);  // (B, L, 2 Di)
  auto run_dir = [&](const Direction& dir, bool reverse) {
    MambaState state = default_state(B);
    std::vector<Tensor> ys(static_cast<std::size_t>(L));
    for (std::int64_t i = 0; i < L; ++i) {
      const std::int64_t t = reverse ? L - 1 - i : i;
      const Tensor xz_t = xz.select(1, t);  // (B, 2 Di)
      ys[static_cast<std::size_t>(t)] = step_branch(dir, narrow(xz_t, 1, 0, d_inner_),
                                                    narrow(xz_t, 1, d_inner_, d_inner_), state);
    }
    return stack(ys, 1);  // (B, L, Di)
  };
  Tensor y = run_dir(fwd_, false);
  if (opt_.bidirectional) y = mul(add(y, run_dir(bwd_, true)), 0.5);
  return out_proj_->forward(y);
}

}  // namespace ssm
