// Request header decoding and validation. See request_parser.h for the verdicts.
#include "nbd/request_parser.h"

#include <algorithm>

namespace snapstore::nbd {

namespace {

ParsedRequest with_error(ParsedRequest p, std::uint32_t error, std::string reason) {
  p.action = ParsedRequest::verdict::reply_error;
  p.error = error;
  p.reason = std::move(reason);
  return p;
}

// proto.md, "Block size constraints": the maximum applies to READ, WRITE, CACHE and
// WRITE_ZEROES without FAST_ZERO; TRIM, BLOCK_STATUS and fast zeroing may be longer.
bool limited_by_maximum(const Request& r) {
  switch (r.type) {
    case cmd_read:
    case cmd_write:
    case cmd_cache: return true;
    case cmd_write_zeroes: return !(r.flags & cmd_flag_fast_zero);
    default: return false;
  }
}

bool writes_data(std::uint16_t type) {
  return type == cmd_write || type == cmd_trim || type == cmd_write_zeroes;
}

}  // namespace

std::uint16_t RequestParser::allowed_flags(std::uint16_t type) const {
  std::uint16_t allowed = cmd_flag_fua;  // valid on every command once SEND_FUA is sent
  if (type == cmd_read && shape_.structured_replies) allowed |= cmd_flag_df;
  if (type == cmd_write_zeroes) allowed |= cmd_flag_no_hole | cmd_flag_fast_zero;
  if (type == cmd_block_status) allowed |= cmd_flag_req_one;
  return allowed;
}

ParsedRequest RequestParser::parse(std::span<const std::byte> header) const {
  ParsedRequest p;
  if (header.size() != request_header_size || load_be32(header.data()) != request_magic) {
    p.action = ParsedRequest::verdict::close;
    p.reason = "bad request magic";
    return p;
  }
  Request& r = p.request;
  r.flags = load_be16(header.data() + 4);
  r.type = load_be16(header.data() + 6);
  r.cookie = load_be64(header.data() + 8);
  r.offset = load_be64(header.data() + 16);
  r.length = load_be32(header.data() + 24);
  if (r.type == cmd_write) p.payload_length = r.length;
  return check(std::move(p));
}

ParsedRequest RequestParser::check(ParsedRequest p) const {
  const Request& r = p.request;
  const BlockSizes& bs = shape_.block_sizes;
  if (r.type == cmd_write && r.length > std::max(bs.maximum, max_drained_payload)) {
    p.action = ParsedRequest::verdict::close;
    p.error = err_inval;
    p.payload_length = 0;
    p.reason = "write payload larger than the advertised maximum block size";
    return p;
  }
  switch (r.type) {
    case cmd_disc: p.action = ParsedRequest::verdict::disconnect; return p;
    case cmd_read: case cmd_write: case cmd_flush: case cmd_trim:
    case cmd_cache: case cmd_write_zeroes: case cmd_block_status: break;
    default: return with_error(std::move(p), err_inval, "unknown command");
  }
  if (r.flags & ~allowed_flags(r.type))
    return with_error(std::move(p), err_inval, "flag not valid for this command");
  if (r.type == cmd_flush) {
    if (r.offset != 0 || r.length != 0)
      return with_error(std::move(p), err_inval, "flush offset and length must be zero");
    return p;
  }
  if (r.length == 0) return with_error(std::move(p), err_inval, "zero-length request");
  if (r.type == cmd_block_status && !shape_.has_meta_contexts)
    return with_error(std::move(p), err_inval, "no metadata context was negotiated");
  if (writes_data(r.type) && shape_.read_only)
    return with_error(std::move(p), err_perm, "export is read-only");
  const std::uint64_t end = r.offset + r.length;
  if (end < r.offset || end > shape_.size) {
    // proto.md: ENOSPC for writes past the end, EINVAL for reads and trims.
    const bool write = r.type == cmd_write || r.type == cmd_write_zeroes;
    return with_error(std::move(p), write ? err_nospc : err_inval,
                      "request extends beyond the end of the export");
  }
  if ((r.offset % bs.minimum) != 0 || (r.length % bs.minimum) != 0)
    return with_error(std::move(p), err_inval, "request not aligned to the minimum block size");
  if (r.length > bs.maximum && limited_by_maximum(r)) {
    const bool df_read = r.type == cmd_read && (r.flags & cmd_flag_df);
    return with_error(std::move(p), df_read ? err_overflow : err_inval,
                      "request larger than the advertised maximum block size");
  }
  return p;
}

}  // namespace snapstore::nbd
