// Support for the integration tests: bounded polling, temporary directories, test data,
// libnbd handles, and raw sockets for clients that misbehave on purpose.
//
// Every wait in here is bounded; nothing sleeps for a fixed time where it could poll.
#pragma once

#include <libnbd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace snapstore::integration {

using namespace std::chrono_literals;

// --- polling -------------------------------------------------------------------------

// Calls `pred` every few milliseconds until it is true or `timeout` passes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
}

// --- temporary directories -----------------------------------------------------------

// A private directory under /tmp (mode 0700), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// --- data ----------------------------------------------------------------------------

// Deterministic pseudo-random bytes; different seeds give different contents.
std::vector<char> pattern(std::size_t size, std::uint64_t seed);
bool all_zero(const char* p, std::size_t n);
// `size` bytes of a file at `offset` (fewer if the file is shorter).
std::vector<char> read_file_range(const std::filesystem::path& path, std::uint64_t offset,
                                  std::size_t size);

// --- libnbd --------------------------------------------------------------------------

struct NbdClose {
  void operator()(nbd_handle* h) const { nbd_close(h); }
};
using NbdHandle = std::unique_ptr<nbd_handle, NbdClose>;

struct ConnectOptions {
  std::string export_name = "origin";
  bool structured_replies = true;
  bool meta_context = true;  // ask for base:allocation
  bool strict = true;        // false: nbd_set_strict_mode(h, 0), so bad requests reach the server
  bool full_info = false;
  bool opt_mode = false;  // stop in negotiation (nbd_set_opt_mode)
};

// libnbd's last error message on this thread.
std::string nbd_error_text();

// A handle with `options` applied, not yet connected.
NbdHandle make_handle(const ConnectOptions& options = {});
// Connected handles; on failure they return null and record a test failure with libnbd's error.
NbdHandle connect_unix(const std::filesystem::path& socket, const ConnectOptions& options = {});
NbdHandle connect_tcp(std::uint16_t port, const ConnectOptions& options = {});

// The same with every wait bounded: for tests where the server might never answer.
NbdHandle connect_unix_within(const std::filesystem::path& socket,
                              std::chrono::milliseconds timeout,
                              const ConnectOptions& options = {});
// Writes `size` bytes of pattern(seed) at `offset`, reads them back and compares, with
// aio commands and a bounded wait. Records a test failure and returns false otherwise.
bool write_read_within(nbd_handle* h, std::uint64_t offset, std::uint64_t seed,
                       std::chrono::milliseconds timeout = 10s, std::size_t size = 4096);

// One base:allocation descriptor.
struct ExtentEntry {
  std::uint32_t length = 0;
  std::uint32_t flags = 0;
  bool operator==(const ExtentEntry&) const = default;
};
inline constexpr std::uint32_t hole_zero = LIBNBD_STATE_HOLE | LIBNBD_STATE_ZERO;

// nbd_block_status for base:allocation; nullopt (and errno in *err) when the call fails.
std::optional<std::vector<ExtentEntry>> block_status(nbd_handle* h, std::uint64_t count,
                                                     std::uint64_t offset, std::uint32_t flags = 0,
                                                     int* err = nullptr);

// Runs the handle's state machine until no command is in flight, or fails after `timeout`.
bool drain(nbd_handle* h, std::chrono::milliseconds timeout = 30s);

// --- raw sockets ---------------------------------------------------------------------

// A client socket that the test drives byte by byte.
class RawSocket {
 public:
  static RawSocket connect_unix(const std::filesystem::path& path);
  RawSocket() = default;
  RawSocket(RawSocket&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), pending_(std::move(other.pending_)) {}
  RawSocket& operator=(RawSocket&& other) noexcept;
  ~RawSocket();

  bool is_open() const { return fd_ >= 0; }
  bool send_all(const void* data, std::size_t size);
  bool send_all(const std::vector<std::uint8_t>& bytes) {
    return send_all(bytes.data(), bytes.size());
  }
  // Exactly `size` bytes within `timeout`; false on EOF, error or timeout.
  bool recv_exact(void* data, std::size_t size, std::chrono::milliseconds timeout = 5s);

  // Reads until the peer closes. `closed` is false if `timeout` passed first.
  struct Drain {
    bool closed = false;
    std::vector<std::uint8_t> bytes;
  };
  Drain read_until_closed(std::chrono::milliseconds timeout = 5s);
  // One line without its newline; nullopt on EOF, error or timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 5s);
  void close();

 private:
  explicit RawSocket(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::string pending_;  // bytes read past the last line
};

// Wire builders (big-endian) for raw clients.
void put_be16(std::vector<std::uint8_t>& out, std::uint16_t v);
void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v);
void put_be64(std::vector<std::uint8_t>& out, std::uint64_t v);
std::uint32_t get_be32(const std::uint8_t* p);
std::uint64_t get_be64(const std::uint8_t* p);

std::vector<std::uint8_t> option_header(std::uint32_t option, std::uint32_t length);
std::vector<std::uint8_t> request_header(std::uint16_t flags, std::uint16_t type,
                                         std::uint64_t cookie, std::uint64_t offset,
                                         std::uint32_t length, std::uint32_t magic = 0x25609513u);

// Reads the 18-byte greeting and checks its magic numbers and FIXED_NEWSTYLE.
bool raw_read_greeting(RawSocket& s);
// Greeting, client flags FIXED_NEWSTYLE|NO_ZEROES, then NBD_OPT_EXPORT_NAME `name`;
// true once the export size and transmission flags arrived (simple replies only).
bool raw_attach(RawSocket& s, std::string_view name);

// An option reply header: magic, option, type, length.
struct OptionReply {
  std::uint32_t option = 0;
  std::uint32_t type = 0;
  std::vector<std::uint8_t> data;
};
std::optional<OptionReply> raw_read_option_reply(RawSocket& s);

}  // namespace snapstore::integration
