// The C++17 consumer test of libsia: RAII wrappers (sia.hpp) over the C ABI, used as a
// C++ PACS would. It indexes a generated folder (`sia demo DIR`), answers requests
// through sia_handle, reads frames from 8 threads at once, and drives every error path
// of the ABI (NULL, invalid UTF-8, closed handles, cancelling callbacks). Run by
// scripts/test-cpp linked dynamically and statically, under valgrind and with
// -fsanitize=address,undefined.
//
//   consumer DEMO_DIR WORK_DIR AUTH_CONFIG
// AUTH_CONFIG: a configuration with one HS256 issuer whose index has the demo set and
// Patient/123 linked to DEMO-001; SIA_CPP_TOKEN (patient 123, ImagingStudy.rs),
// SIA_CPP_TOKEN_OTHER (patient 456), SIA_CPP_TOKEN_EXPIRED, SIA_CPP_TOKEN_READ_ONLY
// (ImagingStudy.r): tokens of that issuer. SIA_CPP_ROUNDS: frame requests per thread
// per instance (default 20).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sia.hpp"

namespace {

int failures = 0;

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                               \
    }                                                                           \
  } while (0)

#define CHECK_STATUS(call, want)                                                   \
  do {                                                                             \
    sia_status got_ = (call);                                                      \
    if (got_ != (want)) {                                                          \
      std::fprintf(stderr, "%s:%d: %s returned %d (%s), want %d\n", __FILE__, __LINE__, \
                   #call, got_, sia_last_error_message(), (want));                 \
      ++failures;                                                                  \
    }                                                                              \
  } while (0)

// Every value of DICOM JSON attribute `tag` in `json` (a QIDO answer), by string scan:
// "TAG":{"vr":"UI","Value":["..."]}.
std::vector<std::string> values_of(const std::string &json, const std::string &tag) {
  std::vector<std::string> out;
  std::string key = "\"" + tag + "\"";
  for (auto at = json.find(key); at != std::string::npos; at = json.find(key, at + 1)) {
    auto v = json.find("\"Value\":[\"", at);
    if (v == std::string::npos) break;
    v += 10;
    out.push_back(json.substr(v, json.find('"', v) - v));
  }
  return out;
}

struct instance {
  std::string study, series, sop;
  std::string frames_path() const {
    return "/dicom-web/studies/" + study + "/series/" + series + "/instances/" + sop + "/frames/1";
  }
};

std::vector<instance> instances_of(const sia::engine &engine) {
  std::vector<instance> out;
  auto studies = engine.handle("GET", "/dicom-web/studies");
  for (const auto &st : values_of(studies.body(), "0020000D")) {
    auto series = engine.handle("GET", "/dicom-web/studies/" + st + "/series");
    for (const auto &se : values_of(series.body(), "0020000E")) {
      auto insts = engine.handle("GET", "/dicom-web/studies/" + st + "/series/" + se + "/instances");
      for (const auto &sop : values_of(insts.body(), "00080018")) out.push_back({st, se, sop});
    }
  }
  return out;
}

void test_version() {
  CHECK(std::strcmp(sia_version(), SIA_VERSION_STRING) == 0);
  CHECK(sia_version_number() == SIA_VERSION_NUMBER);
  CHECK(SIA_VERSION_NUMBER == SIA_VERSION_MAJOR * 1000000 + SIA_VERSION_MINOR * 1000 + SIA_VERSION_PATCH);
}

void test_index(const std::string &demo, const std::string &work) {
  auto config = sia::config::with_db(work + "/index-test.db");
  sia::engine engine(config);
  // Called after each file written (files_done one more, its path given), and every
  // 100 ms while nothing is written (files_done repeats): a slow run (valgrind) sees more
  // calls than files.
  std::uint64_t advances = 0, last_done = 0;
  bool monotonic = true;
  auto report = engine.index({demo}, [&](const sia_index_progress &p) {
    if (p.files_done > last_done) {
      ++advances;
      monotonic = monotonic && p.files_done == last_done + 1 && p.current_path_len > 0;
    } else {
      monotonic = monotonic && p.files_done == last_done;
    }
    last_done = p.files_done;
    return true;
  });
  CHECK(report.indexed >= 40);
  CHECK(advances == report.indexed && last_done == report.indexed);
  CHECK(monotonic);
  CHECK(report.skipped == 0 && report.conflicts == 0);
  auto again = engine.index({demo});
  CHECK(again.indexed == 0);
  CHECK(again.unchanged == report.indexed);

  // Cancelled from the callback: SIA_ERR_CANCELLED, the index consistent, a rerun
  // completes the work.
  sia::engine fresh(sia::config::with_db(work + "/cancel-test.db"));
  try {
    fresh.index({demo}, [](const sia_index_progress &) { return false; });
    CHECK(!"a cancelling callback must fail the run");
  } catch (const sia::error &e) {
    CHECK(e.status() == SIA_ERR_CANCELLED);
  }
  auto rerun = fresh.index({demo});
  CHECK(rerun.indexed + rerun.unchanged == report.indexed);
  auto all = fresh.handle("GET", "/dicom-web/instances?limit=1000");
  CHECK(values_of(all.body(), "00080018").size() == report.indexed);

  // An exception thrown by the callback cancels the run and comes back to the caller.
  sia::engine third(sia::config::with_db(work + "/throw-test.db"));
  bool thrown = false;
  try {
    third.index({demo}, [](const sia_index_progress &) -> bool { throw std::runtime_error("stop"); });
  } catch (const std::runtime_error &e) {
    thrown = std::string(e.what()) == "stop";
  }
  CHECK(thrown);
}

void test_handle(const sia::engine &engine) {
  auto r = engine.handle(
      "GET", "/fhir/ImagingStudy?patient.identifier=urn:oid:2.25.228146457203842916711418316839742735.999|DEMO-002");
  CHECK(r.status() == 200);
  CHECK(r.header("content-type") == "application/fhir+json");
  std::string body = r.body();
  CHECK(body.size() == r.body_length());
  CHECK(std::to_string(body.size()) == std::string(r.header("Content-Length")));
  CHECK(body.find("\"type\":\"searchset\"") != std::string::npos);
  CHECK(body.find("DEMO-002") != std::string::npos);
  CHECK(body.find("DEMO-001") == std::string::npos);
  // Header iteration covers every field, and names come NUL-terminated as well.
  std::set<std::string> names;
  for (std::size_t i = 0; i < r.header_count(); ++i) {
    sia_header h{};
    CHECK_STATUS(sia_response_header(r.get(), i, &h), SIA_OK);
    CHECK(std::strlen(h.name) == h.name_len && std::strlen(h.value) == h.value_len);
    names.insert(std::string(h.name, h.name_len));
  }
  CHECK(names.count("Content-Type") == 1 && names.count("Content-Length") == 1);

  auto missing = engine.handle("GET", "/dicom-web/studies/1.2.3/metadata");
  CHECK(missing.status() == 404);
  auto post = engine.handle("POST", "/dicom-web/studies");
  CHECK(post.status() == 405);
  auto head = engine.handle("HEAD", "/fhir/ImagingStudy");
  CHECK(head.status() == 200 && head.chunk_count() == 0 && !head.header("Content-Length").empty());
}

// 8 threads read frame 1 of every instance, again and again, through sia_handle and
// sia_frames_get by turns; every answer must equal the one read before the threads
// started.
void test_frames_from_8_threads(const sia::engine &engine, const std::vector<instance> &all) {
  // Single-part: the body is the frame itself (a multipart boundary is fresh per response).
  const char *accept = "application/octet-stream; transfer-syntax=*";
  std::map<std::string, std::string> expected;
  for (const auto &i : all) {
    auto r = engine.handle("GET", i.frames_path(), {{"Accept", accept}});
    if (r.status() == 200) expected[i.frames_path()] = r.body();
  }
  CHECK(expected.size() >= 30);
  std::map<std::string, const instance *> by_path;
  for (const auto &i : all) by_path[i.frames_path()] = &i;
  const auto local = sia::decision::local();
  const char *env = std::getenv("SIA_CPP_ROUNDS");
  const int rounds = env ? std::atoi(env) : 20;
  std::atomic<int> bad{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < rounds; ++round) {
        for (const auto &[path, body] : expected) {
          try {
            if (round % 2 == 1) {
              // Odd rounds: the typed call, sharing one decision across the threads.
              const auto &i = by_path.at(path);
              auto f = engine.frames(local, i->study, i->series, i->sop, {1}, accept);
              if (f.size() != 1 || sia::frames::bytes(f[0]) != body) ++bad;
              ++done;
              continue;
            }
            auto r = engine.handle("GET", path, {{"Accept", accept}});
            // Compare chunk by chunk: the views point into the engine's memory.
            std::size_t at = 0;
            bool same = r.status() == 200 && r.body_length() == body.size();
            for (std::size_t c = 0; same && c < r.chunk_count(); ++c) {
              std::string_view chunk = r.chunk(c);
              same = body.compare(at, chunk.size(), chunk.data(), chunk.size()) == 0;
              at += chunk.size();
            }
            if (!same) ++bad;
            ++done;
          } catch (const sia::error &e) {
            std::fprintf(stderr, "thread %d: %s\n", t, e.what());
            ++bad;
          }
        }
      }
    });
  }
  for (auto &th : threads) th.join();
  CHECK(bad == 0);
  CHECK(done == 8 * rounds * static_cast<int>(expected.size()));
}

