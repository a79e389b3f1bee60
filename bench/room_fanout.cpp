// Room fan-out: one room of N members and one publisher, on one node (rooms in process) or
// split over two nodes on NATS (issue 16, section 5). bench/room_fanout.sh runs both and
// writes docs/benchmarks.md; bench/compare.sh calls it.
//
//   room_fanout [--members 1000] [--nodes 0|1|2] [--nats URL] [--seconds 5] [--window 8]
//               [--rate 200] [--payload 64] [--nats-pid PID]
//
// Everything but the broker runs in this process: the node(s) (msgtrans servers, one loop
// thread each, a TCP listener on loopback), the members (N TCP sockets read by one epoll
// thread that parses the packets itself), and the publisher (this thread, calling
// server::publish on node 0). `--nodes 0` is the limit: the same members and publisher
// with no msgtrans at all, the publisher writing each packet to every socket. Members connect to node i % nodes and are joined to the
// room by on_connected. Two phases, each followed by a drain:
//   - saturate: at most `window` publishes outstanding (a publish is done when all N
//     members have it), as fast as the nodes deliver: deliveries per second;
//   - steady: `rate` publishes per second, open loop: publish-to-delivery latency, for
//     members on the publisher's node (local) and on the other node (remote).
// Latency is steady_clock at publish (in the payload) to steady_clock after the member's
// read. CPU: this process (getrusage) and the nats-server (/proc/PID/stat), as a share of
// one core over the phase. One JSON line on stdout.
#include <msgtrans/msgtrans.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using clk = std::chrono::steady_clock;
constexpr const char* room = "fanout";

struct args {
  std::size_t members = 1000, nodes = 1, window = 8, payload = 64;
  double seconds = 5, rate = 200;
  std::string nats;
  long nats_pid = 0;
  bool saturate = true;  // --saturate 0: the steady phase only (for profiling it)
};

args parse(int argc, char** argv) {
  args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument("missing value for " + k);
    const std::string v = argv[++i];
    if (k == "--members") a.members = std::stoul(v);
    else if (k == "--nodes") a.nodes = std::stoul(v);
    else if (k == "--nats") a.nats = v;
    else if (k == "--seconds") a.seconds = std::stod(v);
    else if (k == "--window") a.window = std::stoul(v);
    else if (k == "--rate") a.rate = std::stod(v);
    else if (k == "--payload") a.payload = std::stoul(v);
    else if (k == "--nats-pid") a.nats_pid = std::stol(v);
    else if (k == "--saturate") a.saturate = v != "0";
    else throw std::invalid_argument("unknown option " + k);
  }
  if (a.nodes > 2) throw std::invalid_argument("--nodes is 0 (the raw limit), 1 or 2");
  if (a.nodes == 2 && a.nats.empty()) throw std::invalid_argument("--nodes 2 needs --nats URL");
  if (a.payload < 24) a.payload = 24;
  if (a.members < std::max<std::size_t>(a.nodes, 1)) throw std::invalid_argument("--members below --nodes");
  return a;
}

long long ns_now() { return std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now().time_since_epoch()).count(); }

// Payload: phase (1 byte), 7 spare, sequence (u64), publish time (i64 ns), padding.
enum phase : std::uint8_t { probe = 1, saturate = 2, steady = 3 };

// ---- the members: N sockets, one epoll thread ------------------------------------------
struct member {
  int fd = -1;
  std::size_t group = 0;  // 0: on the publisher's node; 1: on the other
  std::vector<unsigned char> buf = std::vector<unsigned char>(64 * 1024);
  std::size_t len = 0;
  bool probed = false;
};

struct members_t {
  std::vector<member> m;
  int ep = -1;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> probed{0};
  std::atomic<std::uint64_t> got[4]{};  // per phase
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::uint32_t> lat[4][2];  // per phase, per group: ns (capped at 4.29 s)

