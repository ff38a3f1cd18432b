// RequestParser: decodes and validates one 28-byte NBD request header, with no I/O.
//
// For every header it returns a verdict the connection acts on:
//   execute      - well formed; read `payload_length` bytes (writes) and run it.
//   reply_error  - answer with `error`; first read and drop `payload_length` bytes so the
//                  stream stays in step (a write to a read-only export still carries data).
//   disconnect   - NBD_CMD_DISC: finish in-flight requests, then close.
//   close        - the stream cannot be trusted (bad magic) or the client wants us to read
//                  more than we advertised: send `error` if non-zero, then close without
//                  reading any more.
//
// Invariants:
//  1. Validation happens here, before dispatch: a request that reaches the Volume lies inside
//     the export, has a non-zero length, respects the minimum block size, and carries only
//     flags that are valid for its command and were negotiated.
//  2. No request makes the connection read more than max(maximum block size,
//     max_drained_payload) bytes of payload: a write a little over the advertised maximum
//     is read and dropped (EINVAL), one beyond that closes the connection unread.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "nbd/handshake.h"
#include "nbd/wire.h"

namespace snapstore::nbd {

inline constexpr std::uint32_t max_drained_payload = 32u << 20;

struct Request {
  std::uint16_t flags = 0;
  std::uint16_t type = 0;
  std::uint64_t cookie = 0;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
};

struct ParsedRequest {
  enum class verdict { execute, reply_error, disconnect, close };
  verdict action = verdict::execute;
  Request request;
  std::uint32_t payload_length = 0;
  std::uint32_t error = err_none;
  std::string reason;  // human-readable, for error chunks and the log
};

struct ExportShape {
  std::uint64_t size = 0;
  bool read_only = false;
  bool structured_replies = false;
  bool has_meta_contexts = false;
  BlockSizes block_sizes;
};

class RequestParser {
 public:
  explicit RequestParser(ExportShape shape) : shape_(shape) {}
  ParsedRequest parse(std::span<const std::byte> header) const;  // header: 28 bytes

 private:
  ParsedRequest check(ParsedRequest p) const;
  std::uint16_t allowed_flags(std::uint16_t type) const;
  ExportShape shape_;
};

}  // namespace snapstore::nbd