// A response keeps its chunks valid after the engine is closed: it owns what they point
// into.
void test_response_outlives_engine(const std::string &db, const instance &i) {
  sia::response kept(nullptr);
  std::string before;
  {
    sia::engine engine(sia::config::with_db(db));
    auto r = engine.handle("GET", i.frames_path());
    before = r.body();
    kept = std::move(r);
  }
  CHECK(kept.status() == 200);
  CHECK(kept.body() == before);
}

// The typed calls answer as sia_handle does: same studies, same metadata, same frame bytes.
void test_typed_calls(const sia::engine &engine, const std::vector<instance> &all) {
  auto local = sia::decision::local();
  CHECK(local.allowed() && local.http_status() == 200 && local.reason().empty());
  std::string bundle = engine.search_imaging_studies(local);
  CHECK(bundle.find("\"total\":4") != std::string::npos);
  std::string one = engine.search_imaging_studies(
      local, {{"patient.identifier", "urn:oid:2.25.228146457203842916711418316839742735.999|DEMO-002"}});
  CHECK(one.find("\"total\":1") != std::string::npos && one.find("DEMO-002") != std::string::npos);
  try {
    engine.search_imaging_studies(local, {{"no-such-parameter", "1"}});
    CHECK(!"an unknown search parameter must fail");
  } catch (const sia::error &e) {
    CHECK(e.status() == SIA_ERR_INVALID_ARGUMENT);
  }
  const instance &i = all.front();
  std::string meta = engine.metadata(local, i.study, i.series, i.sop);
  CHECK(meta.front() == '[' && meta.find(i.sop) != std::string::npos);
  auto via_handle = engine.handle("GET", "/dicom-web/studies/" + i.study + "/series/" + i.series +
                                              "/instances/" + i.sop + "/metadata");
  CHECK(via_handle.status() == 200 && via_handle.body() == meta);
  std::string study_meta = engine.metadata(local, i.study);
  CHECK(study_meta.find(i.sop) != std::string::npos);

  std::size_t compared = 0, native = 0;
  for (const auto &inst : all) {
    const std::string accept = "application/octet-stream; transfer-syntax=*";
    auto r = engine.handle("GET", inst.frames_path(), {{"Accept", accept}});
    if (r.status() != 200) continue;
    auto f = engine.frames(local, inst.study, inst.series, inst.sop, {1}, accept);
    // Without an Accept, the same bytes (stored syntax) under the syntax's own media type.
    auto any = engine.frames(local, inst.study, inst.series, inst.sop, {1});
    CHECK(any.size() == 1 && sia::frames::bytes(any[0]) == r.body());
    CHECK(f.size() == 1);
    sia_frame fr = f[0];
    CHECK(fr.number == 1);
    CHECK(sia::frames::bytes(fr) == r.body());
    CHECK(std::string(fr.content_type) == std::string(r.header("Content-Type")));
    if (std::string(fr.transfer_syntax) == "1.2.840.10008.1.2.1") {
      CHECK(fr.len == std::size_t(fr.rows) * fr.columns * fr.samples_per_pixel * (fr.bits_allocated / 8));
      CHECK(std::strlen(fr.photometric_interpretation) > 0);
      ++native;
    }
    ++compared;
  }
  CHECK(compared >= 30 && native >= 20);
  // Several frames in the order asked, frames the instance lacks left out.
  try {
    engine.frames(local, i.study, i.series, i.sop, {999999});
    CHECK(!"a missing frame must fail");
  } catch (const sia::error &e) {
    CHECK(e.status() == SIA_ERR_NOT_FOUND);
  }
}

