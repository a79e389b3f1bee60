// `msgtrans bench`: a load generator for any msgtrans URL (and, with --raw, for any
// server that echoes bytes unchanged). It drives connections at the transport level
// (connector + connection), so the generator itself stays lean: packets are encoded
// into reusable buffers and written in batches.
//
// Modes: request (closed loop, --inflight per connection), flood (one-way packets as
// fast as the server echoes them), rate (open loop at --rate msg/s, latency measured
// from the intended send time, so there is no coordinated omission).
#include "commands.hpp"
#include "histogram.hpp"

#include <msgtrans/msgtrans.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <condition_variable>
#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

namespace msgtrans::cli {

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

struct bench_options {
  std::string url;
  std::size_t connections = 10;
  std::size_t inflight = 1;
  std::size_t size = 64;
  double duration_s = 5;
  double warmup_s = 1;
  std::string mode = "request";
  double rate = 10000;
  std::size_t threads = 1;
  bool json = false;
  bool raw = false;
  bool quiet = false;
  double connect_timeout_s = 10;
  url_options tls;
  std::string token;  // credentials for a server that authenticates
};

struct shared_state {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stopping{false};
  clock_type::time_point started;
  std::mutex mu;  // guards `closed`
  std::condition_variable closed_cv;
  std::size_t closed = 0;  // connections whose close has completed
};

class bench_conn final : public connection_owner {
 public:
  bench_conn(asio::io_context& loop, const bench_options& o, shared_state& st, std::size_t index)
      : loop_(loop), o_(o), st_(st), index_(index), timer_(loop), sent_at_(ring) {
    packet_view v;
    v.header.type = o.mode == "flood" ? packet_type::one_way : packet_type::request;
    payload_.assign(o.size, std::byte{'x'});
    v.payload = payload_;
    template_.resize(encoded_size(v));
    (void)encode_to(v, template_);
  }

  void start(std::unique_ptr<connection> c) {
    started_ = true;
    conn_ = std::move(c);
    conn_->start(*this);
    if (!o_.token.empty() && !conn_->sent_credentials()) return authenticate();
    begin_load();
  }

  // The authentication packet first (docs/wire-format.md); the load starts once accepted.
  void authenticate() {
    packet p;
    p.type = packet_type::request;
    p.message_id = 0;
    p.ext_header = to_buffer(as_bytes(std::string_view("msgtrans.auth/1")));
    p.payload = to_buffer(as_bytes(o_.token));
    auth_buf_ = encode(p).value();
    awaiting_auth_ = true;
    writing_ = true;
    spans_.assign(1, bytes_view(auth_buf_));
    conn_->write(spans_);
  }
  void on_auth_answer(bytes_view p) {
    auto v = decode_view(p, decode_limits{});
    const bool answer = v && v->header.type == packet_type::response && as_string(v->ext_header) == "msgtrans.auth/1" &&
                        !v->payload.empty();
    if (answer && v->payload[0] == std::byte{1}) {
      awaiting_auth_ = false;
      return begin_load();
    }
    ++errors[answer ? "unauthenticated: " + std::string(as_string(v->payload.subspan(1)))
                    : std::string("unauthenticated: no answer to the authentication packet")];
    conn_->close(close_info{close_reason::normal, {}, "authentication refused"});
  }

  void begin_load() {
    if (o_.mode == "rate") {
      per_conn_rate_ = o_.rate / static_cast<double>(o_.connections);
      // Spread the connections' schedules evenly over one interval, so the total is a
      // steady stream rather than every connection sending at the same instant.
      rate_start_ = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(
                                            static_cast<double>(index_) / static_cast<double>(o_.connections) /
                                            per_conn_rate_));
      tick();
    } else {
      const std::size_t first = o_.mode == "flood" ? 64 : o_.inflight;
      for (std::size_t i = 0; i < first; ++i) queue_one(clock_type::now());
      flush();
    }
  }

  asio::io_context& loop() noexcept { return loop_; }
  bool started() const noexcept { return started_; }

