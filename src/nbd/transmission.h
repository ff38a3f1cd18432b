// Transmission: runs one validated request against a Volume and encodes its reply.
//
// Pure with respect to sockets: input is a Request (already validated by RequestParser)
// and its payload; output is a Reply, the exact bytes to send. The connection decides
// when to send them.
//
// Invariants:
//  1. Status -> NBD error mapping happens only in nbd_error_for().
//  2. With structured replies, a READ is answered by structured chunks only (never a
//     simple reply); a successful read is one OFFSET_DATA or one OFFSET_HOLE chunk
//     (so DF is always honoured), flagged DONE.
//  3. A BLOCK_STATUS reply carries one chunk per selected metadata context; with REQ_ONE,
//     one descriptor each; descriptors never extend past the request. base:allocation
//     comes from Volume::block_status, x-snapstore:changed:NAME from changed_extents(NAME).
//     If any context fails, the whole reply is one error chunk (no partial chunks); a
//     changed context whose volume NAME no longer exists fails with EINVAL.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "nbd/handshake.h"
#include "nbd/request_parser.h"

namespace snapstore::nbd {

struct Reply {
  std::vector<std::byte> head;           // header and any small payload
  std::unique_ptr<std::byte[]> data;     // bulk read data, sent after head
  std::size_t data_length = 0;
  std::span<const std::byte> borrowed;   // bulk read data in the caller's read buffer
  std::span<const std::byte> body() const {
    return data ? std::span<const std::byte>(data.get(), data_length) : borrowed;
  }
};

std::uint32_t nbd_error_for(const Status& status);

struct TransmissionContext {
  Volume& volume;
  bool structured_replies = false;
  const std::vector<MetaContext>& meta_contexts;
  std::uint32_t max_extents = 8192;  // descriptors per BLOCK_STATUS chunk
  // Where a read lands: at least the request's length of the caller's buffer (the reply
  // borrows it until sent), or empty for a fresh buffer owned by the reply. Page-aligned
  // (and huge-page backed when large: page_aligned.h), like write payloads.
  std::span<std::byte> read_buffer = {};
};

Reply execute(const TransmissionContext& ctx, const Request& request,
              std::span<const std::byte> payload);

// An error reply for `request`, simple or structured as negotiated. at_offset: report the
// error at the request's offset (NBD_REPLY_TYPE_ERROR_OFFSET), only for requests that were
// valid and ran; a request refused by validation gets a plain error chunk, since its
// offset may not even lie inside the export.
Reply error_reply(const Request& request, bool structured, std::uint32_t error,
                  std::string_view message, bool at_offset = false);

}  // namespace snapstore::nbd
