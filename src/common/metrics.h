// MetricsRegistry: the metrics of one process, rendered in the Prometheus text exposition format
// (version 0.0.4) for `GET /metrics` (metrics_server.h).
//
// Roles do not copy their counters into the registry: each registers a collector that reads its
// own stats when the metrics are scraped and writes them into a MetricsWriter, which groups the
// samples by family (one # HELP and # TYPE line each) in the order the families first appear.
//
// Thread-safety: Register and Render may be called from any thread; collectors are called from
// the thread that renders, one at a time, and must be safe to call from there.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ch {

enum class MetricType { kCounter, kGauge };

// Label names and values of one sample, in the order they are rendered.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class MetricsWriter {
 public:
  // Add one sample of the family `name`. The family's type and help are those of its first
  // sample. REQUIRES: `name` and the label names match [a-zA-Z_][a-zA-Z0-9_]*; a counter's name
  // ends in "_total".
  void Add(std::string_view name, MetricType type, std::string_view help,
           const MetricLabels& labels, double value);

  // Return the exposition text: every family with its samples.
  std::string Render() const;

 private:
  struct Family {
    std::string name;
    std::string help;
    MetricType type;
    std::vector<std::string> samples;
  };
  std::vector<Family> families_;
  std::map<std::string, size_t, std::less<>> index_;
};

class MetricsRegistry {
 public:
  using Collector = std::function<void(MetricsWriter&)>;

  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Add a collector; it is called on every Render for the registry's lifetime.
  void Register(Collector collector);
  // Call every collector and return the exposition text.
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::vector<Collector> collectors_;
};

// Return `value` escaped for a label value: backslash, double quote and newline.
std::string EscapeMetricLabelValue(std::string_view value);

}  // namespace ch
