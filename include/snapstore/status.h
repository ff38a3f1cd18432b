// Status and Result<T>: errors as values on the data path.
//
// Every layer below the NBD server returns a Status (or a Result<T>) instead of throwing.
// The NBD layer turns a Status into an NBD error code in exactly one place
// (nbd/transmission.cpp, nbd_error_for). Exceptions are only used at start-up, in
// configuration and in command-line tools.
//
// Status is cheap to copy when ok (no allocation); the message is only built on error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace snapstore {

enum class errc : std::uint8_t {
  ok = 0,
  io_error,          // the backing device failed an I/O
  corruption,        // a checksum or structural check failed on every copy
  no_space,          // the pool (or the device) has no room for the write
  not_found,         // a name or key that does not exist
  invalid_argument,  // the caller asked for something malformed or out of range
  read_only,         // the target refuses writes (read-only export, sticky failure)
  not_supported,     // the operation exists but this backend cannot do it
  exists,            // a name that is already taken
  busy,              // the target is in use (e.g. attached clients)
};

std::string_view errc_name(errc code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool is_ok() const { return code_ == errc::ok; }
  explicit operator bool() const { return is_ok(); }
  errc code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const;

 private:
  errc code_ = errc::ok;
  std::string message_;
};

inline Status io_error(std::string m) { return {errc::io_error, std::move(m)}; }
inline Status corruption(std::string m) { return {errc::corruption, std::move(m)}; }
inline Status no_space(std::string m) { return {errc::no_space, std::move(m)}; }
inline Status not_found(std::string m) { return {errc::not_found, std::move(m)}; }
inline Status invalid_argument(std::string m) { return {errc::invalid_argument, std::move(m)}; }
inline Status read_only_error(std::string m) { return {errc::read_only, std::move(m)}; }
inline Status not_supported(std::string m) { return {errc::not_supported, std::move(m)}; }
inline Status already_exists(std::string m) { return {errc::exists, std::move(m)}; }
inline Status busy(std::string m) { return {errc::busy, std::move(m)}; }

// Builds an io_error Status from an errno value, naming the operation that failed.
Status errno_status(int err, std::string_view what);

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be ok

  bool is_ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status ok_status;
    return is_ok() ? ok_status : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace snapstore

// Returns early from the enclosing function when `expr` yields a non-ok Status.
#define SNAPSTORE_RETURN_IF_ERROR(expr)          \
  do {                                           \
    ::snapstore::Status _st = (expr);            \
    if (!_st.is_ok()) return _st;                \
  } while (0)