  void stop() {
    stopped_ = true;
    timer_.cancel();
    if (conn_) conn_->close(close_info{close_reason::normal, {}, "bench finished"});
  }

  // connection_owner
  void on_packet(bytes_view p) override {
    if (awaiting_auth_) return on_auth_answer(p);
    if (p.size() < header_size) return;
    const auto now = clock_type::now();
    const std::uint32_t id = (std::to_integer<std::uint32_t>(p[4]) << 24) | (std::to_integer<std::uint32_t>(p[5]) << 16) |
                             (std::to_integer<std::uint32_t>(p[6]) << 8) | std::to_integer<std::uint32_t>(p[7]);
    if (st_.measuring.load(std::memory_order_relaxed)) {
      ++received;
      bytes += p.size();
      if (o_.mode != "flood")
        hist.record(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at_[id & (ring - 1)]).count()));
    }
    if (stopped_ || st_.stopping.load(std::memory_order_relaxed)) return;
    if (o_.mode == "request") {
      queue_one(now);
      schedule_flush();
    }
  }
  void on_write_done() override {
    writing_ = false;
    if (awaiting_auth_) return;
    writing_buf_.clear();  // what was queued meanwhile stays in out_ and goes next
    if (stopped_) return;
    if (o_.mode == "flood" && !st_.stopping.load(std::memory_order_relaxed))
      for (int i = 0; i < 64; ++i) queue_one(clock_type::now());
    flush();
  }
  void on_closed(close_info info) override {
    closed = true;
    {
      std::lock_guard lock(st_.mu);
      ++st_.closed;
    }
    st_.closed_cv.notify_all();
    if (!stopped_ && !st_.stopping.load()) {
      ++errors[std::string("closed: ") + to_string(info.reason) + (info.detail.empty() ? "" : " (" + info.detail + ")")];
    }
    conn_keepalive_ = std::move(conn_);  // destroyed with this object, after the callback
  }

  hdr_histogram hist;
  std::uint64_t received = 0, bytes = 0;
  std::map<std::string, std::uint64_t> errors;
  bool closed = false;

 private:
  static constexpr std::size_t ring = 1u << 16;

  void queue_one(clock_type::time_point intended) {
    const std::uint32_t id = next_id_++;
    if (next_id_ == 0) next_id_ = 1;
    sent_at_[id & (ring - 1)] = intended;
    const std::size_t off = out_.size();
    out_.insert(out_.end(), template_.begin(), template_.end());
    out_[off + 4] = std::byte(id >> 24);
    out_[off + 5] = std::byte(id >> 16);
    out_[off + 6] = std::byte(id >> 8);
    out_[off + 7] = std::byte(id);
  }
  void schedule_flush() {
    if (flush_posted_ || writing_) return;
    flush_posted_ = true;
    asio::post(loop_, [this] {
      flush_posted_ = false;
      flush();
    });
  }
  void flush() {
    if (writing_ || out_.empty() || closed || !conn_) return;
    std::swap(out_, writing_buf_);
    spans_.clear();
    // One view per packet (WebSocket and QUIC frame each packet).
    for (std::size_t off = 0; off < writing_buf_.size(); off += template_.size())
      spans_.emplace_back(writing_buf_.data() + off, template_.size());
    writing_ = true;
    conn_->write(spans_);
  }
  void tick() {
    if (stopped_ || st_.stopping.load()) return;
    const auto now = clock_type::now();
    const double elapsed = std::chrono::duration<double>(now - rate_start_).count();
    // Message k is due at rate_start_ + k / rate.
    const auto due = elapsed < 0 ? 0 : static_cast<std::uint64_t>(elapsed * per_conn_rate_) + 1;
    while (scheduled_ < due) {
      auto intended = rate_start_ + std::chrono::duration_cast<clock_type::duration>(
                                        std::chrono::duration<double>(static_cast<double>(scheduled_) / per_conn_rate_));
      queue_one(intended);
      ++scheduled_;
    }
    flush();
    // Wake up exactly when the next message is due (not on a fixed tick: with many
    // connections a short tick would keep the generator busy with empty wake-ups).
    timer_.expires_at(rate_start_ + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(
                                        static_cast<double>(scheduled_) / per_conn_rate_)));
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) tick();
    });
  }

  asio::io_context& loop_;
  const bench_options& o_;
  shared_state& st_;
  std::size_t index_;  // of this connection, for the open loop's schedule
  asio::steady_timer timer_;
  std::unique_ptr<connection> conn_, conn_keepalive_;
  byte_buffer payload_, template_, out_, writing_buf_;
  std::vector<bytes_view> spans_;
  std::vector<clock_type::time_point> sent_at_;
  std::uint32_t next_id_ = 1;
  bool writing_ = false, flush_posted_ = false, stopped_ = false, started_ = false, awaiting_auth_ = false;
  byte_buffer auth_buf_;
  clock_type::time_point rate_start_;
  double per_conn_rate_ = 0;
  std::uint64_t scheduled_ = 0;
};

