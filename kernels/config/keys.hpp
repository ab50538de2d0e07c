// The configuration registry's building blocks (config.cpp and the keys_*.cpp files that
// declare the keys of their sections): a key, how each type of key reads a TOML node into
// the Config and prints it back, and the checks keys share. Internal to kernels/config.
#pragma once

#include <toml++/toml.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/names.hpp"

namespace rtda::config::detail {

// One configuration key: how to read it from a TOML node into the struct, how to print its
// current value, and what it means. The registry below is the single list of keys.
struct Key {
  std::string name;
  std::string type;
  std::string doc;
  std::function<void(Config&, const toml::node&, const std::string& where)> set;
  std::function<std::string(const Config&)> show;
};

inline std::string node_repr(const toml::node& n) {
  std::ostringstream s;
  if (auto t = n.as_string()) {
    s << '"' << t->get() << '"';
  } else {
    n.visit([&](auto&& v) { s << v; });
  }
  return s.str();
}

[[noreturn]] inline void fail(const std::string& where, const std::string& key, const toml::node& n,
                              const std::string& expected) {
  throw ConfigError(where + key + " = " + node_repr(n) + ": expected " + expected);
}

// Shortest text that reads back as the same double (9.8, not 9.8000000000000007).
inline std::string fmt_double(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string r(buf, res.ptr);
  if (r.find_first_of(".eEn") == std::string::npos) r += ".0";
  return r;
}

template <typename Field>
Key real_key(std::string name, Field field, std::string doc) {
  Key k{name, "float", std::move(doc), nullptr, nullptr};
  k.set = [name, field](Config& c, const toml::node& n, const std::string& where) {
    std::optional<double> v = n.value<double>();  // integers convert too
    if (!v || std::isnan(*v)) fail(where, name, n, "a number");
    field(c) = *v;
  };
  k.show = [field](const Config& c) { return fmt_double(field(const_cast<Config&>(c))); };
  return k;
}

template <typename Field>
Key int_key(std::string name, Field field, std::string doc) {
  Key k{name, "integer", std::move(doc), nullptr, nullptr};
  k.set = [name, field](Config& c, const toml::node& n, const std::string& where) {
    if (!n.is_integer()) fail(where, name, n, "an integer");
    using T = std::remove_reference_t<decltype(field(c))>;
    const auto v = n.as_integer()->get();
    const bool in_range = std::is_signed_v<T>
                              ? (v >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
                                 v <= static_cast<std::int64_t>(std::numeric_limits<T>::max()))
                              : v >= 0;  // every non-negative int64 fits a uint64
    if (!in_range) {
      fail(where, name, n, std::is_signed_v<T> ? "an integer in range" : "a non-negative integer");
    }
    field(c) = static_cast<T>(v);
  };
  k.show = [field](const Config& c) { return std::to_string(field(const_cast<Config&>(c))); };
  return k;
}

template <typename Field>
Key bool_key(std::string name, Field field, std::string doc) {
  Key k{name, "boolean", std::move(doc), nullptr, nullptr};
  k.set = [name, field](Config& c, const toml::node& n, const std::string& where) {
    if (!n.is_boolean()) fail(where, name, n, "true or false");
    field(c) = n.as_boolean()->get();
  };
  k.show = [field](const Config& c) { return field(const_cast<Config&>(c)) ? "true" : "false"; };
  return k;
}

// A string key with a fixed set of spellings mapped to enum values.
template <typename Field, typename Enum>
Key choice_key(std::string name, Field field, std::vector<std::pair<std::string, Enum>> choices,
               std::string doc);
// The same with the enum's name table (core/names.hpp).
template <typename Field, typename Enum, std::size_t Count>
Key choice_key(std::string name, Field field, const core::NameTable<Enum, Count>& table,
               std::string doc) {
  std::vector<std::pair<std::string, Enum>> choices;
  for (const auto& [value, text] : table.entries)
    choices.emplace_back(std::string(text), value);
  return choice_key(std::move(name), field, std::move(choices), std::move(doc));
}
// The spellings of a table as the values of a string key.
template <typename Enum, std::size_t Count>
std::vector<std::pair<std::string, std::string>> spellings(const core::NameTable<Enum, Count>& t) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& name : t.names())
    out.emplace_back(name, name);
  return out;
}
template <typename Field, typename Enum>
Key choice_key(std::string name, Field field, std::vector<std::pair<std::string, Enum>> choices,
               std::string doc) {
  std::string spellings;
  for (auto& [s, e] : choices)
    spellings += (spellings.empty() ? "\"" : " | \"") + s + "\"";
  Key k{name, "string: " + spellings, std::move(doc), nullptr, nullptr};
  k.set = [name, field, choices, spellings](Config& c, const toml::node& n,
                                            const std::string& where) {
    if (auto s = n.as_string()) {
      for (auto& [text, e] : choices) {
        if (s->get() == text) {
          field(c) = e;
          return;
        }
      }
    }
    fail(where, name, n, "one of " + spellings);
  };
  k.show = [field, choices](const Config& c) {
    for (auto& [text, e] : choices) {
      if (field(const_cast<Config&>(c)) == e) return "\"" + text + "\"";
    }
    return std::string("?");
  };
  return k;
}

// A TOML basic string: quotes, backslashes and control characters escaped, so the text reads
// back as the same value (the worker group receives the server's configuration this way).
inline std::string toml_quoted(const std::string& v) {
  std::string out = "\"";
  for (const char ch : v) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

inline Key string_key(std::string name, std::function<std::string&(Config&)> field, std::string doc,
                      std::function<std::string(const std::string&)> check = nullptr) {
  Key k{name, "string", std::move(doc), nullptr, nullptr};
  k.set = [name, field, check](Config& c, const toml::node& n, const std::string& where) {
    if (!n.is_string()) fail(where, name, n, "a string");
    const std::string v = n.as_string()->get();
    if (check) {
      const std::string expected = check(v);
      if (!expected.empty()) fail(where, name, n, expected);
    }
    field(c) = v;
  };
  k.show = [field](const Config& c) { return toml_quoted(field(const_cast<Config&>(c))); };
  return k;
}

// A ZeroMQ endpoint rtda binds or connects: tcp:// or ipc:// (and inproc:// for tests).
inline std::string check_endpoint(const std::string& v) {
  for (const char* scheme : {"tcp://", "ipc://", "inproc://"}) {
    if (v.rfind(scheme, 0) == 0 && v.size() > std::string(scheme).size()) return {};
  }
  return "a ZeroMQ endpoint tcp://HOST:PORT or ipc://PATH";
}

inline std::string check_optional_endpoint(const std::string& v) {
  return v.empty() ? std::string() : check_endpoint(v);
}

// The keys of each group of sections, appended to the registry in this order: [model],
// [nature], [observe], [ensemble], [experiment] (keys_model.cpp); [letkf], [ensf],
// [inflation] (keys_filters.cpp); [server], [window], [limits], [qc], [security]
// (keys_service.cpp); [surrogate] (keys_surrogate.cpp).
void add_model_keys(std::vector<Key>& r);
void add_filter_keys(std::vector<Key>& r);
void add_service_keys(std::vector<Key>& r);
void add_surrogate_keys(std::vector<Key>& r);

}  // namespace rtda::config::detail
