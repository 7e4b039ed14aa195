// cpp-pacs: a C++ HTTP server (cpp-httplib) that embeds libsia and answers every FHIR,
// DICOMweb and WADO-URI request through sia_handle, as a C++ PACS would. It decides
// nothing about HTTP: status, Content-Type, WWW-Authenticate and every other header come
// from the engine's response, and the body is streamed from the borrowed chunks (frames
// and files straight from the engine's buffers, never copied into a string).
//
//   cpp-pacs [--listen HOST:PORT] [--config FILE] [--db FILE] [--base-url URL] [PATH...]
//
// The arguments are those of `sia serve`: PATHs are indexed before serving, `--db`
// overrides the configuration's `[server] db`, the base URL is the configuration's, or
// http://LISTEN without one. Prints `listening on URL` on stdout when ready, answers
// /healthz itself, logs one line per request (method, path without the query, status)
// on stderr, and stops on SIGINT / SIGTERM.
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "sia.hpp"

namespace {

struct options {
  std::string listen;
  std::string config;
  std::string db;
  std::string base_url;
  std::vector<std::string> paths;
};

[[noreturn]] void usage(const std::string &why) {
  std::cerr << "cpp-pacs: " << why
            << "\nusage: cpp-pacs [--listen HOST:PORT] [--config FILE] [--db FILE] "
               "[--base-url URL] [PATH...]\n";
  std::exit(2);
}

options parse(int argc, char **argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char *name) -> std::string {
      if (i + 1 >= argc) usage(std::string(name) + " needs a value");
      return argv[++i];
    };
    if (a == "--listen") {
      o.listen = value("--listen");
    } else if (a == "--config") {
      o.config = value("--config");
    } else if (a == "--db") {
      o.db = value("--db");
    } else if (a == "--base-url") {
      o.base_url = value("--base-url");
    } else if (a == "-h" || a == "--help") {
      usage("help");
    } else if (!a.empty() && a[0] == '-') {
      usage("unknown option " + a);
    } else {
      o.paths.push_back(a);
    }
  }
  return o;
}

// HOST:PORT (or [v6]:PORT) split at the last colon.
std::pair<std::string, int> split_listen(const std::string &listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) usage("--listen wants HOST:PORT, not " + listen);
  std::string host = listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    int port = std::stoi(listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    return {host, port};
  } catch (const std::exception &) {
    usage("--listen wants HOST:PORT, not " + listen);
  }
}

// Pseudo-headers cpp-httplib adds to each request; not sent by the client.
bool is_pseudo_header(const std::string &name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
         name == "LOCAL_PORT";
}

// Whether `name` is `lower` (lower case) ignoring ASCII case.
bool is_named(std::string_view name, std::string_view lower) {
  return name.size() == lower.size() &&
         std::equal(name.begin(), name.end(), lower.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == y;
         });
}

// Headers cpp-httplib writes itself from the body it sends (Content-Type is given to it
// with the body).
bool is_transport_header(std::string_view name) {
  return is_named(name, "content-length") || is_named(name, "content-type") ||
         is_named(name, "transfer-encoding") || is_named(name, "connection");
}

// One request through the engine. The sia::response is shared with the content
// provider, which writes its chunks from the engine's memory and is released (freeing
// the response) when cpp-httplib is done with the body.
void answer(const sia::engine &engine, const httplib::Request &req, httplib::Response &res) {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(req.headers.size());
  for (const auto &h : req.headers) {
    if (!is_pseudo_header(h.first)) headers.emplace_back(h.first, h.second);
  }
  std::shared_ptr<sia::response> r;
  try {
    r = std::make_shared<sia::response>(engine.handle(req.method, req.target, headers));
  } catch (const sia::error &e) {
    // Arguments the engine refuses before answering (a header that is not UTF-8).
    res.status = e.status() == SIA_ERR_CLOSED ? 503 : 400;
    res.set_content(std::string(e.what()) + "\n", "text/plain; charset=utf-8");
    return;
  }
  res.status = r->status();
  std::string content_type = "application/octet-stream";
  for (std::size_t i = 0; i < r->header_count(); ++i) {
    auto [name, value] = r->header(i);
    if (is_named(name, "content-type")) {
      content_type.assign(value);
    } else if (!is_transport_header(name)) {
      res.headers.emplace(std::string(name), std::string(value));
    }
  }
  if (const char *detail = r->detail()) {
    std::fprintf(stderr, "%s %s: %u: %s\n", req.method.c_str(), req.path.c_str(), r->status(), detail);
  }
  const auto length = static_cast<std::size_t>(r->body_length());
  if (req.method == "HEAD") {
    // No body, but the length a GET would have, as the engine computed it.
    std::string_view content_length = r->header("Content-Length");
    res.set_header("Content-Type", content_type);
    if (!content_length.empty()) res.set_header("Content-Length", std::string(content_length));
    return;
  }
  if (length == 0) {
    res.set_content("", content_type);
    return;
  }
  res.set_content_provider(
      length, content_type,
      [r](std::size_t offset, std::size_t want, httplib::DataSink &sink) {
        // Write the `want` bytes from `offset` (all of the body, or the range a Range
        // request asked for), chunk by chunk; cpp-httplib calls again with the new
        // offset if a write stops early. Never past `offset + want`: anything more would
        // be read by a keep-alive client as the start of the next response.
        const std::size_t end = offset + want;
        std::size_t start = 0;
        for (std::size_t i = 0; i < r->chunk_count() && offset < end; ++i) {
          std::string_view c = r->chunk(i);
          if (offset < start + c.size()) {
            std::size_t skip = offset - std::min(offset, start);
            std::size_t n = std::min(c.size() - skip, end - offset);
            if (!sink.write(c.data() + skip, n)) return false;
            offset += n;
          }
          start += c.size();
        }
        return true;
      },
      [r](bool) {});
}

}  // namespace

