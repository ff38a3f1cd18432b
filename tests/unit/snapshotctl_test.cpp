// Unit tests for snapshotctl's command line (ctl/cli.h) and reply checking
// (ctl/control_client.h), without a daemon: usage errors exit 2 before any connection,
// an unreachable socket exits 3, and replies that are not the protocol are told apart
// from refusals.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <sstream>

#include "ctl/cli.h"
#include "ctl/control_client.h"

namespace snapstore::ctl {
namespace {

struct CliRun {
  int code = -1;
  std::string out, err;
};

CliRun run(std::vector<std::string> args) {
  args.insert(args.begin(), "snapshotctl");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  CliRun r;
  r.code = run_snapshotctl(static_cast<int>(argv.size()), argv.data(), out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// A socket path where nothing listens: usage errors must exit 2 before trying it.
const std::string nowhere = "/nonexistent-snapstore-dir/ctl.sock";

TEST(SnapshotctlCli, HelpExitsZeroAndDocumentsTheExitCodes) {
  CliRun r = run({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* word : {"Exit codes", "refused", "usage", "cannot be reached", "snapshot",
                           "volume", "prune", "diff", "status", "stats"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " not in:\n" << r.out;
}

TEST(SnapshotctlCli, UsageErrorsExitTwo) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"--socket", nowhere},
      {"frobnicate"},
      {"snapshot"},
      {"snapshot", "create"},
      {"snapshot", "create", "origin"},
      {"snapshot", "create", "origin", "a", "--name", "b"},
      {"snapshot", "rollback", "origin"},
      {"volume", "create", "v"},
      {"volume", "create", "v", "12Q"},
      {"volume", "create", "v", "0"},
      {"volume", "resize", "v", "-1G"},
      {"diff", "a"},
      {"prune", "origin", "--prefix", "auto-"},
      {"prune", "origin", "--prefix", "auto-", "--keep-last", "0"},
      {"prune", "origin", "--keep-last", "1"},
      {"prune", "origin", "--prefix", "a", "--keep-daily", "-3"},
      {"status", "--bogus"},
      {"--timeout", "0", "status"},
  };
  for (auto args : cases) {
    std::string line;
    for (const auto& a : args) line += a + " ";
    SCOPED_TRACE(line);
    args.insert(args.begin(), {"--socket", nowhere});
    CliRun r = run(args);
    EXPECT_EQ(r.code, 2) << r.out << r.err;
    EXPECT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find("cannot reach"), std::string::npos) << "tried to connect: " << r.err;
  }
}

TEST(SnapshotctlCli, ANamePatternThatMakesNoValidNameIsAUsageError) {
  CliRun r = run({"--socket", nowhere, "snapshot", "create", "origin", "auto %Y"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not a valid name"), std::string::npos) << r.err;
  r = run({"--socket", nowhere, "snapshot", "create", "origin", "--name", "x/%H"});
  EXPECT_EQ(r.code, 2);
}

TEST(SnapshotctlCli, AnUnreachableDaemonExitsThree) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"status"}, {"volume", "list"}, {"snapshot", "list", "origin"},
        {"snapshot", "create", "origin", "auto-%Y%m%d"}, {"diff", "a", "b"},
        {"prune", "origin", "--prefix", "auto-", "--keep-last", "3", "--dry-run"}}) {
    args.insert(args.begin(), {"--socket", nowhere});
    CliRun r = run(args);
    EXPECT_EQ(r.code, 3) << r.err;
    EXPECT_NE(r.err.find("cannot reach the daemon"), std::string::npos) << r.err;
  }
}

TEST(SnapshotctlCli, GlobalOptionsMayFollowTheCommand) {
  CliRun r = run({"snapshot", "list", "--json", "--socket", nowhere});
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find(nowhere), std::string::npos) << r.err;
}

TEST(SnapshotctlCli, TheDefaultSocketIsBesideThePool) {
  ::unsetenv("SNAPSTORE_POOL");
  EXPECT_EQ(default_socket_path(), "/var/lib/snapstore/pool.snap.ctl.sock");
  ::setenv("SNAPSTORE_POOL", "/srv/p.snap", 1);
  EXPECT_EQ(default_socket_path(), "/srv/p.snap.ctl.sock");
  ::unsetenv("SNAPSTORE_POOL");
}

TEST(ControlReply, ResultsAndRefusalsAreParsed) {
  auto ok = parse_reply(R"({"version":1,"ok":true,"result":{"x":1}})");
  ASSERT_TRUE(ok) << ok.status().message();
  EXPECT_TRUE(ok->ok);
  EXPECT_EQ(ok->result["x"], 1);

  auto refused = parse_reply(R"({"version":1,"ok":false,"error":{"code":"busy","message":"m"}})");
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->ok);
  EXPECT_EQ(refused->code, "busy");
  EXPECT_EQ(refused->message, "m");
}

TEST(ControlReply, AnythingElseIsAProtocolError) {
  for (const char* line :
       {"", "nonsense", "[]", R"({"ok":true,"result":1})", R"({"version":2,"ok":true,"result":1})",
        R"({"version":1,"result":1})", R"({"version":1,"ok":"yes","result":1})",
        R"({"version":1,"ok":true})", R"({"version":1,"ok":false})",
        R"({"version":1,"ok":false,"error":"busy"})",
        R"({"version":1,"ok":false,"error":{"message":"m"}})"}) {
    SCOPED_TRACE(line);
    auto r = parse_reply(line);
    EXPECT_FALSE(r);
  }
}

}  // namespace
}  // namespace snapstore::ctl
