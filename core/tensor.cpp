#include "core/tensor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "core/cuda/runtime.h"
#include "core/dispatch.h"
#include "core/strided.h"

namespace ssm {

std::uint64_t TensorImpl::next_uid() {
  static std::atomic<std::uint64_t> counter{1};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

namespace {

const TensorImpl& impl_of(const Tensor& t, const char* op) {
  SSM_CHECK(t.defined(), op, "tensor is undefined");
  return *t.impl();
}

// The range of storage elements [lo, hi) that a view touches.
std::pair<std::int64_t, std::int64_t> element_span(const Tensor& t) {
  std::int64_t lo = t.offset(), hi = t.offset();
  for (std::int64_t d = 0; d < t.dim(); ++d) {
    if (t.shape()[d] == 0) return {t.offset(), t.offset()};
    const std::int64_t ext = (t.shape()[d] - 1) * t.strides()[d];
    if (ext < 0)
      lo += ext;
    else
      hi += ext;
  }
  return {lo, hi + 1};
}

// Strided copy with dtype conversion between two CPU views of one shape.
void copy_cpu(const Tensor& dst, const void* dst_base, const Tensor& src, const void* src_base,
              std::int64_t dst_offset, std::int64_t src_offset) {
  dispatch_all(dst.dtype(), "copy", [&](auto dtag) {
    using D = typename decltype(dtag)::type;
    dispatch_all(src.dtype(), "copy", [&](auto stag) {
      using S = typename decltype(stag)::type;
      D* d = static_cast<D*>(const_cast<void*>(dst_base)) + dst_offset;
      const S* s = static_cast<const S*>(src_base) + src_offset;
      for_each_row<2>(dst.shape(), {dst.strides(), src.strides()}, true,
                      [&](const std::array<std::int64_t, 2>& off, std::int64_t n,
                          const std::array<std::int64_t, 2>& inc) {
                        D* dp = d + off[0];
                        const S* sp = s + off[1];
                        for (std::int64_t i = 0; i < n; ++i) {
                          dp[i * inc[0]] = convert_element<D>(sp[i * inc[1]]);
                        }
                      });
    });
  });
}

// Host bytes holding the span of a CUDA view, and the element offset of the
// view within that host buffer.
struct HostSpan {
  std::vector<unsigned char> bytes;
  std::int64_t lo = 0;
};

HostSpan fetch_span(const Tensor& t) {
  const auto [lo, hi] = element_span(t);
  const std::size_t es = dtype_size(t.dtype());
  HostSpan h;
  h.lo = lo;
  h.bytes.resize(static_cast<std::size_t>(hi - lo) * es);
  copy_bytes(h.bytes.data(), Device::cpu(),
             static_cast<const unsigned char*>(t.storage()->data()) + lo * es, t.device(),
             h.bytes.size());
  return h;
}

}  // namespace

// -------------------------------------------------------------- factories

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (auto s : shape) {
    SSM_CHECK(s >= 0, "Tensor::empty", "negative size in shape ", shape_str(shape));
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  impl->device = device;
  impl->storage = std::make_shared<Storage>(
      static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype, Device device) {
  return full({}, value, dtype, device);
}

Tensor Tensor::arange(std::int64_t n, DType dtype, Device device) {
  SSM_CHECK(n >= 0, "arange", "expected n >= 0, got ", n);
  Tensor t = empty({n}, dtype);
  for (std::int64_t i = 0; i < n; ++i) detail::set_element_from_double(t, i, double(i));
  return t.to(device);
}

// -------------------------------------------------------------- metadata

const Shape& Tensor::shape() const { return impl_of(*this, "Tensor::shape").shape; }
const Shape& Tensor::strides() const { return impl_of(*this, "Tensor::strides").strides; }
std::int64_t Tensor::offset() const { return impl_of(*this, "Tensor::offset").offset; }
DType Tensor::dtype() const { return impl_of(*this, "Tensor::dtype").dtype; }
Device Tensor::device() const { return impl_of(*this, "Tensor::device").device; }
const std::shared_ptr<Storage>& Tensor::storage() const {
  return impl_of(*this, "Tensor::storage").storage;
}

std::int64_t Tensor::size(std::int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

std::int64_t Tensor::numel() const { return shape_numel(shape()); }

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (std::int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] == 1) continue;
    if (strides()[d] != expected) return false;
    expected *= shape()[d];
  }
  return true;
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined";
  std::ostringstream os;
  os << shape_str(shape()) << ' ' << dtype_name(dtype()) << ' ' << device().str();
  return os.str();
}

void* Tensor::raw_data() const {
  const auto& i = impl_of(*this, "Tensor::raw_data");
  return static_cast<unsigned char*>(i.storage->data()) +
         i.offset * static_cast<std::int64_t>(dtype_size(i.dtype));
}

namespace detail {

double element_as_double(const Tensor& t, std::int64_t i) {
  return dispatch_all(t.dtype(), "element", [&](auto tag) -> double {
    using T = typename decltype(tag)::type;
    return convert_element<double>(static_cast<const T*>(t.raw_data())[i]);
  });
}

void set_element_from_double(const Tensor& t, std::int64_t i, double v) {
  dispatch_all(t.dtype(), "element", [&](auto tag) {
    using T = typename decltype(tag)::type;
    static_cast<T*>(t.raw_data())[i] = convert_element<T>(v);
  });
}

}  // namespace detail

// -------------------------------------------------------------- raw views

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides,
                 std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  impl->device = base.device();
  return Tensor(std::move(impl));
}