int check_bench_options(const bench_options& o) {
  if (o.mode != "request" && o.mode != "flood" && o.mode != "rate") {
    std::cerr << "bench: --mode must be request, flood or rate\n";
    return usage;
  }
  if (o.connections == 0 || o.inflight == 0 || o.inflight > 30000) {
    std::cerr << "bench: --connections must be >= 1 and --inflight within 1..30000\n";
    return usage;
  }
  return ok;
}

// What the measured run produced, summed over the connections.
struct bench_totals {
  double secs = 0;
  hdr_histogram hist;
  std::uint64_t received = 0, bytes = 0, stalled = 0, error_count = 0;
  std::map<std::string, std::uint64_t> errors;
};

// One bench run: the connections, their loops, and what the connects answered. The
// members outlive every handler that refers to them (the loops are stopped in totals()).
class bench_run {
 public:
  bench_run(const bench_options& o, std::unique_ptr<connector> target)
      : o_(o), target_(std::move(target)), rt_(o.threads) {
    ctx_.limits.max_message_size = std::max<std::size_t>(o.size + 64, default_max_message_size);
    ctx_.credentials = o.token;  // a WebSocket upgrade carries them as a bearer token
  }

  // Starts every connect and waits for all answers, bounded by the connect timeout.
  void connect_all() {
    for (std::size_t i = 0; i < o_.connections; ++i) {
      auto& loop = rt_.next_loop();
      conns_.push_back(std::make_unique<bench_conn>(loop, o_, st_, i));
      bench_conn* bc = conns_.back().get();
      asio::post(loop, [this, bc, &loop2 = loop] {
        target_->connect(loop2, std::chrono::milliseconds(static_cast<std::int64_t>(o_.connect_timeout_s * 1000)),
                         ctx_, [this, bc](msgtrans::error_info ec, std::unique_ptr<connection> c) {
                           {
                             std::lock_guard lock(mu_);
                             ++answered_;
                             if (ec) {
                               ++failed_connects_;
                               ++connect_errors_[ec.message()];  // the detail: what failed, where
                             } else {
                               ++connected_;
                             }
                           }
                           cv_.notify_all();
                           if (!ec) bc->start(std::move(c));
                         });
      });
    }
    // Never hang on connects: wait for all answers, bounded by the connect timeout.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(static_cast<std::int64_t>(o_.connect_timeout_s * 1000 + 1000)),
                 [&] { return answered_ == o_.connections; });
  }

  // The warm-up, then the measured run; returns its length in seconds.
  double measure() {
    const auto warm_end = clock_type::now() + std::chrono::milliseconds(static_cast<std::int64_t>(o_.warmup_s * 1000));
    while (clock_type::now() < warm_end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a pacing loop, not a wait for an event
      progress("warm-up", std::chrono::duration<double>(warm_end - clock_type::now()).count());
    }
    st_.measuring = true;
    const auto t0 = clock_type::now();
    const auto end = t0 + std::chrono::milliseconds(static_cast<std::int64_t>(o_.duration_s * 1000));
    while (clock_type::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      progress("run", std::chrono::duration<double>(clock_type::now() - t0).count());
    }
    st_.measuring = false;
    return std::chrono::duration<double>(clock_type::now() - t0).count();
  }

  // Stops the connections, waits for their closes, stops the loops; then sums up.
  bench_totals totals(double secs) {
    bench_totals t;
    t.secs = secs;
    st_.stopping = true;
    std::size_t started = 0;
    stop_on_loops(t.stalled, started);
    {
      // Let the closes complete (a QUIC connection sends CONNECTION_CLOSE once what it
      // wrote is acknowledged), so servers are not left waiting for an idle timeout.
      std::unique_lock lock(st_.mu);
      st_.closed_cv.wait_for(lock, std::chrono::seconds(2), [&] { return st_.closed >= started; });
    }
    t.errors = connect_errors_;
    for (auto& c : conns_) {
      t.hist.merge(c->hist);
      t.received += c->received;
      t.bytes += c->bytes;
      for (auto& [k, v] : c->errors) t.errors[k] += v;
    }
    if (!o_.quiet) std::fprintf(stderr, "\n");
    rt_.stop();
    for (auto& [k, v] : t.errors) t.error_count += v;
    return t;
  }

  std::size_t connected() const noexcept { return connected_; }
  std::size_t failed_connects() const noexcept { return failed_connects_; }

 private:
  void progress(const char* phase, double secs) {
    if (o_.quiet) return;
    std::uint64_t rx = 0;
    for (auto& c : conns_) rx += c->received;  // racy read, display only
    std::fprintf(stderr, "\r[%s %5.1fs] %zu/%zu connected, %llu received", phase, secs, connected_, o_.connections,
                 static_cast<unsigned long long>(rx));
  }

  // The counters belong to the loops: run one handler on every loop (after it, no loop
  // updates them any more), stop the connections there, then read.
  void stop_on_loops(std::uint64_t& stalled, std::size_t& started) {
    for (std::size_t l = 0; l < rt_.size(); ++l) {
      std::promise<void> p;
      asio::post(rt_.loop(l), [&, l] {
        for (auto& c : conns_) {
          if (&rt_.loop(l) != &c->loop()) continue;
          // A connection that was up but got no reply in the whole measured run has
          // stalled: reported on its own line (and in JSON), apart from the errors.
          if (o_.mode != "flood" && c->started() && !c->closed && c->received == 0) ++stalled;
          if (c->started()) ++started;  // every started connection reports its close once
          c->stop();
        }
        p.set_value();
      });
      p.get_future().wait();
    }
  }

  const bench_options& o_;
  std::unique_ptr<connector> target_;
  runtime rt_;
  shared_state st_;
  std::vector<std::unique_ptr<bench_conn>> conns_;
  std::mutex mu_;
  std::size_t connected_ = 0, failed_connects_ = 0, answered_ = 0;
  std::map<std::string, std::uint64_t> connect_errors_;
  std::condition_variable cv_;
  transport_context ctx_;
};

