// Unit tests for daemon/control_server.h: ControlServer::handle_line, the JSON request/reply
// protocol, without a socket.
#include "daemon/control_server.h"

#include <gtest/gtest.h>

namespace snapstore {
namespace {

using json = nlohmann::json;

class ControlServerTest : public ::testing::Test {
 protected:
  ControlServerTest() {
    server_.add_command("echo", [this](const json& args) -> Result<json> {
      ++calls_;
      return json{{"args", args}};
    });
    server_.add_command("fail", [this](const json& args) -> Result<json> {
      ++calls_;
      return Status(static_cast<errc>(args.at("code").get<int>()), "it failed");
    });
    server_.add_command("add", [this](const json& args) -> Result<json> {
      ++calls_;
      return json(args.at("a").get<int>() + args.at("b").get<int>());
    });
  }

  // Runs one line; checks that the reply is one line of JSON and returns it parsed.
  json run(std::string_view line) {
    std::string reply = server_.handle_line(line);
    EXPECT_EQ(reply.find('\n'), std::string::npos) << reply;
    json parsed = json::parse(reply, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << reply;
    return parsed;
  }

  // Asserts that `reply` is an error with `code` and a non-empty message; returns the message.
  static std::string expect_error(const json& reply, std::string_view code) {
    EXPECT_EQ(reply.value("version", -1), 1) << reply.dump();
    EXPECT_EQ(reply.value("ok", true), false) << reply.dump();
    EXPECT_FALSE(reply.contains("result")) << reply.dump();
    if (!reply.contains("error") || !reply["error"].is_object()) {
      ADD_FAILURE() << "no error object in " << reply.dump();
      return {};
    }
    const json& e = reply["error"];
    EXPECT_EQ(e.value("code", ""), code) << reply.dump();
    std::string message = e.value("message", "");
    EXPECT_FALSE(message.empty()) << reply.dump();
    EXPECT_EQ(e.size(), 2u) << reply.dump();
    return message;
  }

  boost::asio::io_context io_;
  ControlServer server_{io_};
  int calls_ = 0;
};

TEST_F(ControlServerTest, ValidRequestRunsTheCommand) {
  json reply = run(R"({"version": 1, "command": "echo", "args": {"x": [1, 2], "y": "z"}})");
  EXPECT_EQ(reply, json::parse(R"({"version": 1, "ok": true,
                                   "result": {"args": {"x": [1, 2], "y": "z"}}})"));
  EXPECT_EQ(calls_, 1);
}

TEST_F(ControlServerTest, MissingArgsAreAnEmptyObject) {
  json reply = run(R"({"version": 1, "command": "echo"})");
  EXPECT_EQ(reply, json::parse(R"({"version": 1, "ok": true, "result": {"args": {}}})"));
}

TEST_F(ControlServerTest, ResultNeedNotBeAnObject) {
  json reply = run(R"({"version": 1, "command": "add", "args": {"a": 2, "b": 40}})");
  EXPECT_EQ(reply, json::parse(R"({"version": 1, "ok": true, "result": 42})"));
}

TEST_F(ControlServerTest, MalformedJsonIsABadRequest) {
  for (std::string_view line : {"", "{", "not json", R"({"version": 1,)", "{'version': 1}",
                                R"({"version": 1, "command": "echo"} trailing)"}) {
    SCOPED_TRACE(line);
    expect_error(run(line), "bad_request");
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(ControlServerTest, NonObjectIsABadRequest) {
  for (std::string_view line : {"[1, 2]", "42", R"("echo")", "null", "true"}) {
    SCOPED_TRACE(line);
    expect_error(run(line), "bad_request");
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(ControlServerTest, MissingOrNonIntegerVersionIsABadRequest) {
  for (std::string_view line : {R"({"command": "echo"})", R"({"version": "1", "command": "echo"})",
                                R"({"version": 1.0, "command": "echo"})",
                                R"({"version": null, "command": "echo"})",
                                R"({"version": [1], "command": "echo"})"}) {
    SCOPED_TRACE(line);
    expect_error(run(line), "bad_request");
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(ControlServerTest, WrongVersionIsUnsupported) {
  for (std::string_view line : {R"({"version": 2, "command": "echo"})",
                                R"({"version": 0, "command": "echo"})",
                                R"({"version": -1, "command": "echo"})"}) {
    SCOPED_TRACE(line);
    std::string message = expect_error(run(line), "unsupported_version");
    EXPECT_NE(message.find('1'), std::string::npos) << "should name the supported version";
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(ControlServerTest, MissingOrNonStringCommandIsABadRequest) {
  expect_error(run(R"({"version": 1})"), "bad_request");
  expect_error(run(R"({"version": 1, "command": 7})"), "bad_request");
  expect_error(run(R"({"version": 1, "command": ["echo"]})"), "bad_request");
  EXPECT_EQ(calls_, 0);
}

TEST_F(ControlServerTest, UnknownCommandIsNamed) {
  std::string message = expect_error(run(R"({"version": 1, "command": "frobnicate"})"),
                                     "unknown_command");
  EXPECT_NE(message.find("frobnicate"), std::string::npos) << message;
  expect_error(run(R"({"version": 1, "command": "ECHO"})"), "unknown_command");
  expect_error(run(R"({"version": 1, "command": ""})"), "unknown_command");
  EXPECT_EQ(calls_, 0);
}

TEST_F(ControlServerTest, ArgsMustBeAnObject) {
  for (std::string_view line : {R"({"version": 1, "command": "echo", "args": [1]})",
                                R"({"version": 1, "command": "echo", "args": "x"})",
                                R"({"version": 1, "command": "echo", "args": 3})"}) {
    SCOPED_TRACE(line);
    expect_error(run(line), "bad_request");
  }
  EXPECT_EQ(calls_, 0);
}

TEST_F(ControlServerTest, HandlerStatusBecomesAnErrorWithItsCodeName) {
  const std::pair<errc, std::string_view> cases[] = {
      {errc::not_found, "not_found"},         {errc::invalid_argument, "invalid_argument"},
      {errc::exists, "exists"},               {errc::busy, "busy"},
      {errc::read_only, "read_only"},         {errc::no_space, "no_space"},
      {errc::not_supported, "not_supported"}, {errc::corruption, "corruption"},
      {errc::io_error, "io_error"},
  };
  for (auto [code, name] : cases) {
    SCOPED_TRACE(name);
    json request = {{"version", 1}, {"command", "fail"}, {"args", {{"code", int(code)}}}};
    EXPECT_EQ(expect_error(run(request.dump()), name), "it failed");
  }
  EXPECT_EQ(calls_, 9);
}

TEST_F(ControlServerTest, HandlerReadingAnArgumentOfTheWrongTypeIsInvalidArgument) {
  std::string message =
      expect_error(run(R"({"version": 1, "command": "add", "args": {"a": "two", "b": 40}})"),
                   "invalid_argument");
  EXPECT_NE(message.find("type"), std::string::npos) << message;
  EXPECT_EQ(calls_, 1);
}

TEST_F(ControlServerTest, HandlerReadingAMissingArgumentIsInvalidArgument) {
  expect_error(run(R"({"version": 1, "command": "add", "args": {"a": 1}})"), "invalid_argument");
}

TEST_F(ControlServerTest, LaterRequestsAreUnaffectedByEarlierErrors) {
  expect_error(run("{"), "bad_request");
  expect_error(run(R"({"version": 1, "command": "add", "args": {}})"), "invalid_argument");
  json reply = run(R"({"version": 1, "command": "add", "args": {"a": 1, "b": 2}})");
  EXPECT_EQ(reply, json::parse(R"({"version": 1, "ok": true, "result": 3})"));
}

TEST_F(ControlServerTest, AddingACommandTwiceReplacesIt) {
  server_.add_command("echo", [](const json&) -> Result<json> { return json("replaced"); });
  EXPECT_EQ(run(R"({"version": 1, "command": "echo"})"),
            json::parse(R"({"version": 1, "ok": true, "result": "replaced"})"));
}

}  // namespace
}  // namespace snapstore
