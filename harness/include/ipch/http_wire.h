// What the battery's hostile-HTTP cases need to know about a transport whose wire is HTTP/1.1,
// as plain values an adapter's hooks return (docs/new-transport.md, "HTTP transports"). The
// harness frames them (Host, Content-Length or chunked) and sends or forges them itself.
#pragma once

#include <string>
#include <vector>

#include "ipch/transport.h"

namespace ipch {

// Which call of the transport made a request (an adapter's HttpCallOf hook tells).
enum class HttpCall { kConnect, kSend, kReceive, kClose, kOther };

// One header of the protocol's own (not a framing header: those are the harness's to add).
struct HttpField {
  std::string name;
  std::string value;
  bool optional = false;  // requests: a server must take the request without it
};

// A request as a well-behaved client makes it.
struct HttpWireRequest {
  std::string method;
  std::string target;   // path and query
  std::string session;  // the part of `target` that names the session ("" if none)
  std::vector<HttpField> fields;
  Bytes body;
};

// An answer as a genuine server gives it.
struct HttpWireAnswer {
  int status = 200;
  std::vector<HttpField> fields;
  Bytes body;
};

}  // namespace ipch
