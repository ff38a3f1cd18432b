// snapshotctl against a real snapstored on a private pool and sockets: every command, its
// error cases and exit codes, the export table following the pool, and --force.
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "ctl_support.h"

namespace snapstore::integration {
namespace {

using json = nlohmann::json;

constexpr std::uint64_t origin_size = 64ull << 20;  // --pool-size 64M

class Snapshotctl : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(d_.ready()); }

  CtlRun ctl(const std::vector<std::string>& args) { return snapshotctl(d_, args); }
  // Runs and expects exit 0.
  CtlRun ok(const std::vector<std::string>& args) {
    CtlRun r = ctl(args);
    EXPECT_EQ(r.code, 0) << r.describe();
    return r;
  }
  // Runs with --json and expects exit 1 with this error code; returns the message.
  std::string refused(std::vector<std::string> args, const std::string& code) {
    args.insert(args.begin(), "--json");
    CtlRun r = ctl(args);
    EXPECT_EQ(r.code, 1) << r.describe();
    json j = r.json();
    EXPECT_EQ(j["error"].value("code", ""), code) << r.describe();
    std::string message = j["error"].value("message", "");
    EXPECT_FALSE(message.empty()) << r.describe();
    EXPECT_NE(r.err.find(code), std::string::npos) << "stderr should name the code: " << r.err;
    return message;
  }
  NbdHandle attach(const std::string& name) { return d_.connect({.export_name = name}); }
  std::vector<std::string> names() { return volume_names(d_.control_socket()); }
  json volume(const std::string& name) {
    json list = ok({"--json", "volume", "list"}).json();
    for (const json& v : list["volumes"])
      if (v["name"] == name) return v;
    ADD_FAILURE() << "no volume " << name << " in " << list.dump();
    return json::object();
  }

  TempDir dir_;
  DaemonProcess d_{dir_.path()};
};

void write_pattern(nbd_handle* h, std::uint64_t offset, std::uint64_t seed, std::size_t size = 65536) {
  const auto data = pattern(size, seed);
  ASSERT_EQ(nbd_pwrite(h, data.data(), data.size(), offset, 0), 0) << nbd_error_text();
}

// True when [offset, offset + size) of the export holds pattern(size, seed).
bool holds(nbd_handle* h, std::uint64_t offset, std::uint64_t seed, std::size_t size = 65536) {
  std::vector<char> back(size);
  if (nbd_pread(h, back.data(), back.size(), offset, 0) != 0) {
    ADD_FAILURE() << "read at " << offset << ": " << nbd_error_text();
    return false;
  }
  return back == pattern(size, seed);
}

TEST_F(Snapshotctl, CreateListAndDeleteASnapshot) {
  CtlRun created = ok({"snapshot", "create", "origin", "s1"});
  EXPECT_NE(created.out.find("s1"), std::string::npos) << created.describe();
  CtlRun list = ok({"snapshot", "list"});
  EXPECT_NE(list.out.find("NAME"), std::string::npos) << list.describe();
  EXPECT_NE(list.out.find("EXCLUSIVE"), std::string::npos) << list.describe();
  EXPECT_NE(list.out.find("s1"), std::string::npos) << list.describe();
  EXPECT_NE(list.out.find("origin"), std::string::npos) << list.describe();

  json s1 = volume("s1");
  EXPECT_EQ(s1.value("parent", ""), "origin");
  EXPECT_EQ(s1.value("size", std::uint64_t{0}), origin_size);
  EXPECT_EQ(s1.value("read_only", true), false);
  EXPECT_GT(s1.value("parent_id", std::uint64_t{0}), 0u);

  ok({"snapshot", "delete", "s1"});
  EXPECT_EQ(names(), std::vector<std::string>{"origin"});
}

TEST_F(Snapshotctl, ReadOnlySnapshotsRefuseWrites) {
  ok({"snapshot", "create", "origin", "ro", "--readonly"});
  EXPECT_EQ(volume("ro").value("read_only", false), true);
  auto h = attach("ro");
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_is_read_only(h.get()), 1);
}

