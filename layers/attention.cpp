#include "layers/attention.h"

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.h"

namespace ssm {

namespace {

// (B or 1, 1, L, L) in dtype: -inf where a score is masked (key s >=
// lengths[b], or s > t when causal), else 0; undefined when nothing is
// masked (not causal and every sequence full), which skips the add.
template <class T>
Tensor attention_bias(std::int64_t B, std::int64_t L, bool causal, const Tensor& lengths,
                      DType dtype, Device device) {
  std::vector<std::int64_t> len;
  bool padded = false;
  if (lengths.defined()) {
    len = lengths.to(Device::cpu()).to(DType::Int64).to_vector<std::int64_t>();
    for (const std::int64_t n : len) padded = padded || n < L;
  }
  if (!causal && !padded) return Tensor();
  const std::int64_t nb = padded ? B : 1;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  std::vector<T> m(static_cast<std::size_t>(nb * L * L), T(0));
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::int64_t n = padded ? len[static_cast<std::size_t>(b)] : L;
    for (std::int64_t t = 0; t < L; ++t) {
      T* row = m.data() + (b * L + t) * L;
      for (std::int64_t s = 0; s < L; ++s) {
        if (s >= n || (causal && s > t)) row[s] = neg_inf;
      }
    }
  }
  return Tensor::from_vector(m, {nb, 1, L, L}, dtype).to(device);
}

}  // namespace

Tensor multi_head_attention(const Tensor& x, const Tensor& in_w, const Tensor& in_b,
                            const Tensor& out_w, const Tensor& out_b,
                            const AttentionOptions& options, const Tensor& lengths, bool training,
                            Generator* dropout_gen) {
  const char* op = "multi_head_attention";
  SSM_CHECK(x.defined() && x.dim() == 3, op, "expected x (B, L, E), got ",
            x.defined() ? x.desc() : std::string("undefined"));
  const std::int64_t B = x.size(0), L = x.size(1), E = x.size(2), H = options.num_heads;
  SSM_CHECK(H >= 1 && E % H == 0, op, "num_heads (", H, ") must divide the embedding dim (", E,
            ")");
  SSM_CHECK(in_w.defined() && in_w.dim() == 2 && in_w.size(0) == 3 * E && in_w.size(1) == E, op,
            "expected in_proj_weight (", 3 * E, ", ", E, "), got ", in_w.desc());
  SSM_CHECK(out_w.defined() && out_w.dim() == 2 && out_w.size(0) == E && out_w.size(1) == E, op,
            "expected out_proj.weight (", E, ", ", E, "), got ", out_w.desc());
  if (lengths.defined()) {
    SSM_CHECK(lengths.dim() == 1 && lengths.size(0) == B, op, "expected lengths (", B, "), got ",
              lengths.desc());
    const auto len = lengths.to(Device::cpu()).to(DType::Int64).to_vector<std::int64_t>();
    for (std::size_t b = 0; b < len.size(); ++b) {
      SSM_CHECK(len[b] >= 1 && len[b] <= L, op, "lengths[", b, "] = ", len[b], " lies outside [1, ",
                L, "]");
    }
  }
  const std::int64_t dh = E / H;
  const Tensor qkv = linear(x, in_w, in_b);  // (B, L, 3E)
  auto heads = [&](std::int64_t part) {      // -> (B, H, L, dh)
    return permute(reshape(narrow(qkv, 2, part * E, E), {B, L, H, dh}), {0, 2, 1, 3});
  };
  const Tensor q = heads(0), k = heads(1), v = heads(2);
  Tensor scores = mul(matmul(q, transpose(k, 2, 3)),
                      1.0 / std::sqrt(static_cast<double>(dh)));  // (B, H, L, L)
  const Tensor bias =
      x.dtype() == DType::Float64
          ? attention_bias<double>(B, L, options.causal, lengths, x.dtype(), x.device())
          : attention_bias<float>(B, L, options.causal, lengths, x.dtype(), x.device());
  if (bias.defined()) scores = add(scores, bias);  // -inf at masked scores
  Tensor weights = softmax(scores, -1);            // (B, H, L, L)
  if (training && options.dropout > 0.0) {
    SSM_CHECK(dropout_gen != nullptr, op, "attention dropout ", options.dropout,
              " needs a dropout generator");
    weights = dropout(weights, options.dropout, true, *dropout_gen);
  }
  const Tensor ctx =
      reshape(contiguous(permute(matmul(weights, v), {0, 2, 1, 3})), {B, L, E});  // (B, L, E)
  return linear(ctx, out_w, out_b);
}

MultiheadAttention::MultiheadAttention(std::int64_t embed_dim, const AttentionOptions& options,
                                       Generator& gen, DType dtype, Generator* dropout_gen)
    : embed_dim_(embed_dim),
      options_(options),
      dropout_gen_(dropout_gen),
      in_proj_weight_(
          register_parameter("in_proj_weight", Tensor::empty({3 * embed_dim, embed_dim}, dtype))),
      in_proj_bias_(
          register_parameter("in_proj_bias", Tensor::zeros({3 * embed_dim}, dtype), {"no_decay"})) {
  const char* op = "MultiheadAttention";
  SSM_CHECK(embed_dim >= 1, op, "embed_dim must be >= 1, got ", embed_dim);
  SSM_CHECK(options.num_heads >= 1 && embed_dim % options.num_heads == 0, op, "num_heads (",
            options.num_heads, ") must divide embed_dim (", embed_dim, ")");
  SSM_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, op, "dropout must lie in [0, 1), got ",
            options.dropout);
  SSM_CHECK(options.dropout == 0.0 || dropout_gen != nullptr, op, "dropout ", options.dropout,
            " needs a dropout generator");
  // xavier_uniform_ on (3E, E): U(-a, a), a = sqrt(6 / (fan_in + fan_out)).
  {
    NoGradGuard no_grad;
    const double a = std::sqrt(6.0 / static_cast<double>(embed_dim + 3 * embed_dim));
    uniform_(in_proj_weight_, -a, a, gen);
  }
  out_proj_ =
      register_module("out_proj", std::make_shared<Linear>(embed_dim, embed_dim, true, gen, dtype));
  {
    NoGradGuard no_grad;
    out_proj_->bias().fill_(0.0);
  }
}

Tensor MultiheadAttention::forward(const Tensor& x, const Tensor& lengths) const {
  return multi_head_attention(x, in_proj_weight_, in_proj_bias_, out_proj_->weight(),
                              out_proj_->bias(), options_, lengths, is_training(), dropout_gen_);
}

}  // namespace ssm
