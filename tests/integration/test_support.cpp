// Test support: temporary directories, data patterns, libnbd helpers and raw sockets.
#include "test_support.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace snapstore::integration {

namespace {

using clock = std::chrono::steady_clock;

int remaining_ms(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  return static_cast<int>(std::max<std::int64_t>(0, left.count()));
}

// Waits until `fd` is readable or the deadline passes; true if readable.
bool wait_readable(int fd, clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

// --- temporary directories -----------------------------------------------------------

TempDir::TempDir() {
  char name[] = "/tmp/snapstore-integ-XXXXXX";
  if (::mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = name;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

// --- data ----------------------------------------------------------------------------

std::vector<char> pattern(std::size_t size, std::uint64_t seed) {
  std::vector<char> out(size);
  std::uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x >> 24);
  }
  return out;
}

bool all_zero(const char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != 0) return false;
  return true;
}

std::vector<char> read_file_range(const std::filesystem::path& path, std::uint64_t offset,
                                  std::size_t size) {
  std::vector<char> out(size);
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(out.data(), static_cast<std::streamsize>(size));
  out.resize(static_cast<std::size_t>(std::max<std::streamsize>(0, in.gcount())));
  return out;
}

// --- libnbd --------------------------------------------------------------------------

std::string nbd_error_text() {
  const char* e = nbd_get_error();
  return e ? e : "(no libnbd error)";
}

NbdHandle make_handle(const ConnectOptions& options) {
  NbdHandle h(nbd_create());
  if (!h) return h;
  bool ok = nbd_set_export_name(h.get(), options.export_name.c_str()) == 0 &&
            nbd_set_request_structured_replies(h.get(), options.structured_replies) == 0;
  if (ok && options.meta_context)
    ok = nbd_add_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION) == 0;
  if (ok && !options.strict) ok = nbd_set_strict_mode(h.get(), 0) == 0;
  if (ok && options.full_info) ok = nbd_set_full_info(h.get(), true) == 0;
  if (ok && options.opt_mode) ok = nbd_set_opt_mode(h.get(), true) == 0;
  if (!ok) {
    ADD_FAILURE() << "configuring a libnbd handle: " << nbd_error_text();
    h.reset();
  }
  return h;
}

NbdHandle connect_unix(const std::filesystem::path& socket, const ConnectOptions& options) {
  NbdHandle h = make_handle(options);
  if (h && nbd_connect_unix(h.get(), socket.c_str()) != 0) {
    ADD_FAILURE() << "nbd_connect_unix(" << socket << ", '" << options.export_name
                  << "'): " << nbd_error_text();
    h.reset();
  }
  return h;
}

NbdHandle connect_tcp(std::uint16_t port, const ConnectOptions& options) {
  NbdHandle h = make_handle(options);
  const std::string service = std::to_string(port);
  if (h && nbd_connect_tcp(h.get(), "127.0.0.1", service.c_str()) != 0) {
    ADD_FAILURE() << "nbd_connect_tcp(127.0.0.1:" << port << "): " << nbd_error_text();
    h.reset();
  }
  return h;
}

NbdHandle connect_unix_within(const std::filesystem::path& socket,
                              std::chrono::milliseconds timeout, const ConnectOptions& options) {
  const auto deadline = clock::now() + timeout;
  NbdHandle h = make_handle(options);
  if (!h) return h;
  if (nbd_aio_connect_unix(h.get(), socket.c_str()) != 0) {
    ADD_FAILURE() << "nbd_aio_connect_unix: " << nbd_error_text();
    return nullptr;
  }
  while (nbd_aio_is_connecting(h.get()) == 1) {
    if (clock::now() >= deadline) {
      ADD_FAILURE() << "not connected to " << socket << " within " << timeout.count() << " ms";
      return nullptr;
    }
    if (nbd_poll(h.get(), std::max(1, remaining_ms(deadline))) == -1) break;
  }
  const bool ready =
      options.opt_mode ? nbd_aio_is_negotiating(h.get()) == 1 : nbd_aio_is_ready(h.get()) == 1;
  if (!ready) {
    ADD_FAILURE() << "connecting to " << socket << " failed: " << nbd_error_text();
    return nullptr;
  }
  return h;
}

namespace {

// Waits (bounded) for one aio command and retires it; true if it succeeded.
bool finish(nbd_handle* h, int64_t cookie, std::chrono::milliseconds timeout, const char* what) {
  if (cookie <= 0) {
    ADD_FAILURE() << "issuing " << what << ": " << nbd_error_text();
    return false;
  }
  if (!drain(h, timeout)) {
    ADD_FAILURE() << what << " did not complete within " << timeout.count()
                  << " ms: " << nbd_error_text();
    return false;
  }
  if (nbd_aio_command_completed(h, cookie) != 1) {
    ADD_FAILURE() << what << " failed: " << nbd_error_text();
    return false;
  }
  return true;
}

}  // namespace

bool write_read_within(nbd_handle* h, std::uint64_t offset, std::uint64_t seed,
                       std::chrono::milliseconds timeout, std::size_t size) {
  const auto data = pattern(size, seed);
  std::vector<char> back(size);
  if (!finish(h, nbd_aio_pwrite(h, data.data(), size, offset, NBD_NULL_COMPLETION, 0), timeout,
              "write") ||
      !finish(h, nbd_aio_pread(h, back.data(), size, offset, NBD_NULL_COMPLETION, 0), timeout,
              "read"))
    return false;
  if (back != data) {
    ADD_FAILURE() << "read back different data at offset " << offset;
    return false;
  }
  return true;
}

