// Fuzzes the http transport's server handler (http::HandleRequest) and client decoder
// (http::DecodeResponse) without sockets. The input is lines: the first is "METHOD PATH", then
// "name: value" headers (and "?key=value" query lines) up to an empty line, then the body. The
// same server state serves every request in the input, after one valid connect, so the fuzzer
// reaches the session paths. Wait budgets are forced to 0: the handler must never block then.
// Invariants: every answer is a valid status; a 4xx/5xx changes nothing a later valid request
// can see wrongly; decoding the answer as each client operation never crashes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "transports/http/http.h"

namespace {
void Require(bool ok) {
  if (!ok) std::abort();
}

ipch::http::HttpRequest Parse(std::string_view in) {
  ipch::http::HttpRequest r;
  auto line = [&]() {
    const auto nl = in.find('\n');
    std::string_view l = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    return l;
  };
  std::string_view first = line();
  const auto sp = first.find(' ');
  r.method = std::string(first.substr(0, sp));
  if (sp != std::string_view::npos) r.path = std::string(first.substr(sp + 1));
  for (std::string_view l = line(); !l.empty(); l = line()) {
    if (l[0] == '?') {
      const auto eq = l.find('=');
      r.query[std::string(l.substr(1, eq == std::string_view::npos ? std::string_view::npos : eq - 1))] =
          eq == std::string_view::npos ? "" : std::string(l.substr(eq + 1));
      continue;
    }
    const auto colon = l.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(l.substr(0, colon));
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = l.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    r.headers[name] = std::string(value);
  }
  r.body = std::string(in);
  r.headers["x-ipch-wait-ms"] = "0";
  r.query["wait_ms"] = "0";
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipch::http;
  ServerState state(4096, 16384);
  HttpRequest connect;
  connect.method = "POST";
  connect.path = "/v1/connect";
  const HttpResponse session = HandleRequest(state, connect);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Several requests, separated by a line "%%"; "@" in a path stands for the live session id.
  while (true) {
    const auto sep = in.find("\n%%\n");
    HttpRequest req = Parse(in.substr(0, sep));
    for (auto at = req.path.find('@'); at != std::string::npos; at = req.path.find('@'))
      req.path.replace(at, 1, session.session);
    const HttpResponse resp = HandleRequest(state, req);
    Require(resp.status >= 100 && resp.status <= 599);
    for (Op op : {Op::Connect, Op::Send, Op::Receive, Op::Close}) {
      Decoded d;
      (void)DecodeResponse(op, resp.status, resp.headers, resp.body, &d, "fuzz");
    }
    if (sep == std::string_view::npos) break;
    in = in.substr(sep + 4);
  }
  state.Stop();
  return 0;
}
