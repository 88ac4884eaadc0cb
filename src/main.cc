#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "config/config.h"
#include "mock/mock_cli.h"
#include "mock/mock_server.h"
#include "proxy/gateway.h"

int main(int argc, char** argv) {
  CLI::App app{"sluice: an AI gateway"};
  app.require_subcommand(0, 1);

  std::string config_path = "sluice.yaml";
  app.add_option("-c,--config", config_path, "configuration file (YAML)");

  auto* check = app.add_subcommand("check", "validate a configuration file and exit");
  check->add_option("-c,--config", config_path, "configuration file (YAML)");

  auto* run = app.add_subcommand("run", "run the gateway (the default)");
  run->add_option("-c,--config", config_path, "configuration file (YAML)");

  sluice::mock::MockOptions mock_options;
  auto* mock = app.add_subcommand("mock", "run a mock OpenAI/Anthropic upstream");
  sluice::mock::addMockOptions(*mock, mock_options);

  CLI11_PARSE(app, argc, argv);

  if (mock->parsed()) return sluice::mock::runMock(mock_options);

  auto config = sluice::config::loadConfigFile(config_path);
  if (!config) {
    std::fprintf(stderr, "%s", config.error().c_str());
    return 2;
  }
  if (check->parsed()) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  return sluice::proxy::runGateway(*config);
}
