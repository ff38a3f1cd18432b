// Unit tests for daemon/control_args.h: checked access to a control request's arguments.
#include "daemon/control_args.h"

#include <gtest/gtest.h>

namespace snapstore {
namespace {

using json = nlohmann::json;

TEST(ControlArgs, ReadsEveryKindOfArgument) {
  const json args = {{"name", "snap"}, {"force", true}, {"size", "1M"}, {"offset", 7}};
  ArgReader r(args);
  EXPECT_EQ(r.string("name"), "snap");
  EXPECT_TRUE(r.flag("force"));
  EXPECT_FALSE(r.flag("absent"));
  EXPECT_TRUE(r.flag("absent-too", true));
  EXPECT_EQ(r.size("size"), 1u << 20);
  EXPECT_EQ(r.number("offset", 0), 7u);
  EXPECT_EQ(r.number("missing", 99), 99u);
  EXPECT_TRUE(r.finish().is_ok()) << r.finish().message();
}

TEST(ControlArgs, SizeTakesBytesOrAUnit) {
  const json args = {{"a", 4096}, {"b", "2G"}};
  ArgReader r(args);
  EXPECT_EQ(r.size("a"), 4096u);
  EXPECT_EQ(r.size("b"), 2ull << 30);
  EXPECT_TRUE(r.finish().is_ok());
}

// Each bad argument is named in an invalid_argument.
TEST(ControlArgs, BadArgumentsAreInvalid) {
  struct Case {
    json args;
    std::function<void(ArgReader&)> read;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {json::object(), [](ArgReader& r) { r.string("name"); }, "name"},
      {{{"name", 3}}, [](ArgReader& r) { r.string("name"); }, "name"},
      {{{"name", ""}}, [](ArgReader& r) { r.string("name"); }, "name"},
      {{{"name", nullptr}}, [](ArgReader& r) { r.string("name"); }, "name"},
      {{{"force", "yes"}}, [](ArgReader& r) { r.flag("force"); }, "force"},
      {{{"force", 1}}, [](ArgReader& r) { r.flag("force"); }, "force"},
      {json::object(), [](ArgReader& r) { r.size("size"); }, "size"},
      {{{"size", 0}}, [](ArgReader& r) { r.size("size"); }, "size"},
      {{{"size", -5}}, [](ArgReader& r) { r.size("size"); }, "size"},
      {{{"size", 1.5}}, [](ArgReader& r) { r.size("size"); }, "size"},
      {{{"size", "12Q"}}, [](ArgReader& r) { r.size("size"); }, "size"},
      {{{"size", true}}, [](ArgReader& r) { r.size("size"); }, "size"},
      {{{"offset", -1}}, [](ArgReader& r) { r.number("offset", 0); }, "offset"},
      {{{"offset", "1"}}, [](ArgReader& r) { r.number("offset", 0); }, "offset"},
      {{{"n", 11}}, [](ArgReader& r) { r.number("n", 0, 10); }, "n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args.dump());
    ArgReader r(c.args);
    c.read(r);
    Status st = r.finish();
    EXPECT_EQ(st.code(), errc::invalid_argument);
    EXPECT_NE(st.message().find(c.mentions), std::string::npos) << st.message();
  }
}

TEST(ControlArgs, AnUnknownArgumentIsNamed) {
  const json args = {{"name", "x"}, {"froce", true}};
  ArgReader r(args);
  r.string("name");
  r.flag("force");
  Status st = r.finish();
  EXPECT_EQ(st.code(), errc::invalid_argument);
  EXPECT_NE(st.message().find("froce"), std::string::npos) << st.message();
}

TEST(ControlArgs, TheFirstProblemIsReported) {
  const json args = {{"a", 1}, {"b", 2}};
  ArgReader r(args);
  r.string("a");
  r.string("b");
  EXPECT_NE(r.finish().message().find("\"a\""), std::string::npos) << r.finish().message();
}

}  // namespace
}  // namespace snapstore
