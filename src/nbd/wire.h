// The NBD wire format: magic numbers, option/command/flag values, and big-endian helpers.
//
// Everything on the wire is in network byte order (big-endian); this header is the only
// place that says so. Values follow doc/proto.md of the NetworkBlockDevice/nbd project.
// Nothing here does I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace snapstore::nbd {

// --- handshake -----------------------------------------------------------------------
inline constexpr std::uint64_t nbd_magic = 0x4e42444d41474943ull;      // "NBDMAGIC"
inline constexpr std::uint64_t ihaveopt_magic = 0x49484156454F5054ull;  // "IHAVEOPT"
inline constexpr std::uint64_t option_reply_magic = 0x0003e889045565a9ull;

inline constexpr std::uint16_t flag_fixed_newstyle = 1u << 0;
inline constexpr std::uint16_t flag_no_zeroes = 1u << 1;
inline constexpr std::uint32_t client_flag_fixed_newstyle = 1u << 0;
inline constexpr std::uint32_t client_flag_no_zeroes = 1u << 1;
inline constexpr std::uint32_t known_client_flags =
    client_flag_fixed_newstyle | client_flag_no_zeroes;

enum option : std::uint32_t {
  opt_export_name = 1,
  opt_abort = 2,
  opt_list = 3,
  opt_peek_export = 4,
  opt_starttls = 5,
  opt_info = 6,
  opt_go = 7,
  opt_structured_reply = 8,
  opt_list_meta_context = 9,
  opt_set_meta_context = 10,
  opt_extended_headers = 11,
};

inline constexpr std::uint32_t rep_error_bit = 1u << 31;
enum option_reply : std::uint32_t {
  rep_ack = 1,
  rep_server = 2,
  rep_info = 3,
  rep_meta_context = 4,
  rep_err_unsup = rep_error_bit | 1,
  rep_err_policy = rep_error_bit | 2,
  rep_err_invalid = rep_error_bit | 3,
  rep_err_platform = rep_error_bit | 4,
  rep_err_tls_reqd = rep_error_bit | 5,
  rep_err_unknown = rep_error_bit | 6,
  rep_err_shutdown = rep_error_bit | 7,
  rep_err_block_size_reqd = rep_error_bit | 8,
  rep_err_too_big = rep_error_bit | 9,
};

enum info_type : std::uint16_t {
  info_export = 0,
  info_name = 1,
  info_description = 2,
  info_block_size = 3,
};

// Transmission flags (sent with NBD_INFO_EXPORT / after NBD_OPT_EXPORT_NAME).
enum transmission_flag : std::uint16_t {
  tflag_has_flags = 1u << 0,
  tflag_read_only = 1u << 1,
  tflag_send_flush = 1u << 2,
  tflag_send_fua = 1u << 3,
  tflag_rotational = 1u << 4,
  tflag_send_trim = 1u << 5,
  tflag_send_write_zeroes = 1u << 6,
  tflag_send_df = 1u << 7,
  tflag_can_multi_conn = 1u << 8,
  tflag_send_resize = 1u << 9,
  tflag_send_cache = 1u << 10,
  tflag_send_fast_zero = 1u << 11,
};

// --- transmission --------------------------------------------------------------------
inline constexpr std::uint32_t request_magic = 0x25609513u;
inline constexpr std::uint32_t simple_reply_magic = 0x67446698u;
inline constexpr std::uint32_t structured_reply_magic = 0x668e33efu;
inline constexpr std::size_t request_header_size = 28;
inline constexpr std::size_t option_header_size = 16;

enum command : std::uint16_t {
  cmd_read = 0,
  cmd_write = 1,
  cmd_disc = 2,
  cmd_flush = 3,
  cmd_trim = 4,
  cmd_cache = 5,
  cmd_write_zeroes = 6,
  cmd_block_status = 7,
  cmd_resize = 8,
};

enum command_flag : std::uint16_t {
  cmd_flag_fua = 1u << 0,
  cmd_flag_no_hole = 1u << 1,
  cmd_flag_df = 1u << 2,
  cmd_flag_req_one = 1u << 3,
  cmd_flag_fast_zero = 1u << 4,
  cmd_flag_payload_len = 1u << 5,
};

inline constexpr std::uint16_t reply_flag_done = 1u << 0;
enum chunk_type : std::uint16_t {
  chunk_none = 0,
  chunk_offset_data = 1,
  chunk_offset_hole = 2,
  chunk_block_status = 5,
  chunk_error = (1u << 15) | 1,
  chunk_error_offset = (1u << 15) | 2,
};

// NBD error values (not the host's errno values, though equal on Linux).
enum error_code : std::uint32_t {
  err_none = 0,
  err_perm = 1,
  err_io = 5,
  err_nomem = 12,
  err_inval = 22,
  err_nospc = 28,
  err_overflow = 75,
  err_notsup = 95,
  err_shutdown = 108,
};

// --- big-endian helpers --------------------------------------------------------------
inline std::uint16_t load_be16(const std::byte* p) {
  return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) |
                                    std::to_integer<unsigned>(p[1]));
}
inline std::uint32_t load_be32(const std::byte* p) {
  return (std::uint32_t{load_be16(p)} << 16) | load_be16(p + 2);
}
inline std::uint64_t load_be64(const std::byte* p) {
  return (std::uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}

// Appends big-endian values and raw bytes to a byte vector.
class WireWriter {
 public:
  explicit WireWriter(std::vector<std::byte>& out) : out_(out) {}
  WireWriter& u16(std::uint16_t v);
  WireWriter& u32(std::uint32_t v);
  WireWriter& u64(std::uint64_t v);
  WireWriter& bytes(std::span<const std::byte> b);
  WireWriter& text(std::string_view s);
  WireWriter& zeroes(std::size_t n);

 private:
  std::vector<std::byte>& out_;
};

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace snapstore::nbd

namespace snapstore::nbd {

// Reads big-endian values from a byte span; every read is bounds-checked and a short
// read sets failed() instead of reading past the end.
class WireReader {
 public:
  explicit WireReader(std::span<const std::byte> in) : in_(in) {}
  bool u16(std::uint16_t& v);
  bool u32(std::uint32_t& v);
  bool text(std::size_t n, std::string& s);
  std::size_t remaining() const { return in_.size() - pos_; }
  bool failed() const { return failed_; }

 private:
  bool take(std::size_t n, const std::byte*& p);
  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace snapstore::nbd
