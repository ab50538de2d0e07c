// Token-bucket limits (docs/architecture.md §2: per-source rates keep a hostile or broken client
// from hurting others). The clock is passed in by the caller (seconds, any monotonic origin), so
// the limiter is deterministic and testable. Not thread-safe: the server uses one event loop.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <list>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

namespace rtda::server {

// Refills at `rate_per_second` up to `burst` tokens; starts full. A rate of 0 means unlimited.
// A clock that goes backwards adds no tokens (and does not remove any).
class RateLimiter {
 public:
  RateLimiter(double rate_per_second, double burst) : rate_(rate_per_second), burst_(burst) {
    if (!(rate_per_second >= 0.0) || std::isinf(rate_per_second)) {
      throw std::invalid_argument("RateLimiter: rate_per_second must be finite and >= 0");
    }
    if (rate_per_second > 0.0 && !(burst > 0.0 && std::isfinite(burst))) {
      throw std::invalid_argument("RateLimiter: burst must be finite and > 0");
    }
    tokens_ = burst_;
  }

  bool unlimited() const { return rate_ == 0.0; }

  // Takes `n` tokens if they are available at `now_seconds`. A request larger than the burst
  // can never succeed.
  bool try_take(double n, double now_seconds) {
    if (unlimited()) return true;
    refill(now_seconds);
    if (n > tokens_) return false;
    tokens_ -= n;
    return true;
  }

  // Seconds from `now_seconds` until try_take(n) would succeed: 0 if it would now, +infinity if
  // n exceeds the burst.
  double retry_after(double n, double now_seconds) const {
    if (unlimited()) return 0.0;
    if (n > burst_) return std::numeric_limits<double>::infinity();
    const double available = tokens_at(now_seconds);
    return available >= n ? 0.0 : (n - available) / rate_;
  }

  double tokens(double now_seconds) const {
    return unlimited() ? std::numeric_limits<double>::infinity() : tokens_at(now_seconds);
  }

 private:
  double tokens_at(double now_seconds) const {
    if (!started_ || now_seconds <= last_seconds_) return tokens_;
    return std::min(burst_, tokens_ + (now_seconds - last_seconds_) * rate_);
  }
  void refill(double now_seconds) {
    tokens_ = tokens_at(now_seconds);
    if (!started_ || now_seconds > last_seconds_) last_seconds_ = now_seconds;
    started_ = true;
  }

  double rate_;
  double burst_;
  double tokens_ = 0.0;
  double last_seconds_ = 0.0;
  bool started_ = false;
};

// One RateLimiter per source (a feeder id, a client key), each with the same rate and burst.
// At most `max_sources` buckets are kept; the least recently used is forgotten first, so a
// forgotten source starts again with a full bucket: keep max_sources above the number of
// legitimate sources.
class PerSourceRateLimiter {
 public:
  PerSourceRateLimiter(double rate_per_second, double burst, std::size_t max_sources = 10000)
      : rate_(rate_per_second), burst_(burst), max_sources_(max_sources) {
    RateLimiter check(rate_per_second, burst);  // same validation as a single bucket
    (void)check;
    if (max_sources == 0) {
      throw std::invalid_argument("PerSourceRateLimiter: max_sources must be at least 1");
    }
  }

  bool unlimited() const { return rate_ == 0.0; }

  bool try_take(const std::string& source, double n, double now_seconds) {
    if (unlimited()) return true;
    return touch(source).try_take(n, now_seconds);
  }

  // Does not count as a use of `source` for eviction; an untracked source has a full bucket.
  double retry_after(const std::string& source, double n, double now_seconds) const {
    if (unlimited()) return 0.0;
    const auto it = index_.find(source);
    if (it == index_.end()) return RateLimiter(rate_, burst_).retry_after(n, now_seconds);
    return it->second->second.retry_after(n, now_seconds);
  }

  std::size_t tracked_sources() const { return lru_.size(); }

 private:
  using Entry = std::pair<std::string, RateLimiter>;

  RateLimiter& touch(const std::string& source) {
    if (const auto it = index_.find(source); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);  // most recent at the front
      return it->second->second;
    }
    if (lru_.size() >= max_sources_) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
    lru_.emplace_front(source, RateLimiter(rate_, burst_));
    index_.emplace(source, lru_.begin());
    return lru_.front().second;
  }

  double rate_;
  double burst_;
  std::size_t max_sources_;
  std::list<Entry> lru_;
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace rtda::server
