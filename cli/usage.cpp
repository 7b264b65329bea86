#include "usage.hpp"

#include <algorithm>
#include <regex>

#include "llmem/catalog.hpp"  // closest_names
#include "safe_text.hpp"

namespace llmem::cli {
namespace {

std::string or_list(const std::vector<std::string>& names, const char* last = " or ") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i == 0 ? "" : i + 1 == names.size() ? last : ", ") + names[i];
  return out;
}
std::string and_list(const std::vector<std::string>& names) { return or_list(names, " and "); }

std::vector<std::string> subcommand_names(const CLI::App& root) {
  std::vector<std::string> out;
  for (const CLI::App* sub : root.get_subcommands([](const CLI::App*) { return true; })) out.push_back(sub->get_name());
  return out;
}

std::vector<std::string> long_flags(const CLI::App& cmd) {
  std::vector<std::string> out;
  for (const CLI::Option* opt : cmd.get_options()) {
    for (const auto& name : opt->get_lnames()) out.push_back("--" + name);
  }
  return out;
}

// "--name" of "--name=value"; "" for a token that is not a long flag.
std::string flag_name(const std::string& token) {
  if (token.size() < 3 || token.rfind("--", 0) != 0) return "";
  return token.substr(0, token.find('='));
}

// The subcommands other than `cmd` that have `flag`.
std::vector<std::string> commands_with(const CLI::App& root, const CLI::App& cmd, const std::string& flag) {
  std::vector<std::string> out;
  for (const CLI::App* sub : root.get_subcommands([](const CLI::App*) { return true; }))
    if (sub != &cmd && sub->get_option_no_throw(flag)) out.push_back(sub->get_name());
  return out;
}

// The first flag on the command line that `cmd` does not have, with what it probably meant.
std::string unknown_flag(const CLI::App& root, const CLI::App& cmd, const std::vector<std::string>& tokens,
                         bool suggest_help = true) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == "--") break;  // measure: the command's own words follow
    const std::string flag = flag_name(tokens[i]);
    if (flag.empty()) {
      if (cmd.get_name() == "measure" && !tokens[i].empty() && tokens[i][0] != '-') break;  // the command's first word
      continue;
    }
    const CLI::Option* opt = cmd.get_option_no_throw(flag);
    if (opt) {
      // skip the value of an option that takes one
      if (tokens[i].find('=') == std::string::npos && opt->get_expected_min() > 0) ++i;
      continue;
    }
    std::string msg = cmd.get_name() + ": unknown flag " + printable(flag);
    const std::vector<std::string> close = closest_names(flag.substr(2), long_flags(cmd), 3);
    std::vector<std::string> others = commands_with(root, cmd, flag);
    if (!close.empty()) msg += " (did you mean " + or_list(close) + "?)";
    else if (!others.empty()) msg += " (" + or_list(others) + " " + (others.size() == 1 ? "has" : "have") + " it)";
    return suggest_help ? msg + "; 'llmem " + cmd.get_name() + " --help' lists the flags" : msg;
  }
  return "";
}

// CLI11's "Could not convert: --prompt = abc" and its kin, in words.
std::string conversion_message(const std::string& what) {
  std::smatch m;
  static const std::regex convert(R"(Could not convert: (\S+) = (.*))");
  if (std::regex_match(what, m, convert))
    return m[1].str() + " takes a number, got '" + printable(m[2].str()) + "'";
  return printable(what);
}

}  // namespace

std::string flags_usage_message(const CLI::App& cmd, const std::vector<std::string>& tokens, const CLI::ParseError& error) {
  std::string msg = unknown_flag(cmd, cmd, tokens, false);
  if (!msg.empty()) return msg.substr(msg.find("unknown flag"));
  if (dynamic_cast<const CLI::ConversionError*>(&error)) return conversion_message(error.what());
  return printable(error.what());
}

std::string usage_message(const CLI::App& root, const std::vector<std::string>& args, const CLI::ParseError& error) {
  // the command: the first word (flags of llmem itself come before it)
  size_t at = 0;
  while (at < args.size() && !args[at].empty() && args[at][0] == '-') {
    // a command's flag before the command ("llmem --vrma 24GiB"): say which commands have it or what it resembles
    if (const std::string flag = flag_name(args[at]); !flag.empty() && !root.get_option_no_throw(flag)) {
      std::vector<std::string> all;
      for (const CLI::App* sub : root.get_subcommands([](const CLI::App*) { return true; }))
        for (const std::string& f : long_flags(*sub))
          if (std::find(all.begin(), all.end(), f) == all.end()) all.push_back(f);
      if (const std::vector<std::string> having = commands_with(root, root, flag); !having.empty())
        return flag + " goes after the command: 'llmem " + having.front() + " " + flag + "' (" + and_list(having) +
               (having.size() == 1 ? " has it)" : " have it)");
      const std::vector<std::string> close = closest_names(flag.substr(2), all, 3);
      std::string msg = "unknown flag " + printable(flag);
      if (!close.empty()) {
        const std::vector<std::string> having = commands_with(root, root, close.front());
        msg += " (did you mean " + or_list(close) + "? " + and_list(having) + (having.size() == 1 ? " has " : " have ") +
               close.front() + ")";
      }
      return msg + "; flags go after the command: 'llmem COMMAND --help' lists them";
    }
    ++at;
  }
  if (at == args.size()) return "a command is required: " + or_list(subcommand_names(root)) + " ('llmem --help' says what each does)";
  const CLI::App* cmd = nullptr;
  for (const CLI::App* sub : root.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->check_name(args[at])) cmd = sub;
  if (!cmd) {
    const std::vector<std::string> close = closest_names(args[at], subcommand_names(root), 3);
    return "unknown command '" + printable(args[at]) + "'" + (close.empty() ? "" : " (did you mean " + or_list(close) + "?)") +
           "; 'llmem --help' lists the commands";
  }
  const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(at) + 1, args.end());
  if (std::string msg = unknown_flag(root, *cmd, rest); !msg.empty()) return msg;
  const std::string what = error.what();
  const std::string name = cmd->get_name();
  if (dynamic_cast<const CLI::ConversionError*>(&error)) return name + ": " + conversion_message(what);
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&error)) return name + ": " + printable(what) + " (a flag is missing its value?)";
  if (dynamic_cast<const CLI::ExtrasError*>(&error)) {
    static const std::regex extras(R"(The following arguments? (?:was|were) not expected: (.*))");
    std::smatch m;
    const std::string extra = std::regex_match(what, m, extras) ? m[1].str() : what;
    return name + ": unexpected argument '" + printable(extra) + "' ('llmem " + name + " --help' says what it takes)";
  }
  if (dynamic_cast<const CLI::RequiredError*>(&error)) {
    if (what.find("SOURCE") != std::string::npos) return name + " needs a SOURCE (a path, org/name, or a catalog name)";
    return name + ": " + printable(what);
  }
  return name + ": " + printable(what);
}

}  // namespace llmem::cli
