// ArgReader: typed, checked access to a control request's "args" object.
//
// A handler asks for each argument it knows; the first problem (missing, wrong type, bad
// value) is remembered and later reads return a fallback. finish() then reports that
// problem, or an argument the handler never asked for (a typo such as "froce" must not be
// ignored silently). A handler calls finish() before it changes anything, so a request
// with bad arguments changes nothing.
//
// Pure: no I/O, usable from any thread (one reader per request).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "snapstore/status.h"

namespace snapstore {

class ArgReader {
 public:
  explicit ArgReader(const nlohmann::json& args) : args_(args) {}

  // A required non-empty string.
  std::string string(std::string_view key);
  // An optional boolean.
  bool flag(std::string_view key, bool fallback = false);
  // A required size in bytes: a positive integer, or a string such as "10G" (size_parse.h).
  std::uint64_t size(std::string_view key);
  // An optional non-negative integer no larger than `max`.
  std::uint64_t number(std::string_view key, std::uint64_t fallback,
                       std::uint64_t max = UINT64_MAX);

  // The first problem found, else invalid_argument naming an unknown argument, else ok.
  Status finish() const;

 private:
  const nlohmann::json* find(std::string_view key);
  void fail(std::string message);

  const nlohmann::json& args_;
  std::set<std::string, std::less<>> known_;
  Status error_;
};

}  // namespace snapstore
