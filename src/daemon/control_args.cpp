// ArgReader: see control_args.h.
#include "daemon/control_args.h"

#include "daemon/size_parse.h"

#include <optional>

namespace snapstore {

using json = nlohmann::json;

namespace {

// A non-negative JSON integer (parsed ones are unsigned; built ones may be signed).
std::optional<std::uint64_t> as_unsigned(const json& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
    return static_cast<std::uint64_t>(v.get<std::int64_t>());
  return std::nullopt;
}

}  // namespace

const json* ArgReader::find(std::string_view key) {
  known_.emplace(key);
  auto it = args_.find(key);
  return it == args_.end() ? nullptr : &*it;
}

void ArgReader::fail(std::string message) {
  if (error_.is_ok()) error_ = invalid_argument(std::move(message));
}

std::string ArgReader::string(std::string_view key) {
  const json* v = find(key);
  const std::string k(key);
  if (!v) {
    fail("missing argument \"" + k + "\"");
    return {};
  }
  if (!v->is_string() || v->get_ref<const std::string&>().empty()) {
    fail("argument \"" + k + "\" must be a non-empty string");
    return {};
  }
  return v->get<std::string>();
}

bool ArgReader::flag(std::string_view key, bool fallback) {
  const json* v = find(key);
  if (!v) return fallback;
  if (!v->is_boolean()) {
    fail("argument \"" + std::string(key) + "\" must be true or false");
    return fallback;
  }
  return v->get<bool>();
}

std::uint64_t ArgReader::size(std::string_view key) {
  const json* v = find(key);
  const std::string k(key);
  if (!v) {
    fail("missing argument \"" + k + "\"");
    return 0;
  }
  if (auto n = as_unsigned(*v); n && *n > 0) return *n;
  if (v->is_string()) {
    auto parsed = parse_size(v->get_ref<const std::string&>());
    if (parsed) return *parsed;
    fail("argument \"" + k + "\": " + parsed.status().message());
    return 0;
  }
  fail("argument \"" + k + "\" must be a positive number of bytes or a size such as \"10G\"");
  return 0;
}

std::uint64_t ArgReader::number(std::string_view key, std::uint64_t fallback,
                                std::uint64_t max) {
  const json* v = find(key);
  if (!v) return fallback;
  auto n = as_unsigned(*v);
  if (!n || *n > max) {
    fail("argument \"" + std::string(key) + "\" must be an integer from 0 to " +
         std::to_string(max));
    return fallback;
  }
  return *n;
}

Status ArgReader::finish() const {
  if (!error_.is_ok()) return error_;
  for (const auto& [key, value] : args_.items())
    if (!known_.contains(key)) return invalid_argument("unknown argument \"" + key + "\"");
  return Status::ok();
}

}  // namespace snapstore