TEST_F(Snapshotctl, ANewSnapshotIsListedByNbdAndAttachableAtOnce) {
  EXPECT_EQ(nbd_list_exports(d_.nbd_socket()), std::vector<std::string>{"origin"});
  ok({"snapshot", "create", "origin", "fresh"});
  EXPECT_EQ(nbd_list_exports(d_.nbd_socket()), (std::vector<std::string>{"fresh", "origin"}));
  auto h = attach("fresh");
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_get_size(h.get()), static_cast<int64_t>(origin_size));
  h.reset();
  ASSERT_TRUE(eventually([&] { return volume("fresh").value("connections", 1) == 0; }));
  ok({"snapshot", "delete", "fresh"});
  EXPECT_EQ(nbd_list_exports(d_.nbd_socket()), std::vector<std::string>{"origin"});
  NbdHandle gone = make_handle({.export_name = "fresh"});
  EXPECT_EQ(nbd_connect_unix(gone.get(), d_.nbd_socket().c_str()), -1);
}

TEST_F(Snapshotctl, ASnapshotIsAPointInTime) {
  auto origin = attach("origin");
  ASSERT_TRUE(origin);
  write_pattern(origin.get(), 1 << 20, 1);
  ok({"snapshot", "create", "origin", "before"});
  write_pattern(origin.get(), 1 << 20, 2);
  auto before = attach("before");
  ASSERT_TRUE(before);
  EXPECT_TRUE(holds(before.get(), 1 << 20, 1));
  EXPECT_TRUE(holds(origin.get(), 1 << 20, 2));
}

TEST_F(Snapshotctl, BadDuplicateAndUnknownNamesAreRefused) {
  ok({"snapshot", "create", "origin", "s1"});
  refused({"snapshot", "create", "origin", "s1"}, "exists");
  refused({"snapshot", "create", "nosuch", "s2"}, "not_found");
  refused({"snapshot", "delete", "nosuch"}, "not_found");
  refused({"volume", "delete", "nosuch"}, "not_found");
  refused({"snapshot", "rollback", "origin", "nosuch"}, "not_found");
  refused({"snapshot", "rollback", "nosuch", "s1"}, "not_found");
  refused({"snapshot", "rename", "nosuch", "x"}, "not_found");
  refused({"snapshot", "rename", "s1", "origin"}, "exists");
  refused({"volume", "create", "origin", "1M"}, "exists");
  refused({"volume", "create", "a/b", "1M"}, "invalid_argument");
  refused({"volume", "create", std::string(129, 'n'), "1M"}, "invalid_argument");
  refused({"snapshot", "rename", "s1", "bad:name"}, "invalid_argument");
  refused({"diff", "origin", "nosuch"}, "not_found");
  refused({"volume", "resize", "nosuch", "1M"}, "not_found");
  // A name that is no valid name is refused by snapshotctl before it asks (usage, 2).
  CtlRun r = ctl({"snapshot", "create", "origin", "bad name"});
  EXPECT_EQ(r.code, 2) << r.describe();
  EXPECT_EQ(names(), (std::vector<std::string>{"origin", "s1"}));
}

TEST_F(Snapshotctl, SnapshotDeleteRefusesAVolumeThatIsNoSnapshot) {
  CtlRun r = ctl({"snapshot", "delete", "origin"});
  EXPECT_EQ(r.code, 1) << r.describe();
  EXPECT_NE(r.err.find("volume delete"), std::string::npos) << r.describe();
  EXPECT_EQ(names(), std::vector<std::string>{"origin"});
}

TEST_F(Snapshotctl, DeletingTheParentLeavesItsSnapshotReadable) {
  auto origin = attach("origin");
  ASSERT_TRUE(origin);
  write_pattern(origin.get(), 0, 7);
  write_pattern(origin.get(), 8 << 20, 8);
  ASSERT_EQ(nbd_flush(origin.get(), 0), 0);
  ok({"snapshot", "create", "origin", "child"});
  ok({"snapshot", "create", "child", "grandchild"});
  origin.reset();
  // The daemon notices the closed connection a moment later; until then a delete is
  // refused as busy.
  ASSERT_TRUE(eventually([&] { return volume("origin").value("connections", 1) == 0; }));
  ok({"volume", "delete", "origin"});
  EXPECT_EQ(names(), (std::vector<std::string>{"child", "grandchild"}));

  json child = volume("child");
  EXPECT_TRUE(child["parent"].is_null()) << child.dump();
  EXPECT_EQ(volume("grandchild").value("parent", ""), "child");
  auto h = attach("child");
  ASSERT_TRUE(h);
  EXPECT_TRUE(holds(h.get(), 0, 7));
  EXPECT_TRUE(holds(h.get(), 8 << 20, 8));
  auto g = attach("grandchild");
  ASSERT_TRUE(g);
  EXPECT_TRUE(holds(g.get(), 0, 7));
  // The snapshot is writable and its writes do not reach its own snapshot.
  write_pattern(h.get(), 0, 9);
  EXPECT_TRUE(holds(h.get(), 0, 9));
  EXPECT_TRUE(holds(g.get(), 0, 7));
}

