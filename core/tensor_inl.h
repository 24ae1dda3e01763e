#pragma once
// Template members of Tensor.
#include "core/tensor.h"

namespace ssm {

namespace detail {
double element_as_double(const Tensor& contiguous_cpu, std::int64_t i);
void set_element_from_double(const Tensor& contiguous_cpu, std::int64_t i, double v);
}  // namespace detail

template <class T>
T* Tensor::data() const {
  SSM_CHECK(defined(), "Tensor::data", "tensor is undefined");
  SSM_CHECK(dtype() == dtype_of<T>(), "Tensor::data", "tensor is ", dtype_name(dtype()),
            ", asked for ", dtype_name(dtype_of<T>()));
  return static_cast<T*>(raw_data());
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, DType dtype) {
  SSM_CHECK(static_cast<std::int64_t>(values.size()) == shape_numel(shape), "from_vector",
            values.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype);
  for (std::size_t i = 0; i < values.size(); ++i) {
    detail::set_element_from_double(t, static_cast<std::int64_t>(i),
                                    static_cast<double>(values[i]));
  }
  return t;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = to(Device::cpu()).contiguous();
  std::vector<T> out(static_cast<std::size_t>(host.numel()));
  if (host.dtype() == dtype_of<T>()) {
    const T* p = host.data<T>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else {
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i] = static_cast<T>(detail::element_as_double(host, static_cast<std::int64_t>(i)));
    }
  }
  return out;
}

template <class T>
T Tensor::item() const {
  SSM_CHECK(defined() && numel() == 1, "item", "expected a one-element tensor, got ",
            defined() ? desc() : std::string("undefined"));
  return to_vector<T>()[0];
}

}  // namespace ssm