void print_report(const bench_options& o, const bench_run& run, const bench_totals& t) {
  const double secs = t.secs;
  const double rate = static_cast<double>(t.received) / secs;
  const double mbps = static_cast<double>(t.bytes) / secs / 1e6;
  auto us = [&](double q) { return static_cast<double>(t.hist.quantile(q)) / 1000.0; };
  if (o.json) {
    std::printf("{\"url\":\"%s\",\"mode\":\"%s\",\"connections\":%zu,\"connected\":%zu,\"connect_failures\":%zu,"
                "\"inflight\":%zu,\"size\":%zu,\"seconds\":%.3f,\"messages\":%llu,\"messages_per_sec\":%.1f,"
                "\"mb_per_sec\":%.3f,\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f},"
                "\"errors\":%llu,\"stalled\":%llu}\n",
                o.url.c_str(), o.mode.c_str(), o.connections, run.connected(), run.failed_connects(), o.inflight,
                o.size, secs, static_cast<unsigned long long>(t.received), rate, mbps, us(0.5), us(0.9), us(0.99),
                us(0.999), static_cast<double>(t.hist.max()) / 1000.0, static_cast<unsigned long long>(t.error_count),
                static_cast<unsigned long long>(t.stalled));
  } else {
    std::printf("%s %s: %zu connections (%zu failed), %zu in flight, %zu B, %.1f s\n", o.url.c_str(), o.mode.c_str(),
                o.connections, run.failed_connects(), o.inflight, o.size, secs);
    std::printf("  %.0f messages/s, %.2f MB/s\n", rate, mbps);
    if (o.mode != "flood")
      std::printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", us(0.5), us(0.9), us(0.99),
                  us(0.999), static_cast<double>(t.hist.max()) / 1000.0);
    for (auto& [k, v] : t.errors) std::printf("  error: %s x %llu\n", k.c_str(), static_cast<unsigned long long>(v));
    if (t.stalled)
      std::printf("  stalled: %llu connection(s) got no reply during the run\n",
                  static_cast<unsigned long long>(t.stalled));
  }
}