TEST_F(Snapshotctl, RollbackRestoresTheData) {
  auto origin = attach("origin");
  ASSERT_TRUE(origin);
  write_pattern(origin.get(), 4 << 20, 11);
  ok({"snapshot", "create", "origin", "good"});
  write_pattern(origin.get(), 4 << 20, 12);
  write_pattern(origin.get(), 9 << 20, 13);  // a block the snapshot never had

  // Attached: refused, and nothing changes for the client.
  refused({"snapshot", "rollback", "origin", "good"}, "busy");
  EXPECT_TRUE(write_read_within(origin.get(), 20 << 20, 14)) << "the refused rollback disturbed the client";
  EXPECT_TRUE(holds(origin.get(), 4 << 20, 12));

  CtlRun r = ok({"--json", "snapshot", "rollback", "origin", "good", "--force"});
  EXPECT_EQ(r.json().value("disconnected", 0), 1) << r.describe();
  std::vector<char> buf(4096);
  EXPECT_EQ(nbd_pread(origin.get(), buf.data(), buf.size(), 0, 0), -1)
      << "the forced rollback left the client attached";

  auto again = attach("origin");
  ASSERT_TRUE(again);
  EXPECT_TRUE(holds(again.get(), 4 << 20, 11));
  std::vector<char> zeroes(65536);
  ASSERT_EQ(nbd_pread(again.get(), zeroes.data(), zeroes.size(), 9 << 20, 0), 0);
  EXPECT_TRUE(all_zero(zeroes.data(), zeroes.size())) << "a write after the snapshot survived";
  auto good = attach("good");
  ASSERT_TRUE(good);
  EXPECT_TRUE(holds(good.get(), 4 << 20, 11));
}

TEST_F(Snapshotctl, ForceDisconnectsAnAttachedClientAndTheDeleteSucceeds) {
  ok({"snapshot", "create", "origin", "victim"});
  auto h = attach("victim");
  ASSERT_TRUE(h);
  ASSERT_TRUE(eventually([&] { return volume("victim").value("connections", 0) == 1; }));

  CtlRun busy = ctl({"snapshot", "delete", "victim"});
  EXPECT_EQ(busy.code, 1) << busy.describe();
  EXPECT_NE(busy.err.find("busy"), std::string::npos) << busy.describe();
  EXPECT_TRUE(write_read_within(h.get(), 0, 21)) << "the refused delete disturbed the client";
  EXPECT_EQ(nbd_list_exports(d_.nbd_socket()), (std::vector<std::string>{"origin", "victim"}))
      << "a refused delete must put the export back";

  CtlRun forced = ok({"snapshot", "delete", "victim", "--force"});
  EXPECT_NE(forced.out.find("disconnected 1"), std::string::npos) << forced.describe();
  std::vector<char> buf(4096);
  EXPECT_EQ(nbd_pread(h.get(), buf.data(), buf.size(), 0, 0), -1)
      << "the client is still attached to a deleted snapshot";
  EXPECT_EQ(names(), std::vector<std::string>{"origin"});
}

