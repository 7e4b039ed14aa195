// sia.hpp: header-only C++17 RAII wrappers over sia.h. Every object owns one libsia
// handle and frees it in its destructor; failures throw sia::error with the library's
// status and message. Views (sia::response chunks, header fields) borrow from the
// object they came from and stay valid while it lives.
//
// Thread safety is that of sia.h: an sia::engine may be used from any number of threads
// at once; a response may be read from several threads but destroyed by one.
#ifndef SIA_HPP
#define SIA_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sia.h"

namespace sia {

// A failed libsia call: the status code and sia_last_error_message() of that call.
class error : public std::runtime_error {
 public:
  error(sia_status status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  sia_status status() const noexcept { return status_; }

 private:
  sia_status status_;
};

// Throws sia::error when `status` is not SIA_OK.
inline void check(sia_status status) {
  if (status != SIA_OK) {
    throw error(status, std::string(sia_status_str(status)) + ": " + sia_last_error_message());
  }
}

namespace detail {
struct config_free {
  void operator()(sia_config *c) const noexcept { sia_config_free(c); }
};
struct engine_close {
  void operator()(sia_engine *e) const noexcept { sia_engine_close(e); }
};
struct response_free {
  void operator()(sia_response *r) const noexcept { sia_response_free(r); }
};
struct decision_free {
  void operator()(sia_decision *d) const noexcept { sia_decision_free(d); }
};
struct frames_free {
  void operator()(sia_frames *f) const noexcept { sia_frames_free(f); }
};
struct string_free {
  void operator()(char *s) const noexcept { sia_string_free(s); }
};
// A string returned by libsia as std::string (copied once; JSON documents).
inline std::string take_string(char *s, std::size_t len) {
  std::unique_ptr<char, string_free> owned(s);
  return std::string(owned.get(), len);
}
}  // namespace detail

// An engine configuration (sia_config).
class config {
 public:
  // Defaults with the index at `db_path`; no token checks (serves everything).
  static config with_db(const std::string &db_path) {
    sia_config *c = nullptr;
    check(sia_config_new(db_path.c_str(), &c));
    return config(c);
  }
  // TOML text; relative paths resolve against `base_dir`.
  static config from_toml(const std::string &toml, const std::string &base_dir) {
    sia_config *c = nullptr;
    check(sia_config_from_toml(toml.data(), toml.size(), base_dir.c_str(), &c));
    return config(c);
  }
  // A TOML configuration file (`sia serve --config` format).
  static config from_file(const std::string &path) {
    sia_config *c = nullptr;
    check(sia_config_from_file(path.c_str(), &c));
    return config(c);
  }
  void set_db(const std::string &db_path) { check(sia_config_set_db(ptr_.get(), db_path.c_str())); }
  void set_base_url(const std::string &url) { check(sia_config_set_base_url(ptr_.get(), url.c_str())); }
  // `[server] listen`, or empty.
  std::string listen() const {
    const char *l = sia_config_listen(ptr_.get());
    return l ? l : "";
  }
  const sia_config *get() const noexcept { return ptr_.get(); }

 private:
  explicit config(sia_config *c) : ptr_(c) {}
  std::unique_ptr<sia_config, detail::config_free> ptr_;
};

// A response of sia_handle: status, header fields and body chunks borrowed from it.
class response {
 public:
  explicit response(sia_response *r) : ptr_(r) {}
  std::uint16_t status() const noexcept { return sia_response_status(ptr_.get()); }
  std::size_t header_count() const noexcept { return sia_response_header_count(ptr_.get()); }
  // Header field `i` as views valid while this response lives.
  std::pair<std::string_view, std::string_view> header(std::size_t i) const {
    sia_header h{};
    check(sia_response_header(ptr_.get(), i, &h));
    return {std::string_view(h.name, h.name_len), std::string_view(h.value, h.value_len)};
  }
  // The first value of header `name` (case-insensitive), or empty.
  std::string_view header(std::string_view name) const {
    for (std::size_t i = 0; i < header_count(); ++i) {
      auto [n, v] = header(i);
      if (n.size() == name.size() && equal_ignoring_case(n, name)) return v;
    }
    return {};
  }
  std::size_t chunk_count() const noexcept { return sia_response_chunk_count(ptr_.get()); }
  // Body chunk `i`: a view into the engine's buffer or mapping, valid while this lives.
  std::string_view chunk(std::size_t i) const {
    sia_bytes b{};
    check(sia_response_chunk(ptr_.get(), i, &b));
    return std::string_view(reinterpret_cast<const char *>(b.data), b.len);
  }
  std::uint64_t body_length() const noexcept { return sia_response_body_length(ptr_.get()); }
  // The whole body, copied (for tests and small bodies).
  std::string body() const {
    std::string out;
    out.reserve(static_cast<std::size_t>(body_length()));
    for (std::size_t i = 0; i < chunk_count(); ++i) out.append(chunk(i));
    return out;
  }
  // For the host's log only (never the client): what the engine did not tell the client.
  const char *detail() const noexcept { return sia_response_detail(ptr_.get()); }
  const sia_response *get() const noexcept { return ptr_.get(); }

 private:
  static bool equal_ignoring_case(std::string_view a, std::string_view b) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
      if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
  }
  std::unique_ptr<sia_response, detail::response_free> ptr_;
};

// An authorization decision (sia_decision): allowed (then a grant for the typed reads)
// or denied with its HTTP status, reason and WWW-Authenticate challenge.
class decision {
 public:
  explicit decision(sia_decision *d) : ptr_(d) {}
  // Everything allowed (no issuers configured).
  static decision local() {
    sia_decision *d = nullptr;
    check(sia_decision_local(&d));
    return decision(d);
  }
  bool allowed() const noexcept { return sia_decision_allowed(ptr_.get()); }
  std::uint16_t http_status() const noexcept { return sia_decision_http_status(ptr_.get()); }
  std::string reason() const {
    const char *r = sia_decision_reason(ptr_.get());
    return r ? r : "";
  }
  std::string challenge() const {
    const char *c = sia_decision_challenge(ptr_.get());
    return c ? c : "";
  }
  const sia_decision *get() const noexcept { return ptr_.get(); }