int run_bench(const bench_options& o) {
  if (int rc = check_bench_options(o); rc != ok) return rc;
  std::string error;
  auto target = connector_for_url(o.url, o.tls, error);
  if (!target) {
    std::cerr << "bench: " << error << "\n";
    return usage;
  }
  bench_run run(o, std::move(target));
  run.connect_all();
  const double secs = run.measure();
  const bench_totals t = run.totals(secs);
  print_report(o, run, t);
  if (run.connected() == 0) return connect_failed;
  return t.error_count == 0 ? ok : failed;
}

}  // namespace

void add_bench(CLI::App& app, int& exit_status) {
  auto o = std::make_shared<bench_options>();
  auto* cmd = app.add_subcommand("bench", "Load generator: request/response, one-way flood, or fixed-rate open loop");
  cmd->add_option("url", o->url, "target: tcp://HOST:PORT, tls://HOST:PORT, ws://..., wss://..., quic://...")->required();
  cmd->add_option("-c,--connections", o->connections, "connections")->capture_default_str();
  cmd->add_option("-k,--inflight", o->inflight, "requests in flight per connection (request mode)")
      ->capture_default_str();
  cmd->add_option("-s,--size", o->size, "payload bytes per message")->capture_default_str();
  cmd->add_option("-d,--duration", o->duration_s, "measured seconds")->capture_default_str();
  cmd->add_option("-w,--warmup", o->warmup_s, "warm-up seconds (not measured)")->capture_default_str();
  cmd->add_option("-m,--mode", o->mode, "request, flood or rate")->capture_default_str();
  cmd->add_option("-r,--rate", o->rate, "total messages/s in rate mode")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "generator threads (loops)")->capture_default_str();
  cmd->add_option("--connect-timeout", o->connect_timeout_s, "seconds per connection attempt")->capture_default_str();
  cmd->add_flag("--json", o->json, "print the report as JSON");
  cmd->add_flag("--raw", o->raw, "the target echoes bytes unchanged (replies are matched by message id either way)");
  cmd->add_flag("-q,--quiet", o->quiet, "no progress line");
  cmd->add_option("--ca", o->tls.tls_ca_file, "trust this CA file (tls, wss, quic)");
  cmd->add_flag("--insecure", o->tls.tls_insecure_skip_verify, "skip certificate verification");
  cmd->add_flag("--no-alpn", o->tls.quic_no_alpn, "quic: offer no ALPN (needed by the Rust original's server, docs/interop.md)");
  cmd->add_option("--client-cert", o->tls.tls_cert_file, "mutual TLS (tls://, wss://, quic://): PEM client certificate chain");
  cmd->add_option("--client-key", o->tls.tls_key_file, "mutual TLS: PEM private key of --client-cert");
  cmd->add_option("--token", o->token, "credentials for a server that authenticates (a JWT, say)");
  cmd->callback([o, &exit_status] { exit_status = run_bench(*o); });
}

}  // namespace msgtrans::cli