TEST_F(Snapshotctl, RenameAndShrinkFollowTheAttachmentRule) {
  ok({"volume", "create", "data", "8M"});
  auto h = attach("data");
  ASSERT_TRUE(h);
  refused({"volume", "rename", "data", "data2"}, "busy");
  refused({"volume", "resize", "data", "4M"}, "busy");
  ok({"volume", "resize", "data", "16M"});  // growing is fine while attached
  EXPECT_EQ(volume("data").value("size", std::uint64_t{0}), 16u << 20);
  EXPECT_TRUE(write_read_within(h.get(), 0, 31));
  ok({"volume", "rename", "data", "data2", "--force"});
  EXPECT_EQ(names(), (std::vector<std::string>{"data2", "origin"}));
  EXPECT_EQ(nbd_list_exports(d_.nbd_socket()), (std::vector<std::string>{"data2", "origin"}));
  auto renamed = attach("data2");
  ASSERT_TRUE(renamed);
  EXPECT_EQ(nbd_get_size(renamed.get()), 16 << 20);
  std::vector<char> back(4096);
  ASSERT_EQ(nbd_pread(renamed.get(), back.data(), back.size(), 0, 0), 0);
  EXPECT_EQ(back, pattern(4096, 31));
}

TEST_F(Snapshotctl, VolumeCreateResizeAndDelete) {
  CtlRun created = ok({"--json", "volume", "create", "scratch", "10M"});
  json v = created.json();
  EXPECT_EQ(v.value("name", ""), "scratch");
  EXPECT_EQ(v.value("size", std::uint64_t{0}), 10u << 20);
  EXPECT_TRUE(v["parent"].is_null());
  auto h = attach("scratch");
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_get_size(h.get()), 10 << 20);
  h.reset();
  ASSERT_TRUE(eventually([&] { return volume("scratch").value("connections", 1) == 0; }));
  ok({"volume", "resize", "scratch", "2M"});
  EXPECT_EQ(volume("scratch").value("size", std::uint64_t{0}), 2u << 20);
  auto again = attach("scratch");
  ASSERT_TRUE(again);
  EXPECT_EQ(nbd_get_size(again.get()), 2 << 20);
  again.reset();
  CtlRun list = ok({"volume", "list"});
  EXPECT_NE(list.out.find("scratch"), std::string::npos) << list.describe();
  EXPECT_NE(list.out.find("CLIENTS"), std::string::npos) << list.describe();
  ASSERT_TRUE(eventually([&] { return volume("scratch").value("connections", 1) == 0; }));
  ok({"volume", "delete", "scratch"});
  EXPECT_EQ(names(), std::vector<std::string>{"origin"});
}

TEST_F(Snapshotctl, DiffReportsTheChangedRangesCoalesced) {
  ok({"snapshot", "create", "origin", "base"});
  CtlRun none = ok({"--json", "diff", "base", "origin"});
  EXPECT_EQ(none.json()["extents"], json::array()) << none.describe();

  auto origin = attach("origin");
  ASSERT_TRUE(origin);
  write_pattern(origin.get(), 0, 41, 4096);
  write_pattern(origin.get(), 4096, 42, 4096);  // adjacent: one range with the first
  write_pattern(origin.get(), 1 << 20, 43, 65536);
  CtlRun r = ok({"--json", "diff", "base", "origin"});
  json j = r.json();
  EXPECT_EQ(j["extents"], json::parse("[[0, 8192], [1048576, 65536]]")) << r.describe();
  EXPECT_EQ(j.value("changed_bytes", 0), 8192 + 65536) << r.describe();
  EXPECT_EQ(j.value("complete", false), true);

  CtlRun human = ok({"diff", "base", "origin"});
  EXPECT_NE(human.out.find("1048576"), std::string::npos) << human.describe();
  EXPECT_NE(human.out.find("2 changed range"), std::string::npos) << human.describe();
}

TEST_F(Snapshotctl, DiffPagesThroughManyRanges) {
  ok({"snapshot", "create", "origin", "base"});
  auto origin = attach("origin");
  ASSERT_TRUE(origin);
  for (int i = 0; i < 10; ++i) write_pattern(origin.get(), std::uint64_t(i) * 65536, 50 + i, 4096);
  json first = control(d_.control_socket(), "diff", {{"a", "base"}, {"b", "origin"}, {"max_extents", 3}});
  ASSERT_EQ(first.value("ok", false), true) << first.dump();
  EXPECT_EQ(first["result"]["extents"].size(), 3u);
  EXPECT_EQ(first["result"].value("complete", true), false);
  // snapshotctl joins every page.
  json all = ok({"--json", "diff", "base", "origin"}).json();
  EXPECT_EQ(all["extents"].size(), 10u) << all.dump();
}

