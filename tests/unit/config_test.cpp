// Unit tests for daemon/config.h: parse_daemon_config on argv vectors and config files.
#include "daemon/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "nbd_test_util.h"

namespace snapstore {
namespace {

using ::testing::internal::CaptureStderr;
using ::testing::internal::CaptureStdout;
using ::testing::internal::GetCapturedStderr;
using ::testing::internal::GetCapturedStdout;

struct Parsed {
  std::optional<DaemonConfig> config;
  int exit_code = -1;
  std::string out, err;
};

// Runs parse_daemon_config on {"snapstored", args...}, capturing what CLI11 prints.
Parsed parse(std::vector<std::string> args) {
  args.insert(args.begin(), "snapstored");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  Parsed p;
  CaptureStdout();
  CaptureStderr();
  p.config = parse_daemon_config(static_cast<int>(args.size()), argv.data(), p.exit_code);
  p.out = GetCapturedStdout();
  p.err = GetCapturedStderr();
  return p;
}

void expect_usage_error(const Parsed& p) {
  EXPECT_FALSE(p.config.has_value());
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_FALSE(p.err.empty() && p.out.empty()) << "an error should be printed";
}

TEST(DaemonConfig, DefaultsWithOnlyAPool) {
  Parsed p = parse({"--pool", "/data/pool.snap"});
  ASSERT_TRUE(p.config.has_value()) << p.err;
  const DaemonConfig& c = *p.config;
  EXPECT_EQ(c.pool, "/data/pool.snap");
  EXPECT_EQ(c.pool_size, 16ull << 30);
  EXPECT_EQ(c.backend, "pool");
  EXPECT_EQ(c.cache_bytes, 64ull << 20);
  EXPECT_EQ(c.commit_interval_ms, 1000u);
  EXPECT_EQ(c.nbd_socket, "/data/pool.snap.nbd.sock");
  EXPECT_EQ(c.control_socket, "/data/pool.snap.ctl.sock");
  EXPECT_TRUE(c.tcp);
  EXPECT_EQ(c.listen_host, "127.0.0.1");
  EXPECT_EQ(c.listen_port, 10809);
  EXPECT_EQ(c.socket_group, "");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.worker_threads, 4u);
  EXPECT_EQ(c.handshake_timeout_seconds, 30u);
  EXPECT_EQ(c.max_connections, 512u);
  EXPECT_EQ(c.memory_limit, 512ull << 20);
  EXPECT_EQ(c.connection_memory, 64ull << 20);
  EXPECT_EQ(c.stall_timeout_seconds, 60u);
  EXPECT_FALSE(c.read_only);
}

TEST(DaemonConfig, DefaultSocketPathsAreBesideThePool) {
  EXPECT_EQ(default_nbd_socket("/var/lib/x.pool"), "/var/lib/x.pool.nbd.sock");
  EXPECT_EQ(default_control_socket("/var/lib/x.pool"), "/var/lib/x.pool.ctl.sock");
  EXPECT_EQ(default_nbd_socket("rel"), "rel.nbd.sock");
}

TEST(DaemonConfig, EveryOptionIsApplied) {
  Parsed p = parse({"--pool", "p.img", "--pool-size", "512MiB", "--backend", "raw",
                    "--cache-size", "128M", "--commit-interval", "250", "--nbd-socket", "/run/n.sock", "--listen", "[::1]:1234", "--control-socket",
                    "/run/c.sock", "--socket-group", "disk", "--log-level", "trace", "--threads",
                    "8", "--handshake-timeout", "5", "--max-connections", "3", "--memory-limit",
                    "2G", "--connection-memory", "128M", "--stall-timeout", "7", "--read-only"});
  ASSERT_TRUE(p.config.has_value()) << p.err;
  const DaemonConfig& c = *p.config;
  EXPECT_EQ(c.pool, "p.img");
  EXPECT_EQ(c.pool_size, 512ull << 20);
  EXPECT_EQ(c.backend, "raw");
  EXPECT_EQ(c.cache_bytes, 128ull << 20);
  EXPECT_EQ(c.commit_interval_ms, 250u);
  EXPECT_EQ(c.nbd_socket, "/run/n.sock");
  EXPECT_EQ(c.control_socket, "/run/c.sock");
  EXPECT_TRUE(c.tcp);
  EXPECT_EQ(c.listen_host, "::1");
  EXPECT_EQ(c.listen_port, 1234);
  EXPECT_EQ(c.socket_group, "disk");
  EXPECT_EQ(c.log_level, "trace");
  EXPECT_EQ(c.worker_threads, 8u);
  EXPECT_EQ(c.handshake_timeout_seconds, 5u);
  EXPECT_EQ(c.max_connections, 3u);
  EXPECT_EQ(c.memory_limit, 2ull << 30);
  EXPECT_EQ(c.connection_memory, 128ull << 20);
  EXPECT_EQ(c.stall_timeout_seconds, 7u);
  EXPECT_TRUE(c.read_only);
}

TEST(DaemonConfig, NoTcp) {
  Parsed p = parse({"--pool", "/p", "--no-tcp"});
  ASSERT_TRUE(p.config.has_value()) << p.err;
  EXPECT_FALSE(p.config->tcp);
  EXPECT_EQ(p.config->nbd_socket, "/p.nbd.sock");
}

TEST(DaemonConfig, ListenAndNoTcpConflict) {
  expect_usage_error(parse({"--pool", "/p", "--no-tcp", "--listen", "127.0.0.1:1"}));
  expect_usage_error(parse({"--pool", "/p", "--listen", "127.0.0.1:1", "--no-tcp"}));
}

TEST(DaemonConfig, MissingPoolIsAUsageError) {
  Parsed p = parse({});
  expect_usage_error(p);
  EXPECT_NE(p.err.find("--pool"), std::string::npos) << p.err;
  expect_usage_error(parse({"--no-tcp"}));
}

// An empty pool path would put the sockets at "./.nbd.sock" and "./.ctl.sock"; config.h
// promises the daemon starts only with a configuration it can serve.
TEST(DaemonConfig, EmptyPoolIsAUsageError) {
  expect_usage_error(parse({"--pool", ""}));
}

TEST(DaemonConfig, BadPoolSizeIsAUsageError) {
  for (const char* size : {"1.5G", "0", "12X", "-1", "99999999999P"}) {
    SCOPED_TRACE(size);
    expect_usage_error(parse({"--pool", "/p", "--pool-size", size}));
  }
}

// An explicit empty size (say `--pool-size "$SIZE"` with SIZE unset) must not silently
// become the 16G default: parse_size("") rejects it, and config.h promises every value is
// checked.
TEST(DaemonConfig, EmptyPoolSizeIsAUsageError) {
  expect_usage_error(parse({"--pool", "/p", "--pool-size", ""}));
}

TEST(DaemonConfig, BadCacheSizeIsAUsageError) {
  for (const char* size : {"1.5G", "0", "lots", ""}) {
    SCOPED_TRACE(size);
    expect_usage_error(parse({"--pool", "/p", "--cache-size", size}));
  }
}

TEST(DaemonConfig, BadListenAddressIsAUsageError) {
  for (const char* addr : {"localhost", "host:65536", "[::1]", ":1"}) {
    SCOPED_TRACE(addr);
    expect_usage_error(parse({"--pool", "/p", "--listen", addr}));
  }
}

TEST(DaemonConfig, OutOfRangeValuesAreUsageErrors) {
  expect_usage_error(parse({"--pool", "/p", "--threads", "0"}));
  expect_usage_error(parse({"--pool", "/p", "--threads", "257"}));
  expect_usage_error(parse({"--pool", "/p", "--threads", "many"}));
  expect_usage_error(parse({"--pool", "/p", "--handshake-timeout", "0"}));
  expect_usage_error(parse({"--pool", "/p", "--max-connections", "65537"}));
  expect_usage_error(parse({"--pool", "/p", "--log-level", "verbose"}));
  expect_usage_error(parse({"--pool", "/p", "--backend", "thin"}));
  expect_usage_error(parse({"--pool", "/p", "--commit-interval", "9"}));
  expect_usage_error(parse({"--pool", "/p", "--commit-interval", "3600001"}));
}

TEST(DaemonConfig, MemoryLimitsMustLetOneClientHoldTheLargestRequest) {
  expect_usage_error(parse({"--pool", "/p", "--stall-timeout", "0"}));
  expect_usage_error(parse({"--pool", "/p", "--stall-timeout", "3601"}));
  expect_usage_error(parse({"--pool", "/p", "--memory-limit", "lots"}));
  expect_usage_error(parse({"--pool", "/p", "--connection-memory", "0"}));
  Parsed small = parse({"--pool", "/p", "--connection-memory", "31M"});
  expect_usage_error(small);
  EXPECT_NE(small.err.find("32.0 MiB"), std::string::npos) << small.err;
  // The whole daemon must be allowed what one client is (64M by default).
  Parsed below = parse({"--pool", "/p", "--memory-limit", "48M"});
  expect_usage_error(below);
  EXPECT_NE(below.err.find("--connection-memory"), std::string::npos) << below.err;
  expect_usage_error(parse({"--pool", "/p", "--memory-limit", "100M", "--connection-memory", "101M"}));
  Parsed least = parse({"--pool", "/p", "--memory-limit", "32M", "--connection-memory", "32M"});
  ASSERT_TRUE(least.config.has_value()) << least.err;
  EXPECT_EQ(least.config->memory_limit, 32ull << 20);
  EXPECT_EQ(least.config->connection_memory, 32ull << 20);
}

TEST(DaemonConfig, UnknownOptionIsAUsageError) {
  expect_usage_error(parse({"--pool", "/p", "--frobnicate"}));
  expect_usage_error(parse({"--pool", "/p", "stray"}));
}

TEST(DaemonConfig, HelpExitsZeroWithoutAConfig) {
  Parsed p = parse({"--help"});
  EXPECT_FALSE(p.config.has_value());
  EXPECT_EQ(p.exit_code, 0);
  EXPECT_NE(p.out.find("--pool"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("--no-tcp"), std::string::npos) << p.out;
}

TEST(DaemonConfig, HelpWinsOverOtherErrors) {
  Parsed p = parse({"--pool-size", "bogus", "--help"});
  EXPECT_FALSE(p.config.has_value());
  EXPECT_EQ(p.exit_code, 0);
}

TEST(DaemonConfig, VersionExitsZero) {
  Parsed p = parse({"--version"});
  EXPECT_FALSE(p.config.has_value());
  EXPECT_EQ(p.exit_code, 0);
  EXPECT_NE(p.out.find("snapstored"), std::string::npos) << p.out;
}

class DaemonConfigFile : public ::testing::Test {
 protected:
  std::string write_config(const std::string& text) {
    std::ofstream(file_) << text;
    return file_.string();
  }
  test::TempDir dir_;
  std::filesystem::path file_ = dir_ / "snapstored.conf";
};

TEST_F(DaemonConfigFile, ReadsOptionsFromTheFile) {
  Parsed p = parse({"--config", write_config("pool = /x\nlog-level = debug\n")});
  ASSERT_TRUE(p.config.has_value()) << p.err;
  EXPECT_EQ(p.config->pool, "/x");
  EXPECT_EQ(p.config->log_level, "debug");
  EXPECT_EQ(p.config->nbd_socket, "/x.nbd.sock");
  EXPECT_EQ(p.config->control_socket, "/x.ctl.sock");
  EXPECT_TRUE(p.config->tcp);
}

TEST_F(DaemonConfigFile, SizesAndFlagsInTheFile) {
  Parsed p = parse({"--config", write_config("pool = /y\npool-size = 2G\nno-tcp = true\n"
                                             "read-only = true\nthreads = 2\n"
                                             "memory-limit = 1G\nconnection-memory = 40M\n"
                                             "stall-timeout = 5\n")});
  ASSERT_TRUE(p.config.has_value()) << p.err;
  EXPECT_EQ(p.config->pool_size, 2ull << 30);
  EXPECT_EQ(p.config->memory_limit, 1ull << 30);
  EXPECT_EQ(p.config->connection_memory, 40ull << 20);
  EXPECT_EQ(p.config->stall_timeout_seconds, 5u);
  EXPECT_FALSE(p.config->tcp);
  EXPECT_TRUE(p.config->read_only);
  EXPECT_EQ(p.config->worker_threads, 2u);
}

TEST_F(DaemonConfigFile, CommandLineOverridesTheFile) {
  Parsed p = parse({"--config", write_config("pool = /x\nlog-level = debug\n"), "--log-level",
                    "warn", "--pool", "/z"});
  ASSERT_TRUE(p.config.has_value()) << p.err;
  EXPECT_EQ(p.config->pool, "/z");
  EXPECT_EQ(p.config->log_level, "warn");
}

TEST_F(DaemonConfigFile, BadValueInTheFileIsAUsageError) {
  expect_usage_error(parse({"--config", write_config("pool = /x\nlog-level = loud\n")}));
  expect_usage_error(parse({"--config", write_config("pool = /x\npool-size = 1.5G\n")}));
}

TEST_F(DaemonConfigFile, MissingFileIsAUsageError) {
  expect_usage_error(parse({"--config", (dir_ / "absent.conf").string(), "--pool", "/p"}));
}

}  // namespace
}  // namespace snapstore