  void on_packet(member& who, const unsigned char* p, std::size_t n) {
    if (n < 24) return;
    const auto ph = p[0];
    long long t;
    std::memcpy(&t, p + 16, 8);
    if (ph == probe) {
      if (!who.probed) who.probed = true, probed.fetch_add(1);
      return;
    }
    if (ph > 3) return;
    const long long d = ns_now() - t;
    lat[ph][who.group].push_back(static_cast<std::uint32_t>(std::min<long long>(d, 0xffffffffLL)));
    got[ph].fetch_add(1, std::memory_order_relaxed);
  }
  // Reads what is there and parses whole packets (16-byte header, big-endian lengths).
  void drain(member& who) {
    for (;;) {
      const ssize_t r = ::read(who.fd, who.buf.data() + who.len, who.buf.size() - who.len);
      if (r <= 0) return;
      who.len += static_cast<std::size_t>(r);
      std::size_t off = 0;
      while (who.len - off >= 16) {
        const unsigned char* h = who.buf.data() + off;
        const std::size_t ext = (std::size_t(h[8]) << 8) | h[9];
        const std::size_t pay = (std::size_t(h[10]) << 24) | (std::size_t(h[11]) << 16) | (std::size_t(h[12]) << 8) | h[13];
        if (16 + ext + pay > who.buf.size()) throw std::runtime_error("packet larger than the member's buffer");
        if (who.len - off < 16 + ext + pay) break;
        on_packet(who, h + 16 + ext, pay);
        off += 16 + ext + pay;
      }
      std::memmove(who.buf.data(), who.buf.data() + off, who.len - off);
      who.len -= off;
    }
  }
  void run() {
    std::vector<epoll_event> evs(256);
    while (!stop.load(std::memory_order_relaxed)) {
      const int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 50);
      for (int i = 0; i < n; ++i) drain(m[evs[i].data.u32]);
      if (n > 0) cv.notify_all();
    }
  }
};

int connect_to(const std::string& hostport) {
  const auto colon = hostport.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(hostport.substr(colon + 1))));
  inet_pton(AF_INET, hostport.substr(0, colon).c_str(), &sa.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    throw std::runtime_error("connect " + hostport + ": " + std::strerror(errno));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// ---- CPU accounting --------------------------------------------------------------------
double self_cpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
double proc_cpu(long pid) {  // utime + stime of another process, seconds
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), {});
  const auto close_paren = s.rfind(')');
  if (close_paren == std::string::npos) return 0;
  std::vector<std::string> fields;
  std::size_t pos = close_paren + 2;
  while (pos < s.size() && fields.size() < 15) {
    const auto sp = s.find(' ', pos);
    fields.push_back(s.substr(pos, sp - pos));
    if (sp == std::string::npos) break;
    pos = sp + 1;
  }
  if (fields.size() < 13) return 0;  // fields[11], [12] = utime, stime (stat fields 14, 15)
  return double(std::stoll(fields[11]) + std::stoll(fields[12])) / double(sysconf(_SC_CLK_TCK));
}

struct cpu_span {
  double self0, nats0;
  clk::time_point t0;
  long pid;
  explicit cpu_span(long p) : self0(self_cpu()), nats0(proc_cpu(p)), t0(clk::now()), pid(p) {}
  std::string json() const {
    const double wall = std::chrono::duration<double>(clk::now() - t0).count();
    char b[128];
    std::snprintf(b, sizeof b, "\"cpu_self_pct\":%.1f,\"cpu_nats_pct\":%.1f", 100 * (self_cpu() - self0) / wall,
                  pid > 0 ? 100 * (proc_cpu(pid) - nats0) / wall : -1.0);
    return b;
  }
};

double pct(std::vector<std::uint32_t> v, double q) {
  if (v.empty()) return -1;
  const auto k = static_cast<std::size_t>(q * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k] / 1000.0;
}
std::string lat_json(const std::vector<std::uint32_t>& a, const std::vector<std::uint32_t>& b, const char* prefix) {
  std::vector<std::uint32_t> all(a);
  all.insert(all.end(), b.begin(), b.end());
  char s[256];
  std::snprintf(s, sizeof s, "\"%sp50_us\":%.1f,\"%sp99_us\":%.1f", prefix, pct(all, 0.5), prefix, pct(all, 0.99));
  return s;
}

}  // namespace

