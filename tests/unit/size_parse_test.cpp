// Unit tests for daemon/size_parse.h: human sizes and HOST:PORT addresses.
#include "daemon/size_parse.h"

#include <gtest/gtest.h>

namespace snapstore {
namespace {

std::uint64_t size_ok(std::string_view text) {
  auto r = parse_size(text);
  EXPECT_TRUE(r.is_ok()) << "'" << text << "': " << r.status().to_string();
  return r.is_ok() ? r.value() : 0;
}

void size_bad(std::string_view text) {
  auto r = parse_size(text);
  ASSERT_FALSE(r.is_ok()) << "'" << text << "' parsed as " << r.value();
  EXPECT_EQ(r.status().code(), errc::invalid_argument) << text;
  EXPECT_NE(r.status().message().find("'" + std::string(text) + "'"), std::string::npos)
      << r.status().message();
}

TEST(ParseSize, PlainBytes) {
  EXPECT_EQ(size_ok("4096"), 4096u);
  EXPECT_EQ(size_ok("1"), 1u);
  EXPECT_EQ(size_ok("512b"), 512u);
  EXPECT_EQ(size_ok("512B"), 512u);
  EXPECT_EQ(size_ok("18446744073709551615"), UINT64_MAX);
}

TEST(ParseSize, BinarySuffixes) {
  EXPECT_EQ(size_ok("1k"), 1024u);
  EXPECT_EQ(size_ok("1K"), 1024u);
  EXPECT_EQ(size_ok("2KB"), 2048u);
  EXPECT_EQ(size_ok("3KiB"), 3072u);
  EXPECT_EQ(size_ok("512MiB"), 512ull << 20);
  EXPECT_EQ(size_ok("8m"), 8ull << 20);
  EXPECT_EQ(size_ok("16G"), 16ull << 30);
  EXPECT_EQ(size_ok("1gib"), 1ull << 30);
  EXPECT_EQ(size_ok("1T"), 1ull << 40);
  EXPECT_EQ(size_ok("2P"), 2ull << 50);
  EXPECT_EQ(size_ok("16383P"), 16383ull << 50);
}

TEST(ParseSize, RejectsEmptyAndZero) {
  size_bad("");
  size_bad("0");
  size_bad("0G");
  size_bad("000");
}

TEST(ParseSize, RejectsNegativeAndFractions) {
  size_bad("-1");
  size_bad("-1G");
  size_bad("1.5G");
  size_bad("0.5");
}

TEST(ParseSize, RejectsUnknownUnitsAndStrayText) {
  size_bad("12X");
  size_bad("G");
  size_bad("16GG");
  size_bad("16Gi");
  size_bad("16 G");
  size_bad(" 16G");
  size_bad("16G ");
  size_bad("1E");
  size_bad("0x10");
}

TEST(ParseSize, RejectsOverflow) {
  size_bad("99999999999P");
  size_bad("16384P");                 // exactly 2^64
  size_bad("17179869184T");           // 2^34 TiB = 2^74
  size_bad("18446744073709551616");   // UINT64_MAX + 1
  size_bad("99999999999999999999999");
}

TEST(FormatSize, PicksTheLargestUnit) {
  EXPECT_EQ(format_size(0), "0 B");
  EXPECT_EQ(format_size(1023), "1023 B");
  EXPECT_EQ(format_size(1024), "1.0 KiB");
  EXPECT_EQ(format_size(1536), "1.5 KiB");
  EXPECT_EQ(format_size(16ull << 30), "16.0 GiB");
  EXPECT_EQ(format_size(3ull << 50), "3.0 PiB");
}

HostPort host_port_ok(std::string_view text) {
  auto r = parse_host_port(text);
  EXPECT_TRUE(r.is_ok()) << "'" << text << "': " << r.status().to_string();
  return r.is_ok() ? r.value() : HostPort{};
}

void host_port_bad(std::string_view text) {
  auto r = parse_host_port(text);
  ASSERT_FALSE(r.is_ok()) << "'" << text << "' parsed as " << r.value().host << " port "
                          << r.value().port;
  EXPECT_EQ(r.status().code(), errc::invalid_argument) << text;
  EXPECT_NE(r.status().message().find("'" + std::string(text) + "'"), std::string::npos)
      << r.status().message();
}

TEST(ParseHostPort, Ipv4) {
  HostPort hp = host_port_ok("127.0.0.1:10809");
  EXPECT_EQ(hp.host, "127.0.0.1");
  EXPECT_EQ(hp.port, 10809);
  hp = host_port_ok("0.0.0.0:65535");
  EXPECT_EQ(hp.host, "0.0.0.0");
  EXPECT_EQ(hp.port, 65535);
}

TEST(ParseHostPort, BracketedIpv6) {
  HostPort hp = host_port_ok("[::1]:10809");
  EXPECT_EQ(hp.host, "::1");
  EXPECT_EQ(hp.port, 10809);
  hp = host_port_ok("[fe80::1:2]:1");
  EXPECT_EQ(hp.host, "fe80::1:2");
  EXPECT_EQ(hp.port, 1);
}

TEST(ParseHostPort, LocalhostMeansIpv4Loopback) {
  HostPort hp = host_port_ok("localhost:10809");
  EXPECT_EQ(hp.host, "127.0.0.1");
  EXPECT_EQ(hp.port, 10809);
}

TEST(ParseHostPort, HostNamesAndPortZero) {
  HostPort hp = host_port_ok("nbd.example.com:0");
  EXPECT_EQ(hp.host, "nbd.example.com");
  EXPECT_EQ(hp.port, 0);  // "pick a free port"
}

TEST(ParseHostPort, RejectsMissingParts) {
  host_port_bad("");
  host_port_bad("10809");
  host_port_bad("localhost");
  host_port_bad(":10809");
  host_port_bad("host:");
  host_port_bad("[]:10809");
}

TEST(ParseHostPort, RejectsBadPorts) {
  host_port_bad("host:65536");
  host_port_bad("host:99999999999");
  host_port_bad("host:-1");
  host_port_bad("host:12ab");
  host_port_bad("host: 80");
  host_port_bad("host:80 ");
  host_port_bad("host:0x50");
}

TEST(ParseHostPort, RejectsMalformedBrackets) {
  host_port_bad("[::1]");
  host_port_bad("[::1]:");
  host_port_bad("[::1]10809");
  host_port_bad("[::1:10809");
}

}  // namespace
}  // namespace snapstore
