/// @file result.hpp
/// `result<T>`: a value or a `std::error_code`, for calls that can fail without throwing.
#pragma once

#include <cassert>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace msgtrans {

/// Holds either a T or the error that prevented it. Accessing the value of an error
/// result is a programming mistake (asserted in debug builds).
template <class T>
class result {
 public:
  result(T value) : v_(std::move(value)) {}                 // NOLINT: implicit by design
  result(std::error_code ec) : v_(ec) { assert(ec); }       // NOLINT
  template <class E, class = std::enable_if_t<std::is_error_code_enum_v<E>>>
  result(E e) : result(std::error_code(e)) {}               // NOLINT

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(v_); }
  const T& value() const& { assert(has_value()); return std::get<0>(v_); }
  T&& value() && { assert(has_value()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error, or an empty error_code when there is a value.
  std::error_code error() const noexcept {
    return has_value() ? std::error_code{} : std::get<1>(v_);
  }

 private:
  std::variant<T, std::error_code> v_;
};

}  // namespace msgtrans