namespace {

// Resolves one -1 in a requested shape against numel.
Shape infer_shape(const Shape& requested, std::int64_t numel, const char* op, const Shape& from) {
  Shape shape = requested;
  std::int64_t known = 1, infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      SSM_CHECK(infer < 0, op, "only one dimension can be -1, got ", shape_str(requested));
      infer = static_cast<std::int64_t>(i);
    } else {
      SSM_CHECK(shape[i] >= 0, op, "invalid size in shape ", shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    SSM_CHECK(known > 0 && numel % known == 0, op, "cannot reshape ", shape_str(from), " into ",
              shape_str(requested));
    shape[static_cast<std::size_t>(infer)] = numel / known;
  }
  SSM_CHECK(shape_numel(shape) == numel, op, "cannot reshape ", shape_str(from), " (", numel,
            " elements) into ", shape_str(requested));
  return shape;
}

// Strides for viewing (shape, strides) as new_shape without a copy, or an
// empty optional-like flag when impossible (PyTorch's computeStride rule).
bool view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape, Shape& out) {
  out.assign(new_shape.size(), 0);
  if (shape_numel(shape) == 0 || shape.empty()) {
    out = contiguous_strides(new_shape);
    return true;
  }
  std::int64_t view_d = static_cast<std::int64_t>(new_shape.size()) - 1;
  std::int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  std::int64_t tensor_numel = 1, view_numel = 1;
  for (std::int64_t d = static_cast<std::int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  const Shape shape2 = infer_shape(requested, numel(), "view", shape());
  Shape strides2;
  SSM_CHECK(view_strides(shape(), strides(), shape2, strides2), "view", "cannot view ",
            shape_str(shape()), " with strides ", shape_str(strides()), " as ", shape_str(shape2),
            " without a copy (use reshape)");
  return make_view(*this, shape2, strides2, offset());
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape shape2 = infer_shape(requested, numel(), "reshape", shape());
  Shape strides2;
  if (view_strides(shape(), strides(), shape2, strides2)) {
    return make_view(*this, shape2, strides2, offset());
  }
  return contiguous().view(shape2);
}

Tensor Tensor::transpose(std::int64_t d0, std::int64_t d1) const {
  d0 = wrap_dim(d0, dim(), "transpose");
  d1 = wrap_dim(d1, dim(), "transpose");
  Shape s = shape(), st = strides();
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  return make_view(*this, s, st, offset());
}

Tensor Tensor::permute(const std::vector<std::int64_t>& dims) const {
  SSM_CHECK(static_cast<std::int64_t>(dims.size()) == dim(), "permute", "got ", dims.size(),
            " dims for a tensor of shape ", shape_str(shape()));
  Shape s(dims.size()), st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const std::int64_t d = wrap_dim(dims[i], dim(), "permute");
    SSM_CHECK(!seen[d], "permute", "dim ", d, " repeated in ", shape_str(dims));
    seen[d] = true;
    s[i] = shape()[d];
    st[i] = strides()[d];
  }
  return make_view(*this, s, st, offset());
}

