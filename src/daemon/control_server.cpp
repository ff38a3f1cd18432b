// Control socket: line-delimited JSON requests. See control_server.h.
#include "daemon/control_server.h"

#include "nbd/unix_listener.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

namespace snapstore {

namespace asio = boost::asio;
using json = nlohmann::json;

std::string error_code_name(errc code) {
  switch (code) {
    case errc::not_found: return "not_found";
    case errc::invalid_argument: return "invalid_argument";
    case errc::exists: return "exists";
    case errc::busy: return "busy";
    case errc::read_only: return "read_only";
    case errc::no_space: return "no_space";
    case errc::not_supported: return "not_supported";
    case errc::corruption: return "corruption";
    default: return "io_error";
  }
}

namespace {

std::string error_reply(const std::string& code, const std::string& message) {
  return json{{"version", control_protocol_version},
              {"ok", false},
              {"error", {{"code", code}, {"message", message}}}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

ControlServer::ControlServer(asio::io_context& io, ControlServerOptions options)
    : io_(io), options_(options) {}

ControlServer::~ControlServer() {
  worker_.stop();
  worker_.join();
  if (!path_.empty()) ::unlink(path_.c_str());
}

void ControlServer::add_command(std::string name, Handler handler) {
  commands_[std::move(name)] = std::move(handler);
}

// Checks the request's framing fields and finds its handler; an error reply otherwise.
std::variant<ControlServer::Call, std::string> ControlServer::parse_request(
    std::string_view line) const {
  json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object())
    return error_reply("bad_request", "request is not a JSON object");
  auto version = request.find("version");
  if (version == request.end() || !version->is_number_integer())
    return error_reply("bad_request", "request has no integer \"version\"");
  if (*version != control_protocol_version)
    return error_reply("unsupported_version",
                       "this daemon speaks control protocol version " +
                           std::to_string(control_protocol_version));
  auto command = request.find("command");
  if (command == request.end() || !command->is_string())
    return error_reply("bad_request", "request has no string \"command\"");
  auto it = commands_.find(command->get<std::string>());
  if (it == commands_.end())
    return error_reply("unknown_command", "unknown command '" + command->get<std::string>() + "'");
  json args = request.value("args", json::object());
  if (!args.is_object()) return error_reply("bad_request", "\"args\" must be an object");
  return Call{&it->second, std::move(args)};
}

std::string ControlServer::run(const Call& call) {
  try {
    Result<json> result = (*call.handler)(call.args);
    if (!result) return error_reply(error_code_name(result.status().code()), result.status().message());
    return json{{"version", control_protocol_version}, {"ok", true}, {"result", *result}}.dump(
        -1, ' ', false, json::error_handler_t::replace);
  } catch (const json::exception& e) {  // a handler read an argument of the wrong type
    return error_reply("invalid_argument", e.what());
  } catch (const std::exception& e) {  // nothing a handler throws may reach a thread's top
    return error_reply("internal_error", e.what());
  }
}

std::string ControlServer::handle_line(std::string_view line) const {
  auto parsed = parse_request(line);
  if (auto* reply = std::get_if<std::string>(&parsed)) return *reply;
  return run(std::get<Call>(parsed));
}

Status ControlServer::listen(const std::filesystem::path& path, unsigned mode, int gid) {
  auto acceptor = listen_unix_socket(io_, path, mode, gid);
  if (!acceptor) return acceptor.status();
  acceptor_ = std::move(acceptor).value();
  path_ = path;
  spdlog::info("control socket on {}", path.string());
  asio::co_spawn(io_, accept_loop(), asio::detached);
  return Status::ok();
}

void ControlServer::stop() {
  asio::post(io_, [this] {
    boost::system::error_code ec;
    if (acceptor_) acceptor_->close(ec);
    for (auto& w : clients_)
      if (auto s = w.lock()) s->close(ec);
    clients_.clear();
    if (!path_.empty()) ::unlink(path_.c_str());
    path_.clear();
  });
}

asio::awaitable<void> ControlServer::accept_loop() {
  for (;;) {
    boost::system::error_code ec;
    auto socket = co_await acceptor_->async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
    if (ec) continue;
    auto shared = std::make_shared<asio::local::stream_protocol::socket>(std::move(socket));
    std::erase_if(clients_, [](auto& w) { return w.expired(); });
    if (clients_.size() >= options_.max_clients) {
      // Told why, then closed; the write is small enough never to block.
      std::string reply = error_reply("busy", "too many control clients (at most " +
                                                  std::to_string(options_.max_clients) + ")") +
                          '\n';
      asio::write(*shared, asio::buffer(reply), ec);
      shared->close(ec);
      continue;
    }
    clients_.push_back(shared);
    asio::co_spawn(io_, serve(std::move(shared)), asio::detached);
  }
}

// Runs the handler on the worker thread; resumes on the io thread with the reply.
// (A plain post there and back: Boost 1.74's co_spawn onto another executor, awaited from
// this coroutine, corrupts its frame recycling.)
asio::awaitable<std::string> ControlServer::run_on_worker(Call call) {
  auto initiate = [this](auto handler, Call call) {
    auto work = asio::make_work_guard(handler);  // keeps the io side running meanwhile
    asio::post(worker_, [handler = std::move(handler), work = std::move(work),
                         call = std::move(call)]() mutable {
      std::string reply = run(call);
      auto io = work.get_executor();
      asio::post(io, [handler = std::move(handler), reply = std::move(reply)]() mutable {
        std::move(handler)(std::move(reply));
      });
    });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::string)>(
      initiate, asio::use_awaitable, std::move(call));
}

asio::awaitable<void> ControlServer::serve(socket_ptr socket) {
  std::string buffer;
  for (;;) {
    boost::system::error_code ec;
    std::size_t n = co_await asio::async_read_until(
        *socket, asio::dynamic_buffer(buffer, options_.max_request_bytes + 1), '\n',
        asio::redirect_error(asio::use_awaitable, ec));
    std::string reply;
    bool close_after = false;
    if (ec == asio::error::not_found) {  // the line outgrew the limit
      reply = error_reply("request_too_large",
                          "request longer than " + std::to_string(options_.max_request_bytes) +
                              " bytes");
      close_after = true;
    } else if (ec) {
      co_return;
    } else {
      std::string line = buffer.substr(0, n - 1);
      buffer.erase(0, n);
      if (!line.empty() && line.back() == '\r') line.pop_back();  // tolerate CRLF clients
      auto parsed = parse_request(line);  // here: a bad request never waits for a handler
      if (auto* error = std::get_if<std::string>(&parsed))
        reply = std::move(*error);
      else
        reply = co_await run_on_worker(std::move(std::get<Call>(parsed)));
    }
    reply += '\n';
    co_await asio::async_write(*socket, asio::buffer(reply),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec || close_after) co_return;
  }
}

}  // namespace snapstore
