#pragma once
// Tensor: a view (shape, strides, offset) of a shared Storage, with a dtype
// and a device. Copying a Tensor copies the handle, not the data.
//
// The view methods here (view, reshape, transpose, permute, narrow, expand,
// flip) and contiguous() are raw: they record nothing on the autograd tape.
// Differentiable code calls the free functions of autograd/ops.h (ssm::reshape,
// ssm::transpose, ...), which record their backward.
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace ssm {

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // undefined tensor
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ------------------------------------------------------------ factories
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::Float32, Device device = Device::cpu());
  // 0, 1, ..., n-1
  static Tensor arange(std::int64_t n, DType dtype = DType::Int64, Device device = Device::cpu());
  // Copies values (converted to dtype) into a new CPU tensor of the given shape.
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                            DType dtype = dtype_of<T>());

  // ------------------------------------------------------------ metadata
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  std::int64_t offset() const;
  std::int64_t dim() const { return static_cast<std::int64_t>(shape().size()); }
  std::int64_t size(std::int64_t d) const;  // negative d counts from the end
  std::int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  // A short description for error messages: "(2, 3) float32 cpu".
  std::string desc() const;

  // ------------------------------------------------------------ data access
  // Pointer to element 0 of this view (storage base + offset). Checks dtype.
  template <class T>
  T* data() const;
  void* raw_data() const;  // untyped element 0
  // The value of a one-element tensor, converted to T (copies from the GPU).
  template <class T>
  T item() const;
  // All values in row-major order, converted to T, on the host.
  template <class T>
  std::vector<T> to_vector() const;

  // ------------------------------------------------------------ raw views
  Tensor view(const Shape& shape) const;     // needs compatible strides; -1 infers
  Tensor reshape(const Shape& shape) const;  // view when possible, else copy
  Tensor transpose(std::int64_t d0, std::int64_t d1) const;
  Tensor permute(const std::vector<std::int64_t>& dims) const;
  Tensor narrow(std::int64_t dim, std::int64_t start, std::int64_t length) const;
  Tensor select(std::int64_t dim, std::int64_t index) const;  // removes dim
  Tensor expand(const Shape& shape) const;                    // broadcast with stride 0
  Tensor flip(std::int64_t dim) const;                        // negative stride
  Tensor unsqueeze(std::int64_t dim) const;
  Tensor squeeze(std::int64_t dim) const;

  // ------------------------------------------------------------ copies
  Tensor contiguous() const;  // this when already contiguous
  Tensor clone() const;       // always a new contiguous tensor
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  // Copies src (same shape, any dtype/device, any strides) into this view.
  void copy_(const Tensor& src) const;
  void fill_(double value) const;
  void zero_() const { fill_(0.0); }

  // ------------------------------------------------------------ autograd state
  // The tape lives in autograd/; the tensor only carries its flags and .grad.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const;
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  void zero_grad() const;  // drops .grad
  // A new handle to the same data that does not require grad.
  Tensor detach() const;

  std::string str(std::int64_t max_items = 8) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  std::int64_t offset = 0;
  DType dtype = DType::Float32;
  Device device;
  // Autograd state: flags and accumulated gradient only.
  bool requires_grad = false;
  bool is_leaf = true;
  std::shared_ptr<TensorImpl> grad;
  // A process-unique id: the tape keys gradients by it, so a freed tensor's
  // address being reused can never alias two tensors.
  std::uint64_t uid = next_uid();

  static std::uint64_t next_uid();
};

// A tensor that views `storage` with the given geometry (no copy).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, std::int64_t offset);

// Throws "[op] expected <what>" unless all tensors are on the same device.
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_same_dtype(const char* op, const Tensor& a, const Tensor& b);

}  // namespace ssm

#include "core/tensor_inl.h"