TEST_F(Snapshotctl, StrftimeNamesAreExpandedInLocalTime) {
  const std::time_t before = std::time(nullptr);
  CtlRun r = ok({"--json", "snapshot", "create", "origin", "auto-%Y%m%d-%H%M"});
  const std::time_t after = std::time(nullptr);
  const std::string name = r.json().value("name", "");
  EXPECT_TRUE(std::regex_match(name, std::regex("auto-[0-9]{8}-[0-9]{4}"))) << name;
  std::set<std::string> expected;
  for (std::time_t t : {before, after}) {
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char text[64];
    std::strftime(text, sizeof text, "auto-%Y%m%d-%H%M", &tm);
    expected.insert(text);
  }
  EXPECT_TRUE(expected.contains(name)) << name;
  EXPECT_EQ(names(), (std::vector<std::string>{name, "origin"}));
  // --name works the same.
  CtlRun second = ok({"--json", "snapshot", "create", "origin", "--name", "x-%Y"});
  EXPECT_EQ(second.json().value("name", "").size(), 6u) << second.describe();
}

TEST_F(Snapshotctl, JsonOutputParsesForEveryCommand) {
  auto origin = attach("origin");
  ASSERT_TRUE(origin);
  write_pattern(origin.get(), 0, 60, 4096);
  const std::vector<std::vector<std::string>> commands = {
      {"snapshot", "create", "origin", "j1"},
      {"snapshot", "list"},
      {"snapshot", "list", "origin"},
      {"snapshot", "rename", "j1", "j2"},
      {"volume", "create", "jv", "1M"},
      {"volume", "resize", "jv", "2M"},
      {"volume", "list"},
      {"diff", "j2", "origin"},
      {"status"},
      {"stats"},
      {"prune", "origin", "--prefix", "j", "--keep-last", "5", "--dry-run"},
      {"volume", "delete", "jv"},
      {"snapshot", "delete", "j2"},
  };
  for (auto args : commands) {
    std::string line;
    for (const auto& a : args) line += a + " ";
    SCOPED_TRACE(line);
    args.insert(args.begin(), "--json");
    CtlRun r = ok(args);
    EXPECT_TRUE(r.json().is_object()) << r.describe();
  }
  json status = ok({"--json", "status"}).json();
  EXPECT_TRUE(status["space"]["reclaim"].is_object()) << status.dump();
  EXPECT_EQ(status["space"].value("failure", "x"), "") << status.dump();
  EXPECT_GE(status["space"].value("data_blocks_available", std::uint64_t{0}),
            status["space"].value("data_blocks_free", std::uint64_t{0}))
      << status.dump();
  EXPECT_GT(status["space"].value("data_blocks_available", std::uint64_t{0}), 0u) << status.dump();
  json stats = ok({"--json", "stats"}).json();
  ASSERT_EQ(stats["volumes"].size(), 1u) << stats.dump();
  EXPECT_GE(stats["volumes"][0].value("writes", 0), 1) << stats.dump();
}

TEST_F(Snapshotctl, HumanStatusAndStats) {
  CtlRun status = ok({"status"});
  for (const char* word : {"pool:", "data:", "metadata:", "commits:", "cache:", "reclaim:",
                           "state:", "origin"})
    EXPECT_NE(status.out.find(word), std::string::npos) << word << "\n" << status.describe();
  CtlRun stats = ok({"stats"});
  EXPECT_NE(stats.out.find("WRITES"), std::string::npos) << stats.describe();
}

