#pragma once

// Upstream dialects: one small class per config `type`, registered by name. A provider type
// knows which capabilities it serves, the request path of each, and how it authenticates;
// the request pipeline asks it, and never tests the type name itself.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace sluice::providers {

enum class Capability { kChat, kCompletions, kEmbeddings, kRerank, kModels, kMessages, kGenerate };

// The API shape a provider speaks; a request in the other shape is translated.
enum class Dialect { kOpenAi, kAnthropic };

using Headers = std::vector<std::pair<std::string, std::string>>;

class ProviderType {
 public:
  virtual ~ProviderType() = default;
  virtual std::string_view name() const = 0;
  virtual Dialect dialect() const { return Dialect::kOpenAi; }
  virtual bool supports(Capability capability) const = 0;
  // Path and query of the upstream request for `capability` on `endpoint`.
  virtual std::string target(Capability capability, const config::Provider& provider,
                             const config::Endpoint& endpoint,
                             std::string_view upstream_model) const;
  // Headers that authenticate with `token` (empty: none configured) and that the dialect needs.
  virtual void addHeaders(const config::Provider& provider, std::string_view token,
                          Headers& out) const;
};

// The registered type for a config `type` name (the config loader validated the name).
const ProviderType& providerType(std::string_view name);

// The capability a client path asks for (OpenAI and Anthropic paths), if any.
std::optional<Capability> capabilityOfPath(std::string_view path);
std::string_view capabilityName(Capability capability);

}  // namespace sluice::providers
