// Parsing of human sizes ("16G", "512MiB", "4096") and "HOST:PORT" addresses for the
// command line and config file. Pure functions; errors are Status values with the
// offending text quoted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "snapstore/status.h"

namespace snapstore {

// Accepts a decimal number with an optional binary suffix: K, M, G, T, P (also KiB, KB, k...).
// Rejects zero, negative numbers, fractions, unknown suffixes and overflow.
Result<std::uint64_t> parse_size(std::string_view text);
std::string format_size(std::uint64_t bytes);

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};
// "127.0.0.1:10809", "[::1]:10809", "localhost:10809". Port 0 means "pick a free port".
Result<HostPort> parse_host_port(std::string_view text);

}  // namespace snapstore