Tensor Tensor::narrow(std::int64_t d, std::int64_t start, std::int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  if (start < 0) start += shape()[d];
  SSM_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d], "narrow", "range [", start,
            ", ", start + length, ") out of bounds for dim ", d, " of ", shape_str(shape()));
  Shape s = shape();
  s[d] = length;
  return make_view(*this, s, strides(), offset() + start * strides()[d]);
}

Tensor Tensor::select(std::int64_t d, std::int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  if (index < 0) index += shape()[d];
  SSM_CHECK(index >= 0 && index < shape()[d], "select", "index ", index, " out of bounds for dim ",
            d, " of ", shape_str(shape()));
  Shape s = shape(), st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return make_view(*this, s, st, offset() + index * strides()[d]);
}

Tensor Tensor::expand(const Shape& target) const {
  SSM_CHECK(target.size() >= shape().size(), "expand", "cannot expand ", shape_str(shape()),
            " to fewer dims ", shape_str(target));
  const std::size_t lead = target.size() - shape().size();
  Shape st(target.size(), 0);
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (i < lead) continue;
    const std::int64_t s = shape()[i - lead];
    SSM_CHECK(s == target[i] || s == 1, "expand", "cannot expand ", shape_str(shape()), " to ",
              shape_str(target));
    st[i] = s == target[i] ? strides()[i - lead] : 0;
  }
  return make_view(*this, target, st, offset());
}

Tensor Tensor::flip(std::int64_t d) const {
  d = wrap_dim(d, dim(), "flip");
  Shape st = strides();
  const std::int64_t n = shape()[d];
  const std::int64_t off = n > 0 ? offset() + (n - 1) * st[d] : offset();
  st[d] = -st[d];
  return make_view(*this, shape(), st, off);
}

Tensor Tensor::unsqueeze(std::int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape(), st = strides();
  const std::int64_t stride = d < dim() ? strides()[d] * shape()[d] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  return make_view(*this, s, st, offset());
}

Tensor Tensor::squeeze(std::int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  SSM_CHECK(shape()[d] == 1, "squeeze", "dim ", d, " of ", shape_str(shape()), " has size ",
            shape()[d], ", expected 1");
  return select(d, 0);
}

// -------------------------------------------------------------- copies

void Tensor::copy_(const Tensor& src) const {
  SSM_CHECK(defined() && src.defined(), "copy_", "tensor is undefined");
  SSM_CHECK(shape() == src.shape(), "copy_", "shape mismatch: destination ", desc(), ", source ",
            src.desc());
  if (numel() == 0) return;
  // Fast path: same dtype, both contiguous: one byte copy, any devices.
  if (dtype() == src.dtype() && is_contiguous() && src.is_contiguous()) {
    copy_bytes(raw_data(), device(), src.raw_data(), src.device(),
               static_cast<std::size_t>(numel()) * dtype_size(dtype()));
    return;
  }
  if (device().is_cpu() && src.device().is_cpu()) {
    copy_cpu(*this, storage()->data(), src, src.storage()->data(), offset(), src.offset());
    return;
  }
  // One CUDA device: the strided-copy kernel (converting the dtype).
  if (device().is_cuda() && src.device() == device()) {
    cuda::strided_copy(raw_data(), dtype(), shape(), strides(), src.raw_data(), src.dtype(),
                       src.strides(), device().index);
    return;
  }
  // Host to device: one contiguous host buffer, one transfer, then the kernel.
  if (device().is_cuda() && src.device().is_cpu()) {
    copy_(src.contiguous().to(device()));
    return;
  }
  // Device to host: the kernel makes the view contiguous, then one transfer.
  if (device().is_cpu() && src.device().is_cuda()) {
    copy_(src.contiguous().to(Device::cpu()));
    return;
  }
  // Between two GPUs: stage through host memory.
  HostSpan s;
  const void* src_base;
  std::int64_t src_off;
  if (src.device().is_cpu()) {
    src_base = src.storage()->data();
    src_off = src.offset();
  } else {
    s = fetch_span(src);
    src_base = s.bytes.data();
    src_off = src.offset() - s.lo;
  }
  if (device().is_cpu()) {
    copy_cpu(*this, storage()->data(), src, src_base, offset(), src_off);
    return;
  }
  HostSpan d = fetch_span(*this);
  copy_cpu(*this, d.bytes.data(), src, src_base, offset() - d.lo, src_off);
  const std::size_t es = dtype_size(dtype());
  copy_bytes(static_cast<unsigned char*>(storage()->data()) + d.lo * es, device(), d.bytes.data(),
             Device::cpu(), d.bytes.size());
}