 private:
  std::unique_ptr<sia_decision, detail::decision_free> ptr_;
};

// Frames of sia_frames_get: views valid while this object lives.
class frames {
 public:
  explicit frames(sia_frames *f) : ptr_(f) {}
  std::size_t size() const noexcept { return sia_frames_count(ptr_.get()); }
  sia_frame operator[](std::size_t i) const {
    sia_frame f{};
    check(sia_frames_frame(ptr_.get(), i, &f));
    return f;
  }
  static std::string_view bytes(const sia_frame &f) {
    return std::string_view(reinterpret_cast<const char *>(f.data), f.len);
  }

 private:
  std::unique_ptr<sia_frames, detail::frames_free> ptr_;
};

// Progress of an index run; return false to cancel it.
using progress_fn = std::function<bool(const sia_index_progress &)>;

// An open engine (sia_engine); closed by the destructor.
class engine {
 public:
  explicit engine(const config &c) {
    sia_engine *e = nullptr;
    check(sia_engine_open(c.get(), &e));
    ptr_.reset(e);
  }
  // Indexes files and folders; `progress` (optional) may cancel (sia::error with
  // SIA_ERR_CANCELLED). An exception thrown by `progress` cancels the run and is
  // rethrown here.
  sia_index_report index(const std::vector<std::string> &paths, progress_fn progress = {}) const {
    std::vector<const char *> raw;
    raw.reserve(paths.size());
    for (const auto &p : paths) raw.push_back(p.c_str());
    struct state {
      progress_fn *fn;
      std::exception_ptr thrown;
    } st{&progress, nullptr};
    auto trampoline = [](const sia_index_progress *p, void *user) -> int32_t {
      auto *s = static_cast<state *>(user);
      try {
        return (*s->fn)(*p) ? 0 : 1;
      } catch (...) {
        s->thrown = std::current_exception();  // never unwind into Rust
        return 1;
      }
    };
    sia_index_report report{};
    sia_status status = sia_index(ptr_.get(), raw.data(), raw.size(),
                                  progress ? +trampoline : nullptr, &st, &report);
    if (st.thrown) std::rethrow_exception(st.thrown);
    check(status);
    return report;
  }
  // Answers one HTTP request (`target` is path?query) with header fields.
  response handle(const std::string &method, const std::string &target,
                  const std::vector<std::pair<std::string, std::string>> &headers = {}) const {
    auto q = target.find('?');
    std::string path = target.substr(0, q);
    std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    std::vector<sia_header> fields;
    fields.reserve(headers.size());
    for (const auto &h : headers) {
      fields.push_back({h.first.data(), h.first.size(), h.second.data(), h.second.size()});
    }
    sia_request req{method.c_str(), path.c_str(), query.c_str(), fields.data(), fields.size()};
    sia_response *r = nullptr;
    check(sia_handle(ptr_.get(), &req, &r));
    return response(r);
  }
  // The decision for `authorization` (an Authorization header value, empty for none)
  // reading `study_uid`, or searching ImagingStudy when `study_uid` is empty.
  decision authorize(const std::string &authorization, const std::string &study_uid = "") const {
    sia_decision *d = nullptr;
    check(sia_authorize(ptr_.get(), authorization.empty() ? nullptr : authorization.c_str(),
                        study_uid.empty() ? nullptr : study_uid.c_str(), &d));
    return decision(d);
  }
  // FHIR ImagingStudy search (decoded name/value pairs): a searchset Bundle as JSON.
  std::string search_imaging_studies(const decision &grant,
                                     const std::vector<std::pair<std::string, std::string>> &params = {}) const {
    std::vector<sia_param> raw;
    for (const auto &p : params) raw.push_back({p.first.c_str(), p.second.c_str()});
    char *json = nullptr;
    std::size_t len = 0;
    check(sia_search_imaging_studies(ptr_.get(), grant.get(), raw.data(), raw.size(), &json, &len));
    return detail::take_string(json, len);
  }
  // DICOM JSON metadata of a study, series (non-empty series_uid) or instance.
  std::string metadata(const decision &grant, const std::string &study_uid, const std::string &series_uid = "",
                       const std::string &sop_instance_uid = "") const {
    char *json = nullptr;
    std::size_t len = 0;
    check(sia_metadata(ptr_.get(), grant.get(), study_uid.c_str(),
                       series_uid.empty() ? nullptr : series_uid.c_str(),
                       sop_instance_uid.empty() ? nullptr : sop_instance_uid.c_str(), &json, &len));
    return detail::take_string(json, len);
  }
  // Frames (1-based numbers) of an instance; `accept` empty accepts anything.
  sia::frames frames(const decision &grant, const std::string &study_uid, const std::string &series_uid,
                     const std::string &sop_instance_uid, const std::vector<std::uint32_t> &numbers,
                     const std::string &accept = "") const {
    sia_frames *f = nullptr;
    check(sia_frames_get(ptr_.get(), grant.get(), study_uid.c_str(), series_uid.c_str(),
                         sop_instance_uid.c_str(), numbers.data(), numbers.size(), accept.c_str(), &f));
    return sia::frames(f);
  }
  const sia_engine *get() const noexcept { return ptr_.get(); }

 private:
  std::unique_ptr<sia_engine, detail::engine_close> ptr_;
};

}  // namespace sia

#endif  // SIA_HPP
