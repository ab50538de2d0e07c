// The spellings of an enumerated setting, written once next to the enum: conversion both
// ways, the list for help texts and error messages, and what the configuration registry
// offers as choices.
#pragma once

#include <array>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rtda::core {

template <typename Enum, std::size_t Count>
struct NameTable {
  std::array<std::pair<Enum, std::string_view>, Count> entries;

  constexpr std::string_view name(Enum e) const {
    for (const auto& [value, text] : entries)
      if (value == e) return text;
    return "?";
  }
  constexpr bool contains(std::string_view text) const {
    for (const auto& entry : entries)
      if (entry.second == text) return true;
    return false;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& entry : entries)
      out.emplace_back(entry.second);
    return out;
  }
  // "a | b | c", in table order.
  std::string joined(std::string_view separator = " | ") const {
    std::string out;
    for (std::size_t i = 0; i < Count; ++i) {
      if (i) out += separator;
      out += entries[i].second;
    }
    return out;
  }
  // Throws std::invalid_argument: `<field> = "<value>": expected a | b | c`.
  Enum parse(std::string_view text, std::string_view field) const {
    for (const auto& [value, spelling] : entries)
      if (spelling == text) return value;
    throw std::invalid_argument(std::string(field) + " = \"" + std::string(text) + "\": expected " +
                                joined());
  }
};

}  // namespace rtda::core