// Tokens (HS256, made by scripts/test-cpp with openssl) against a configuration with
// one issuer; Patient/123 is linked to DEMO-001 (studies .1 and .2).
void test_authorization(const std::string &config_path) {
  auto env = [](const char *name) {
    const char *v = std::getenv(name);
    if (!v) {
      std::fprintf(stderr, "%s is not set (scripts/test-cpp sets it)\n", name);
      ++failures;
      return std::string();
    }
    return std::string(v);
  };
  const std::string ok = "Bearer " + env("SIA_CPP_TOKEN"), other = "Bearer " + env("SIA_CPP_TOKEN_OTHER"),
                    expired = "Bearer " + env("SIA_CPP_TOKEN_EXPIRED"), read_only = "Bearer " + env("SIA_CPP_TOKEN_READ_ONLY");
  const std::string root = "2.25.228146457203842916711418316839742735";
  sia::engine engine(sia::config::from_file(config_path));

  auto none = engine.authorize("", root + ".1");
  CHECK(!none.allowed() && none.http_status() == 401);
  CHECK(none.challenge().rfind("Bearer", 0) == 0);
  auto garbage = engine.authorize("Bearer not.a.token", root + ".1");
  CHECK(!garbage.allowed() && garbage.http_status() == 401);
  CHECK(garbage.challenge().find("invalid_token") != std::string::npos);
  CHECK(garbage.reason().find("not.a.token") == std::string::npos);
  auto late = engine.authorize(expired, root + ".1");
  CHECK(!late.allowed() && late.http_status() == 401);
  auto own = engine.authorize(ok, root + ".1");
  CHECK(own.allowed() && own.http_status() == 200 && own.challenge().empty());
  auto foreign = engine.authorize(ok, root + ".3");
  CHECK(!foreign.allowed() && foreign.http_status() == 403);
  auto stranger = engine.authorize(other, root + ".1");
  CHECK(!stranger.allowed() && stranger.http_status() == 403);
  auto no_search = engine.authorize(read_only);
  CHECK(!no_search.allowed() && no_search.http_status() == 403);
  CHECK(no_search.challenge().find("insufficient_scope") != std::string::npos);

  // The same decision as sia_handle, challenge included.
  auto r = engine.handle("GET", "/dicom-web/studies/" + root + ".1/metadata");
  CHECK(r.status() == 401 && std::string(r.header("WWW-Authenticate")) == none.challenge());
  auto r_ok = engine.handle("GET", "/dicom-web/studies/" + root + ".1/metadata", {{"Authorization", ok}});
  CHECK(r_ok.status() == 200);
  auto r_foreign = engine.handle("GET", "/dicom-web/studies/" + root + ".3/metadata", {{"Authorization", ok}});
  CHECK(r_foreign.status() == 403);

  // Search within the token's patient; reads with the study's decision.
  auto search = engine.authorize(ok);
  CHECK(search.allowed());
  std::string bundle = engine.search_imaging_studies(search);
  CHECK(bundle.find("\"total\":2") != std::string::npos && bundle.find("DEMO-002") == std::string::npos);
  try {
    engine.search_imaging_studies(none);
    CHECK(!"a denied decision must not search");
  } catch (const sia::error &e) {
    CHECK(e.status() == SIA_ERR_UNAUTHORIZED);
  }
  auto f = engine.frames(own, root + ".1", root + ".1.1", root + ".1.1.1", {1});
  CHECK(f.size() == 1 && f[0].len > 0);
  try {
    engine.frames(own, root + ".3", root + ".3.1", root + ".3.1.1", {1});
    CHECK(!"a decision for study .1 must not read study .3");
  } catch (const sia::error &e) {
    CHECK(e.status() == SIA_ERR_FORBIDDEN);
  }
  try {
    engine.metadata(foreign, root + ".3");
    CHECK(!"a denied decision must not read");
  } catch (const sia::error &e) {
    CHECK(e.status() == SIA_ERR_FORBIDDEN);
  }
}