namespace {

struct ExtentCollector {
  std::vector<ExtentEntry> entries;
  int calls = 0;
  std::string unexpected_context;
};

int collect_extents(void* user_data, const char* context, std::uint64_t /*offset*/,
                    std::uint32_t* entries, std::size_t nr_entries, int* /*error*/) {
  auto* c = static_cast<ExtentCollector*>(user_data);
  if (std::strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0) {
    c->unexpected_context = context;
    return 0;
  }
  ++c->calls;
  for (std::size_t i = 0; i + 1 < nr_entries; i += 2)
    c->entries.push_back({entries[i], entries[i + 1]});
  return 0;
}

}  // namespace

std::optional<std::vector<ExtentEntry>> block_status(nbd_handle* h, std::uint64_t count,
                                                     std::uint64_t offset, std::uint32_t flags,
                                                     int* err) {
  ExtentCollector c;
  nbd_extent_callback cb{collect_extents, &c, nullptr};
  if (nbd_block_status(h, count, offset, cb, flags) != 0) {
    if (err) *err = nbd_get_errno();
    return std::nullopt;
  }
  EXPECT_EQ(c.calls, 1) << "base:allocation should be reported exactly once per request";
  EXPECT_EQ(c.unexpected_context, "") << "a context that was never negotiated";
  return c.entries;
}

bool drain(nbd_handle* h, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  while (nbd_aio_in_flight(h) > 0) {
    if (clock::now() >= deadline) return false;
    if (nbd_poll(h, std::max(1, remaining_ms(deadline))) == -1) return false;
  }
  return true;
}

// --- raw sockets ---------------------------------------------------------------------

RawSocket RawSocket::connect_unix(const std::filesystem::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {};
  }
  return RawSocket(fd);
}

RawSocket& RawSocket::operator=(RawSocket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    pending_ = std::move(other.pending_);
  }
  return *this;
}

RawSocket::~RawSocket() {
  close();
}

void RawSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawSocket::send_all(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::send(fd_, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool RawSocket::recv_exact(void* data, std::size_t size, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  char* p = static_cast<char*>(data);
  while (size > 0) {
    if (!wait_readable(fd_, deadline)) return false;
    ssize_t n = ::recv(fd_, p, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

RawSocket::Drain RawSocket::read_until_closed(std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  Drain d;
  char buffer[4096];
  for (;;) {
    if (!wait_readable(fd_, deadline)) return d;
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // EOF, or a reset: either way the server closed it
      d.closed = true;
      return d;
    }
    d.bytes.insert(d.bytes.end(), buffer, buffer + n);
  }
}

std::optional<std::string> RawSocket::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  for (;;) {
    if (auto nl = pending_.find('\n'); nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return line;
    }
    if (!wait_readable(fd_, deadline)) return std::nullopt;
    char buffer[4096];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    pending_.append(buffer, static_cast<std::size_t>(n));
  }
}

void put_be16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}
void put_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put_be16(out, static_cast<std::uint16_t>(v >> 16));
  put_be16(out, static_cast<std::uint16_t>(v));
}
void put_be64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  put_be32(out, static_cast<std::uint32_t>(v >> 32));
  put_be32(out, static_cast<std::uint32_t>(v));
}
std::uint32_t get_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}
std::uint64_t get_be64(const std::uint8_t* p) {
  return (std::uint64_t{get_be32(p)} << 32) | get_be32(p + 4);
}

std::vector<std::uint8_t> option_header(std::uint32_t option, std::uint32_t length) {
  std::vector<std::uint8_t> out;
  put_be64(out, 0x49484156454F5054ull);  // IHAVEOPT
  put_be32(out, option);
  put_be32(out, length);
  return out;
}

std::vector<std::uint8_t> request_header(std::uint16_t flags, std::uint16_t type,
                                         std::uint64_t cookie, std::uint64_t offset,
                                         std::uint32_t length, std::uint32_t magic) {
  std::vector<std::uint8_t> out;
  put_be32(out, magic);
  put_be16(out, flags);
  put_be16(out, type);
  put_be64(out, cookie);
  put_be64(out, offset);
  put_be32(out, length);
  return out;
}

bool raw_read_greeting(RawSocket& s) {
  std::uint8_t g[18];
  if (!s.recv_exact(g, sizeof g)) return false;
  return get_be64(g) == 0x4e42444d41474943ull && get_be64(g + 8) == 0x49484156454F5054ull &&
         (g[17] & 1) != 0;
}

bool raw_attach(RawSocket& s, std::string_view name) {
  if (!raw_read_greeting(s)) return false;
  std::vector<std::uint8_t> out;
  put_be32(out, 1u | 2u);  // FIXED_NEWSTYLE | NO_ZEROES
  auto header = option_header(1, static_cast<std::uint32_t>(name.size()));  // EXPORT_NAME
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), name.begin(), name.end());
  std::uint8_t reply[10];  // size, transmission flags
  return s.send_all(out) && s.recv_exact(reply, sizeof reply);
}

std::optional<OptionReply> raw_read_option_reply(RawSocket& s) {
  std::uint8_t h[20];
  if (!s.recv_exact(h, sizeof h) || get_be64(h) != 0x0003e889045565a9ull) return std::nullopt;
  OptionReply r;
  r.option = get_be32(h + 8);
  r.type = get_be32(h + 12);
  r.data.resize(get_be32(h + 16));
  if (!r.data.empty() && !s.recv_exact(r.data.data(), r.data.size())) return std::nullopt;
  return r;
}

}  // namespace snapstore::integration
