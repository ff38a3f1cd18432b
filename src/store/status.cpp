// Names and formatting for Status.
#include <cstring>

#include "snapstore/status.h"

namespace snapstore {

std::string_view errc_name(errc code) {
  switch (code) {
    case errc::ok: return "ok";
    case errc::io_error: return "I/O error";
    case errc::corruption: return "corruption";
    case errc::no_space: return "no space";
    case errc::not_found: return "not found";
    case errc::invalid_argument: return "invalid argument";
    case errc::read_only: return "read-only";
    case errc::not_supported: return "not supported";
    case errc::exists: return "already exists";
    case errc::busy: return "busy";
  }
  return "unknown error";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  std::string s(errc_name(code_));
  if (!message_.empty()) s += ": " + message_;
  return s;
}

Status errno_status(int err, std::string_view what) {
  errc code = errc::io_error;
  if (err == ENOSPC || err == EDQUOT) code = errc::no_space;
  if (err == EROFS || err == EPERM || err == EACCES) code = errc::read_only;
  if (err == EOPNOTSUPP) code = errc::not_supported;
  if (err == EINVAL) code = errc::invalid_argument;
  return {code, std::string(what) + ": " + std::strerror(err)};
}

}  // namespace snapstore