void test_bad_input(const std::string &db) {
  sia_config *config = nullptr;
  CHECK_STATUS(sia_config_new(db.c_str(), &config), SIA_OK);
  sia_engine *engine = nullptr;
  CHECK_STATUS(sia_engine_open(config, &engine), SIA_OK);

  // NULL arguments: a status and a message, and the out-parameter untouched.
  sia_response *untouched = reinterpret_cast<sia_response *>(0x1);
  CHECK_STATUS(sia_handle(engine, nullptr, &untouched), SIA_ERR_NULL_ARGUMENT);
  CHECK(untouched == reinterpret_cast<sia_response *>(0x1));
  CHECK(std::strstr(sia_last_error_message(), "request") != nullptr);
  sia_request req{"GET", nullptr, nullptr, nullptr, 0};
  CHECK_STATUS(sia_handle(engine, &req, &untouched), SIA_ERR_NULL_ARGUMENT);
  req.path = "/fhir/metadata";
  CHECK_STATUS(sia_handle(engine, &req, nullptr), SIA_ERR_NULL_ARGUMENT);
  CHECK_STATUS(sia_handle(nullptr, &req, &untouched), SIA_ERR_NULL_ARGUMENT);
  CHECK_STATUS(sia_engine_open(nullptr, &engine), SIA_ERR_NULL_ARGUMENT);
  CHECK_STATUS(sia_config_new(nullptr, &config), SIA_ERR_NULL_ARGUMENT);
  CHECK(untouched == reinterpret_cast<sia_response *>(0x1));

  // Headers: NULL with a count, lengths that are not UTF-8, absurd counts.
  req.header_count = 2;
  CHECK_STATUS(sia_handle(engine, &req, &untouched), SIA_ERR_NULL_ARGUMENT);
  const char latin1[] = "caf\xe9";
  sia_header bad_value{"X-Name", 6, latin1, 4};
  req.headers = &bad_value;
  req.header_count = 1;
  CHECK_STATUS(sia_handle(engine, &req, &untouched), SIA_ERR_INVALID_UTF8);
  req.header_count = 1u << 20;
  CHECK_STATUS(sia_handle(engine, &req, &untouched), SIA_ERR_INVALID_ARGUMENT);
  sia_header huge{"X", SIZE_MAX, "y", 1};
  req.headers = &huge;
  req.header_count = 1;
  CHECK_STATUS(sia_handle(engine, &req, &untouched), SIA_ERR_INVALID_ARGUMENT);
  req.headers = nullptr;
  req.header_count = 0;
  req.path = "/fhir/\xff";
  CHECK_STATUS(sia_handle(engine, &req, &untouched), SIA_ERR_INVALID_UTF8);
  CHECK(untouched == reinterpret_cast<sia_response *>(0x1));

  // Index arguments.
  sia_index_report report{};
  const char *paths[] = {nullptr};
  CHECK_STATUS(sia_index(engine, paths, 1, nullptr, nullptr, &report), SIA_ERR_NULL_ARGUMENT);
  CHECK_STATUS(sia_index(engine, paths, 0, nullptr, nullptr, &report), SIA_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(sia_index(engine, nullptr, 1, nullptr, nullptr, &report), SIA_ERR_NULL_ARGUMENT);

  // Response accessors on NULL and out of range.
  CHECK(sia_response_status(nullptr) == 0);
  CHECK(sia_response_chunk_count(nullptr) == 0);
  CHECK(sia_response_detail(nullptr) == nullptr);
  sia_bytes bytes{};
  CHECK_STATUS(sia_response_chunk(nullptr, 0, &bytes), SIA_ERR_NULL_ARGUMENT);
  req.path = "/fhir/metadata";
  sia_response *r = nullptr;
  CHECK_STATUS(sia_handle(engine, &req, &r), SIA_OK);
  CHECK_STATUS(sia_response_chunk(r, 1000, &bytes), SIA_ERR_INVALID_ARGUMENT);
  sia_header h{};
  CHECK_STATUS(sia_response_header(r, 1000, &h), SIA_ERR_INVALID_ARGUMENT);

  // Configuration errors.
  CHECK_STATUS(sia_config_set_base_url(config, "ftp://x"), SIA_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(sia_config_add_storage_root(nullptr, "archive", "/mnt/archive"), SIA_ERR_NULL_ARGUMENT);
  CHECK_STATUS(sia_config_add_storage_root(config, "bad name", "/mnt/archive"), SIA_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(sia_config_add_storage_root(config, "archive", "relative"), SIA_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(sia_config_add_storage_root(config, "archive", "/mnt/archive"), SIA_OK);
  CHECK_STATUS(sia_config_add_storage_root(config, "archive", "/mnt/other"), SIA_ERR_INVALID_ARGUMENT);
  sia_config *from_file = nullptr;
  CHECK_STATUS(sia_config_from_file("/nonexistent/sia.toml", &from_file), SIA_ERR_CONFIG);
  CHECK(from_file == nullptr);
  CHECK(std::strstr(sia_last_error_message(), "/nonexistent/sia.toml") != nullptr);

  // A handle used after close: SIA_ERR_CLOSED, never a crash; closing twice is a no-op.
  sia_engine_close(engine);
  CHECK_STATUS(sia_handle(engine, &req, &untouched), SIA_ERR_CLOSED);
  CHECK_STATUS(sia_index(engine, paths, 1, nullptr, nullptr, &report), SIA_ERR_CLOSED);
  sia_engine_close(engine);
  // The response made before the close is still readable.
  CHECK(sia_response_status(r) == 200 && sia_response_body_length(r) > 0);
  sia_response_free(r);

  // The last error message is per thread.
  std::thread([] { CHECK(std::strcmp(sia_last_error_message(), "") == 0); }).join();
  CHECK(std::strcmp(sia_status_str(SIA_ERR_CLOSED), "") != 0);
  CHECK(std::strcmp(sia_status_str(-12345), "unknown status") == 0);

  // Typed calls: NULL decision, frame numbers, UIDs.
  sia_engine *open_engine = nullptr;
  CHECK_STATUS(sia_engine_open(config, &open_engine), SIA_OK);
  char *json = reinterpret_cast<char *>(0x1);
  std::size_t len = 7;
  CHECK_STATUS(sia_search_imaging_studies(open_engine, nullptr, nullptr, 0, &json, &len), SIA_ERR_NULL_ARGUMENT);
  sia_decision *local = nullptr;
  CHECK_STATUS(sia_decision_local(&local), SIA_OK);
  CHECK_STATUS(sia_search_imaging_studies(open_engine, local, nullptr, 2, &json, &len), SIA_ERR_NULL_ARGUMENT);
  sia_param bad_param{"_count", "\xff"};
  CHECK_STATUS(sia_search_imaging_studies(open_engine, local, &bad_param, 1, &json, &len), SIA_ERR_INVALID_UTF8);
  CHECK_STATUS(sia_metadata(open_engine, local, "1.2", nullptr, "3.4", &json, &len), SIA_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(sia_metadata(open_engine, local, "1.2.3", nullptr, nullptr, &json, &len), SIA_ERR_NOT_FOUND);
  CHECK(json == reinterpret_cast<char *>(0x1) && len == 7);
  sia_frames *frames = reinterpret_cast<sia_frames *>(0x1);
  const std::uint32_t zero = 0;
  CHECK_STATUS(sia_frames_get(open_engine, local, "1", "2", "3", &zero, 1, nullptr, &frames), SIA_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(sia_frames_get(open_engine, local, "1", "2", "3", nullptr, 0, nullptr, &frames), SIA_ERR_INVALID_ARGUMENT);
  CHECK_STATUS(sia_frames_get(open_engine, local, "1", "2", "3", nullptr, 3, nullptr, &frames), SIA_ERR_NULL_ARGUMENT);
  CHECK_STATUS(sia_frames_get(open_engine, local, "1", "2", nullptr, &zero, 1, nullptr, &frames), SIA_ERR_NULL_ARGUMENT);
  const std::uint32_t first = 1;
  CHECK_STATUS(sia_frames_get(open_engine, local, "1", "2", "3", &first, 1, nullptr, &frames), SIA_ERR_NOT_FOUND);
  CHECK(frames == reinterpret_cast<sia_frames *>(0x1));
  sia_frame view{};
  CHECK_STATUS(sia_frames_frame(nullptr, 0, &view), SIA_ERR_NULL_ARGUMENT);
  CHECK(sia_frames_count(nullptr) == 0);
  CHECK(!sia_decision_allowed(nullptr) && sia_decision_http_status(nullptr) == 0);
  sia_decision_free(local);
  sia_engine_close(open_engine);
  const char bad_toml[] = "[server]\nbase_url = 1\n";
  CHECK_STATUS(sia_config_from_toml(bad_toml, sizeof bad_toml - 1, "/tmp", &from_file), SIA_ERR_CONFIG);
  const std::string toml = "[server]\nbase_url = \"http://127.0.0.1:9\"\ndb = \"t.db\"\n";
  CHECK_STATUS(sia_config_from_toml(toml.data(), toml.size(), "/nonexistent-dir", &from_file), SIA_OK);
  sia_config_free(from_file);

  // *_free(NULL) and close(NULL) are no-ops.
  sia_string_free(nullptr);
  sia_frames_free(nullptr);
  sia_decision_free(nullptr);
  sia_response_free(nullptr);
  sia_config_free(nullptr);
  sia_engine_close(nullptr);
  sia_config_free(config);
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: consumer DEMO_DIR WORK_DIR AUTH_CONFIG\n");
    return 2;
  }
  const std::string demo = argv[1], work = argv[2], auth_config = argv[3];
  try {
    test_version();
    test_index(demo, work);
    const std::string db = work + "/consumer.db";
    {
      sia::engine engine(sia::config::with_db(db));
      engine.index({demo});
      test_handle(engine);
      auto all = instances_of(engine);
      CHECK(all.size() >= 40);
      test_frames_from_8_threads(engine, all);
      test_typed_calls(engine, all);
      if (!all.empty()) test_response_outlives_engine(db, all.front());
    }
    test_bad_input(db);
    test_authorization(auth_config);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    ++failures;
  }
  if (failures) {
    std::fprintf(stderr, "consumer: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("consumer: all checks passed\n");
  return 0;
}