void Tensor::fill_(double value) const {
  SSM_CHECK(defined(), "fill_", "tensor is undefined");
  if (numel() == 0) return;
  if (device().is_cpu()) {
    dispatch_all(dtype(), "fill_", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T v = convert_element<T>(value);
      T* base = static_cast<T*>(storage()->data()) + offset();
      for_each_row<1>(shape(), {strides()}, true,
                      [&](const std::array<std::int64_t, 1>& off, std::int64_t n,
                          const std::array<std::int64_t, 1>& inc) {
                        T* p = base + off[0];
                        for (std::int64_t i = 0; i < n; ++i) p[i * inc[0]] = v;
                      });
    });
    return;
  }
  dispatch_all(dtype(), "fill_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T v = convert_element<T>(value);
    cuda::strided_fill(raw_data(), dtype(), shape(), strides(), &v, device().index);
  });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  Tensor out = empty(shape(), dtype(), target);
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (dtype() == target) return *this;
  Tensor out = empty(shape(), target, device());
  out.copy_(*this);
  return out;
}

// -------------------------------------------------------------- autograd state

bool Tensor::requires_grad() const { return defined() && impl_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  auto& i = const_cast<TensorImpl&>(impl_of(*this, "requires_grad"));
  SSM_CHECK(!on || is_floating(i.dtype), "requires_grad",
            "only floating-point tensors can require grad, got ", dtype_name(i.dtype));
  SSM_CHECK(i.is_leaf, "requires_grad",
            "can only be set on leaf tensors (this one is the output of an op)");
  i.requires_grad = on;
  return *this;
}

bool Tensor::is_leaf() const { return impl_of(*this, "is_leaf").is_leaf; }

Tensor Tensor::grad() const {
  const auto& g = impl_of(*this, "grad").grad;
  return g ? Tensor(g) : Tensor();
}

void Tensor::set_grad(const Tensor& grad) const {
  auto& i = const_cast<TensorImpl&>(impl_of(*this, "set_grad"));
  if (grad.defined()) {
    SSM_CHECK(grad.shape() == i.shape && grad.dtype() == i.dtype && grad.device() == i.device,
              "set_grad", "gradient ", grad.desc(), " does not match tensor ", desc());
  }
  i.grad = grad.impl_ptr();
}

void Tensor::zero_grad() const {
  const_cast<TensorImpl&>(impl_of(*this, "zero_grad")).grad.reset();
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

// -------------------------------------------------------------- printing

std::string Tensor::str(std::int64_t max_items) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype())
     << ", device=" << device().str();
  if (requires_grad()) os << ", requires_grad";
  os << ")";
  if (numel() == 0) return os.str();
  const Tensor host = to(Device::cpu()).contiguous();
  const std::int64_t n = numel();
  os << " [";
  os << std::setprecision(6);
  const std::int64_t head = std::min(n, max_items);
  for (std::int64_t i = 0; i < head; ++i) {
    if (i) os << ", ";
    os << detail::element_as_double(host, i);
  }
  if (n > head) {
    os << ", ...";
    if (n > head + 1) os << ", " << detail::element_as_double(host, n - 1);
  }
  os << "]";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  SSM_CHECK(a.device() == b.device(), op, "tensors on different devices: ", a.desc(), " and ",
            b.desc());
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  SSM_CHECK(a.dtype() == b.dtype(), op, "dtypes differ: ", a.desc(), " and ", b.desc());
}

}  // namespace ssm