// --keep-last is the rule whose outcome does not depend on the wall clock.
TEST_F(Snapshotctl, PruneDryRunDeletesNothingAndPruneDeletesExactlyTheExpectedSet) {
  for (int i = 1; i <= 5; ++i) ok({"snapshot", "create", "origin", "auto-" + std::to_string(i)});
  ok({"snapshot", "create", "origin", "manual-1"});          // another prefix
  ok({"volume", "create", "other", "1M"});
  ok({"snapshot", "create", "other", "auto-other"});         // another parent
  const auto everything = names();

  CtlRun dry = ok({"--json", "prune", "origin", "--prefix", "auto-", "--keep-last", "2",
                   "--dry-run"});
  json plan = dry.json();
  std::set<std::string> keep, drop;
  for (const json& k : plan["keep"]) keep.insert(k["name"]);
  for (const json& k : plan["delete"]) {
    drop.insert(k["name"]);
    EXPECT_EQ(k.value("outcome", ""), "would delete") << dry.describe();
  }
  EXPECT_EQ(keep, (std::set<std::string>{"auto-5", "auto-4"})) << dry.describe();
  EXPECT_EQ(drop, (std::set<std::string>{"auto-1", "auto-2", "auto-3"})) << dry.describe();
  EXPECT_EQ(names(), everything) << "a dry run deleted something";

  CtlRun human = ok({"prune", "origin", "--prefix", "auto-", "--keep-last", "2", "--dry-run"});
  EXPECT_NE(human.out.find("last 1"), std::string::npos) << human.describe();
  EXPECT_NE(human.out.find("would delete"), std::string::npos) << human.describe();

  // A snapshot with a client attached is skipped, not forced; the rest go.
  auto h = attach("auto-2");
  ASSERT_TRUE(h);
  CtlRun real = ok({"--json", "prune", "origin", "--prefix", "auto-", "--keep-last", "2"});
  std::map<std::string, std::string> outcome;
  const json report = real.json();
  for (const json& k : report["delete"]) outcome[k["name"]] = k.value("outcome", "");
  EXPECT_EQ(outcome, (std::map<std::string, std::string>{
                         {"auto-1", "deleted"}, {"auto-2", "skipped"}, {"auto-3", "deleted"}}))
      << real.describe();
  EXPECT_EQ(names(), (std::vector<std::string>{"auto-2", "auto-4", "auto-5", "auto-other",
                                               "manual-1", "origin", "other"}));
  EXPECT_TRUE(write_read_within(h.get(), 0, 70)) << "prune disturbed an attached client";
}

TEST_F(Snapshotctl, PruneRefusesWithoutARuleAndForAnUnknownVolume) {
  ok({"snapshot", "create", "origin", "auto-1"});
  CtlRun none = ctl({"prune", "origin", "--prefix", "auto-"});
  EXPECT_EQ(none.code, 2) << none.describe();
  CtlRun unknown = ctl({"prune", "nosuch", "--prefix", "auto-", "--keep-last", "1"});
  EXPECT_EQ(unknown.code, 1) << unknown.describe();
  EXPECT_EQ(names(), (std::vector<std::string>{"auto-1", "origin"}));
}

TEST_F(Snapshotctl, ListOfOneVolumeShowsOnlyItsSnapshots) {
  ok({"snapshot", "create", "origin", "o1"});
  ok({"volume", "create", "v", "1M"});
  ok({"snapshot", "create", "v", "v1"});
  json of_v = ok({"--json", "snapshot", "list", "v"}).json();
  ASSERT_EQ(of_v["volumes"].size(), 1u) << of_v.dump();
  EXPECT_EQ(of_v["volumes"][0]["name"], "v1");
  json all = ok({"--json", "snapshot", "list"}).json();
  EXPECT_EQ(all["volumes"].size(), 2u) << all.dump();
}

TEST(SnapshotctlUnreachable, NoDaemonExitsThree) {
  TempDir dir;
  CtlRun r = snapshotctl(dir.path() / "ctl.sock", {"status"});
  EXPECT_EQ(r.code, 3) << r.describe();
}

TEST(SnapshotctlRaw, SnapshotCommandsAreNotSupportedOnTheRawBackend) {
  TempDir dir;
  DaemonProcess d(dir.path(), {.backend = "raw"});
  ASSERT_TRUE(d.ready());
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--json", "snapshot", "create", "origin", "s1"},
        {"--json", "volume", "list"}, {"--json", "volume", "delete", "origin"},
        {"--json", "stats"}}) {
    CtlRun r = snapshotctl(d, args);
    EXPECT_EQ(r.code, 1) << r.describe();
    EXPECT_EQ(r.json()["error"].value("code", ""), "not_supported") << r.describe();
    EXPECT_NE(r.err.find("--backend pool"), std::string::npos) << r.describe();
  }
  CtlRun status = snapshotctl(d, {"status"});
  EXPECT_EQ(status.code, 0) << status.describe();
}

}  // namespace
}  // namespace snapstore::integration
