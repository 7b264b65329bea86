#include "help_format.hpp"

#include <sstream>
#include <string>

namespace llmem::cli {
namespace {

constexpr size_t kColumns = 100;
constexpr size_t kNameColumn = 30;  // CLI11's default

size_t columns(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// `text` with line breaks at spaces so that no line is wider than `width`; existing breaks are kept.
std::string wrapped(const std::string& text, size_t width) {
  std::string out, line, word;
  auto flush_word = [&] {
    if (word.empty()) return;
    if (!line.empty() && columns(line) + 1 + columns(word) > width) {
      out += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    word.clear();
  };
  for (char c : text) {
    if (c == ' ') {
      flush_word();
    } else if (c == '\n') {
      flush_word();
      out += line + "\n";
      line.clear();
    } else {
      word += c;
    }
  }
  flush_word();
  return out + line;
}

class WrappingFormatter : public CLI::Formatter {
 public:
  WrappingFormatter() { column_width(kNameColumn); }

  std::string make_option(const CLI::Option* opt, bool is_positional) const override {
    std::stringstream out;
    CLI::detail::format_help(out, make_option_name(opt, is_positional) + make_option_opts(opt),
                             wrapped(make_option_desc(opt), kColumns - kNameColumn), kNameColumn);
    return out.str();
  }

  std::string make_subcommand(const CLI::App* sub) const override {
    std::stringstream out;
    CLI::detail::format_help(out, sub->get_display_name(true), wrapped(sub->get_description(), kColumns - kNameColumn),
                             kNameColumn);
    return out.str();
  }

  // Each line of prose wrapped on its own; an indented line (an example command) is kept whole, and kept short.
  std::string make_footer(const CLI::App* app) const override {
    const std::string footer = app->get_footer();
    if (footer.empty()) return "";
    std::string out;
    std::stringstream lines(footer);
    for (std::string line; std::getline(lines, line);) out += (line.rfind("  ", 0) == 0 ? line : wrapped(line, kColumns)) + "\n";
    return "\n" + out;
  }

  std::string make_description(const CLI::App* app) const override {
    return wrapped(CLI::Formatter::make_description(app), kColumns);
  }
};

}  // namespace

std::shared_ptr<CLI::Formatter> wrapping_formatter() { return std::make_shared<WrappingFormatter>(); }

}  // namespace llmem::cli