int main(int argc, char **argv) {
  options opt = parse(argc, argv);
  // SIGINT / SIGTERM are taken by a thread that stops the server: block them here, so
  // that every thread started later inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  try {
    sia::config config = opt.config.empty() ? sia::config::with_db(opt.db.empty() ? "sia.db" : opt.db)
                                            : sia::config::from_file(opt.config);
    if (!opt.db.empty()) config.set_db(opt.db);
    std::string listen = !opt.listen.empty() ? opt.listen : config.listen();
    if (listen.empty()) listen = "127.0.0.1:8080";
    auto [host, port] = split_listen(listen);

    httplib::Server server;
    unsigned threads = std::max(8u, std::thread::hardware_concurrency() * 2);
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // Headers and body go out in separate writes: without TCP_NODELAY, Nagle's
    // algorithm and the client's delayed ACK stall each response ~40 ms.
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(10000);
    // The engine answers every method but GET and HEAD with 405 and reads no body, so
    // no request needs one: a bigger body is refused (413) instead of buffered whole.
    server.set_payload_max_length(64 * 1024);
    // A client that stops sending frees its thread after 5 s. cpp-httplib times out each
    // read, not the whole request, so a client trickling one byte every few seconds
    // (slowloris) still holds a thread: a PACS on this stack belongs behind a proxy that
    // buffers requests (nginx, HAProxy), as the README says; `sia serve` bounds the time
    // to a whole request head.
    server.set_read_timeout(5, 0);
    server.set_keep_alive_timeout(5);
    if (port == 0) {
      port = server.bind_to_any_port(host);
      if (port < 0) throw std::runtime_error("cannot listen on " + listen);
    } else if (!server.bind_to_port(host, port)) {
      throw std::runtime_error("cannot listen on " + listen);
    }
    std::string url_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    std::string base = "http://" + url_host + ":" + std::to_string(port);
    if (!opt.base_url.empty()) {
      config.set_base_url(opt.base_url);
      base = opt.base_url;
    } else if (opt.config.empty()) {
      config.set_base_url(base);
    }
    sia::engine engine(config);
    if (!opt.paths.empty()) {
      auto report = engine.index(opt.paths);
      std::fprintf(stderr, "indexed %llu, unchanged %llu, removed %llu, duplicates %llu, skipped %llu, conflicts %llu in %.3f s\n",
                   (unsigned long long)report.indexed, (unsigned long long)report.unchanged,
                   (unsigned long long)report.removed, (unsigned long long)report.duplicates,
                   (unsigned long long)report.skipped, (unsigned long long)report.conflicts,
                   report.seconds);
    }

    server.Get("/healthz", [](const httplib::Request &, httplib::Response &res) {
      res.set_content("ok\n", "text/plain; charset=utf-8");
    });
    auto through_engine = [&engine](const httplib::Request &req, httplib::Response &res) {
      answer(engine, req, res);
    };
    server.Get(".*", through_engine);
    server.Post(".*", through_engine);
    server.Put(".*", through_engine);
    server.Patch(".*", through_engine);
    server.Delete(".*", through_engine);
    server.Options(".*", through_engine);
    server.set_logger([](const httplib::Request &req, const httplib::Response &res) {
      // The path only: a query may carry a token.
      std::fprintf(stderr, "%s %s %d\n", req.method.c_str(), req.path.c_str(), res.status);
    });

    std::thread stopper([&server, stop_signals] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      server.stop();
    });
    std::printf("cpp-pacs (libsia %s): listening on %s\n", sia_version(), base.c_str());
    std::fflush(stdout);
    bool ok = server.listen_after_bind();
    // The stopper waits for a signal: send one if the server ended by itself.
    if (!ok) pthread_kill(stopper.native_handle(), SIGTERM);
    stopper.join();
    return ok ? 0 : 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "cpp-pacs: %s\n", e.what());
    return 1;
  }
}
