// Latency histograms and the Prometheus text rendering of server_stats and client_stats.
#include <msgtrans/stats.hpp>

#include <cmath>
#include <cstdio>

namespace msgtrans {

double latency_histogram::upper_bound_us(std::size_t i) noexcept { return std::exp2((static_cast<double>(i) + 1) / 4.0); }

double latency_histogram::quantile_us(double q) const noexcept {
  if (total == 0) return 0;
  const double want = q * static_cast<double>(total);
  double seen = 0;
  for (std::size_t i = 0; i < buckets; ++i) {
    seen += static_cast<double>(counts[i]);
    if (seen >= want) return upper_bound_us(i);
  }
  return upper_bound_us(buckets - 1);
}

namespace {

void metric(std::string& out, std::string_view prefix, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += prefix;
  out += '_';
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += prefix;
  out += '_';
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view prefix, const char* name, std::string_view labels, double v) {
  char num[64];
  std::snprintf(num, sizeof num, "%.17g", v);
  out += prefix;
  out += '_';
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += num;
  out += '\n';
}

// Buckets at every power of two of microseconds (every 4th internal bucket), in seconds.
void histogram(std::string& out, std::string_view prefix, const char* name, const char* help,
               const latency_histogram& h) {
  metric(out, prefix, name, "histogram", help);
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < latency_histogram::buckets; ++i) {
    cumulative += h.counts[i];
    if (i % 4 != 3) continue;
    char le[64];
    std::snprintf(le, sizeof le, "le=\"%.9g\"", latency_histogram::upper_bound_us(i) / 1e6);
    sample(out, prefix, bucket.c_str(), le, static_cast<double>(cumulative));
    if (cumulative == h.total && h.counts[i] == 0 && i > 40) break;  // the rest are equal
  }
  sample(out, prefix, bucket.c_str(), "le=\"+Inf\"", static_cast<double>(h.total));
  sample(out, prefix, (std::string(name) + "_sum").c_str(), "", h.sum_us / 1e6);
  sample(out, prefix, (std::string(name) + "_count").c_str(), "", static_cast<double>(h.total));
}

void gauge(std::string& out, std::string_view prefix, const char* name, const char* help, double v) {
  metric(out, prefix, name, "gauge", help);
  sample(out, prefix, name, "", v);
}

// What servers and clients share: traffic, errors, latency, memory.
template <class Stats>
void traffic(std::string& out, std::string_view p, const Stats& s) {
  metric(out, p, "packets_total", "counter", "Packets received and sent.");
  sample(out, p, "packets_total", "direction=\"in\"", static_cast<double>(s.packets_in));
  sample(out, p, "packets_total", "direction=\"out\"", static_cast<double>(s.packets_out));
  metric(out, p, "bytes_total", "counter", "Bytes received and sent, packet framing included.");
  sample(out, p, "bytes_total", "direction=\"in\"", static_cast<double>(s.bytes_in));
  sample(out, p, "bytes_total", "direction=\"out\"", static_cast<double>(s.bytes_out));
  gauge(out, p, "requests_in_flight", "Requests sent and still waiting for a response.",
        static_cast<double>(s.requests_in_flight));
  metric(out, p, "errors_total", "counter", "Errors and rejections by kind.");
  sample(out, p, "errors_total", "kind=\"request_timeout\"", static_cast<double>(s.request_timeouts));
  sample(out, p, "errors_total", "kind=\"queue_full\"", static_cast<double>(s.queue_full_rejections));
  sample(out, p, "errors_total", "kind=\"protocol_error\"", static_cast<double>(s.protocol_errors));
  sample(out, p, "errors_total", "kind=\"unhandled\"", static_cast<double>(s.unhandled));
}

template <class Stats>
void latency_and_memory(std::string& out, std::string_view p, const Stats& s) {
  histogram(out, p, "request_duration_seconds", "Requests this side sent, until their response.", s.request_latency);
  histogram(out, p, "response_duration_seconds", "Requests this side answered, from receipt to response.",
            s.response_latency);
  gauge(out, p, "request_duration_mean_seconds", "Mean time of the requests this side sent, until their response.",
        s.request_latency_mean_us / 1e6);
  gauge(out, p, "response_duration_mean_seconds", "Mean time of the requests this side answered.",
        s.response_latency_mean_us / 1e6);
  // Prometheus's usual name, unprefixed (as the client libraries' process collectors).
  metric(out, "process", "resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  sample(out, "process", "resident_memory_bytes", "", static_cast<double>(s.resident_memory_bytes));
}

}  // namespace

std::string to_prometheus(const client_stats& s, std::string_view p) {
  std::string out;
  out.reserve(4096);
  gauge(out, p, "connected", "1 while the client has a connection.", s.connected ? 1 : 0);
  traffic(out, p, s);
  latency_and_memory(out, p, s);
  return out;
}

std::string to_prometheus(const server_stats& s, std::string_view p) {
  std::string out;
  out.reserve(8192);
  metric(out, p, "connections", "gauge", "Open connections by protocol.");
  if (s.active_by_protocol.empty()) sample(out, p, "connections", "protocol=\"tcp\"", 0);
  for (auto& [proto, n] : s.active_by_protocol)
    sample(out, p, "connections", "protocol=\"" + proto + "\"", static_cast<double>(n));
  metric(out, p, "connections_accepted_total", "counter", "Connections accepted since start.");
  sample(out, p, "connections_accepted_total", "", static_cast<double>(s.accepted_total));
  metric(out, p, "connections_rejected_total", "counter", "Connections refused by a limit.");
  sample(out, p, "connections_rejected_total", "reason=\"max_connections\"", static_cast<double>(s.rejected_by_limit));
  metric(out, p, "refused_total", "counter", "Connections refused by a per-address limit, by reason.");
  for (const char* r : {"per_ip", "handshake_rate"}) {
    auto it = s.refused.find(r);
    sample(out, p, "refused_total", std::string("reason=\"") + r + "\"",
           static_cast<double>(it == s.refused.end() ? 0 : it->second));
  }
  metric(out, p, "rate_limited_total", "counter", "Connections over their message or byte rate, by what it did.");
  sample(out, p, "rate_limited_total", "action=\"close\"", static_cast<double>(s.rate_limited_closes));
  sample(out, p, "rate_limited_total", "action=\"pause\"", static_cast<double>(s.rate_limited_pauses));
  traffic(out, p, s);
  metric(out, p, "notices_total", "counter", "Refusals and limits an operator should know of, by kind.");
  if (s.notices.empty()) sample(out, p, "notices_total", "kind=\"connection_limit\"", 0);
  for (auto& [kind, n] : s.notices) sample(out, p, "notices_total", "kind=\"" + kind + "\"", static_cast<double>(n));
  metric(out, p, "inbound_budget_bytes", "gauge", "Bytes of the server-wide inbound decoding budget in use.");
  sample(out, p, "inbound_budget_bytes", "", static_cast<double>(s.inbound_budget_used));
  metric(out, p, "inbound_budget_limit_bytes", "gauge", "Size of the inbound decoding budget (0 = none).");
  sample(out, p, "inbound_budget_limit_bytes", "", static_cast<double>(s.inbound_budget_limit));
  metric(out, p, "inbound_budget_waits_total", "counter", "Times a connection paused reading for the budget.");
  sample(out, p, "inbound_budget_waits_total", "", static_cast<double>(s.inbound_budget_waits));
  metric(out, p, "auth_total", "counter",
         "Authentications by outcome (rejected includes timeout and busy; all 0 without on_authenticate).");
  sample(out, p, "auth_total", "outcome=\"accepted\"", static_cast<double>(s.auth_accepted));
  sample(out, p, "auth_total", "outcome=\"rejected\"", static_cast<double>(s.auth_rejected));
  sample(out, p, "auth_total", "outcome=\"timeout\"", static_cast<double>(s.auth_timeouts));
  sample(out, p, "auth_total", "outcome=\"busy\"", static_cast<double>(s.auth_refused_busy));
  gauge(out, p, "auth_pending", "Connections waiting for the authentication hook now.",
        static_cast<double>(s.auth_pending));
  latency_and_memory(out, p, s);
  return out;
}

}  // namespace msgtrans