int main(int argc, char** argv) try {
  const args a = parse(argc, argv);
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  setrlimit(RLIMIT_NOFILE, &nofile);

  // The nodes.
  std::vector<std::unique_ptr<msgtrans::server>> nodes(a.nodes);
  std::mutex join_mu;
  std::condition_variable join_cv;
  std::size_t joined = 0;
  const std::string cluster = "fanout-" + std::to_string(::getpid());
  for (std::size_t i = 0; i < a.nodes; ++i) {
    msgtrans::session_options o;
    o.first_packet_timeout = std::chrono::milliseconds(0);  // members only listen
    o.idle_timeout = std::chrono::milliseconds(0);
    msgtrans::tcp_server_config tcp;
    tcp.bind_address = "127.0.0.1:0";
    msgtrans::server_builder b;
    b.threads(1).max_connections(a.members + 16).options(o).listen(tcp);
    b.on_connected([&, i](const msgtrans::connection_info& c) {
      (void)nodes[i]->join(c.session, room);
      std::lock_guard lk(join_mu);
      ++joined;
      join_cv.notify_all();
    });
    if (a.nodes == 2) {
      msgtrans::nats_cluster_config n;
      n.servers = {a.nats};
      n.cluster_name = cluster;
      n.node_name = i == 0 ? "fanout-a" : "fanout-b";
      b.cluster(n);
    }
    nodes[i] = std::make_unique<msgtrans::server>(b.build());
    if (auto e = nodes[i]->start()) throw std::runtime_error("start: " + e.message());
  }

  // --nodes 0, the limit: no msgtrans at all; the publisher thread writes each framed
  // packet to every accepted socket itself (one blocking write per member).
  int raw_listener = -1;
  std::vector<int> raw_fds;
  std::string raw_address;
  if (a.nodes == 0) {
    raw_listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (::bind(raw_listener, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(raw_listener, 4096) != 0 ||
        ::getsockname(raw_listener, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
      throw std::runtime_error(std::string("raw listener: ") + std::strerror(errno));
    raw_address = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
  }

  // The members.
  members_t ms;
  ms.ep = epoll_create1(EPOLL_CLOEXEC);
  ms.m.resize(a.members);
  for (std::size_t i = 0; i < a.members; ++i) {
    const std::size_t node = a.nodes ? i % a.nodes : 0;
    ms.m[i].group = node;
    ms.m[i].fd = connect_to(a.nodes ? nodes[node]->local_addresses().at(0).second : raw_address);
    if (a.nodes == 0) {
      raw_fds.push_back(::accept4(raw_listener, nullptr, nullptr, SOCK_CLOEXEC));
      const int one = 1;
      setsockopt(raw_fds.back(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  }
  if (a.nodes > 0) {
    std::unique_lock lk(join_mu);
    if (!join_cv.wait_for(lk, std::chrono::seconds(30), [&] { return joined == a.members; }))
      throw std::runtime_error("members did not all join");
  }
  for (std::size_t i = 0; i < a.members; ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    epoll_ctl(ms.ep, EPOLL_CTL_ADD, ms.m[i].fd, &ev);
  }
  for (auto& l : ms.lat)
    for (auto& g : l) g.reserve(1u << 20);
  std::thread reader([&] { ms.run(); });

  // One packet = the 16-byte header of a one-way packet (raw mode writes it), then the
  // payload. publish(PH, K) publishes K packets; in raw mode they leave in one write per
  // member, as msgtrans corks the packets queued for one connection into one writev.
  // Returns true when the cross-node part of a publish failed.
  const std::size_t packet_size = 16 + a.payload;
  std::vector<unsigned char> batch(packet_size * std::max<std::size_t>(a.window, 1), 0);
  std::uint64_t seq = 0;
  auto publish = [&](phase ph, std::size_t k = 1) {
    bool failed = false;
    for (std::size_t j = 0; j < k; ++j) {
      unsigned char* h = batch.data() + j * packet_size;
      h[0] = 1;
      for (int b = 0; b < 4; ++b) h[10 + b] = static_cast<unsigned char>(a.payload >> (8 * (3 - b)));
      unsigned char* payload = h + 16;
      payload[0] = ph;
      ++seq;
      std::memcpy(payload + 8, &seq, 8);
      const long long t = ns_now();
      std::memcpy(payload + 16, &t, 8);
      if (a.nodes > 0)
        failed |= static_cast<bool>(
            nodes[0]->publish(room, msgtrans::bytes_view(reinterpret_cast<const std::byte*>(payload), a.payload)).cluster);
    }
    if (a.nodes == 0)
      for (int fd : raw_fds)
        if (::write(fd, batch.data(), k * packet_size) != static_cast<ssize_t>(k * packet_size))
          throw std::runtime_error("raw write failed");
    return failed;
  };
  // wait_got(PH, N, T): until members got N packets of phase PH, or T passes.
  auto wait_got = [&](phase ph, std::uint64_t n, std::chrono::milliseconds t) {
    std::unique_lock lk(ms.mu);
    return ms.cv.wait_for(lk, t, [&] { return ms.got[ph].load() >= n; });
  };

  // Probe until every member has heard the room (node B subscribes after its first join).
  const auto probe_end = clk::now() + std::chrono::seconds(20);
  while (ms.probed.load() < a.members) {
    if (clk::now() > probe_end) throw std::runtime_error("probe: not every member hears the room");
    publish(probe);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto n = static_cast<std::uint64_t>(a.members);
  const auto dur = std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(a.seconds));

  // Phase 1: saturate, `window` publishes outstanding.
  std::uint64_t pub_sat = 0, stalls = 0, cluster_errors = 0;
  std::string sat_cpu;
  double sat_secs;
  std::uint64_t sat_got;
  {
    cpu_span cpu(a.nats_pid);
    const auto t0 = clk::now(), end = a.saturate ? t0 + dur : t0;
    // The raw limit publishes half a window at a time (two halves outstanding).
    const std::size_t step = a.nodes == 0 ? std::max<std::size_t>(a.window / 2, 1) : 1;
    while (clk::now() < end) {
      if (pub_sat + step > a.window &&
          !wait_got(saturate, (pub_sat + step - a.window) * n, std::chrono::milliseconds(1000))) {
        ++stalls;  // deliveries lost (or a second late): the phase ends, reported as such
        break;
      }
      if (publish(saturate, step)) ++cluster_errors;
      pub_sat += step;
    }
    sat_secs = std::chrono::duration<double>(clk::now() - t0).count();
    sat_got = ms.got[saturate].load();
    sat_cpu = cpu.json();
  }
  wait_got(saturate, pub_sat * n, std::chrono::seconds(2));

  // Phase 2: steady rate, open loop.
  std::uint64_t pub_st = 0;
  std::string st_cpu;
  {
    cpu_span cpu(a.nats_pid);
    const auto gap = std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(1.0 / a.rate));
    const auto t0 = clk::now(), end = t0 + dur;
    for (auto next = t0; next < end; next += gap) {
      std::this_thread::sleep_until(next);
      if (publish(steady)) ++cluster_errors;
      ++pub_st;
    }
    st_cpu = cpu.json();
  }
  wait_got(steady, pub_st * n, std::chrono::seconds(2));
  ms.stop = true;
  reader.join();

  const auto sat_total = ms.got[saturate].load(), st_total = ms.got[steady].load();
  std::printf(
      "{\"nodes\":%zu,\"members\":%zu,\"payload\":%zu,\"window\":%zu,"
      "\"saturate\":{\"publishes\":%llu,\"seconds\":%.2f,\"deliveries_per_sec\":%.0f,\"lost\":%lld,\"stalls\":%llu,%s,%s},"
      "\"steady\":{\"rate\":%.0f,\"publishes\":%llu,\"deliveries_per_sec\":%.0f,\"lost\":%lld,%s,%s,%s,%s},"
      "\"cluster_publish_errors\":%llu}\n",
      a.nodes, a.members, a.payload, a.window, static_cast<unsigned long long>(pub_sat), sat_secs,
      double(sat_got) / sat_secs, static_cast<long long>(pub_sat * n) - static_cast<long long>(sat_total),
      static_cast<unsigned long long>(stalls), lat_json(ms.lat[saturate][0], ms.lat[saturate][1], "").c_str(),
      sat_cpu.c_str(), a.rate, static_cast<unsigned long long>(pub_st), double(st_total) / a.seconds,
      static_cast<long long>(pub_st * n) - static_cast<long long>(st_total),
      lat_json(ms.lat[steady][0], ms.lat[steady][1], "").c_str(),
      lat_json(ms.lat[steady][0], {}, "local_").c_str(), lat_json(ms.lat[steady][1], {}, "remote_").c_str(),
      st_cpu.c_str(), static_cast<unsigned long long>(cluster_errors));
  for (auto& nd : nodes) (void)nd->stop(std::chrono::seconds(1));
  for (auto& m : ms.m) ::close(m.fd);
  for (int fd : raw_fds) ::close(fd);
  if (raw_listener >= 0) ::close(raw_listener);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "room_fanout: %s\n", e.what());
  return 1;
}
