#include "providers/provider_type.h"

#include <map>
#include <memory>

namespace sluice::providers {
namespace {

std::string_view relativePath(Capability capability) {
  switch (capability) {
    case Capability::kChat:
      return "/chat/completions";
    case Capability::kCompletions:
      return "/completions";
    case Capability::kEmbeddings:
      return "/embeddings";
    case Capability::kRerank:
      return "/rerank";
    case Capability::kModels:
      return "/models";
    case Capability::kMessages:
      return "/messages";
    case Capability::kGenerate:
      return "/generate";
  }
  return "";
}

// The API base of an endpoint: its path, or "/v1" when it has none; a custom_url that names
// a full API path (".../v1/chat/completions") gives the base before that path.
std::string apiBase(const config::Provider& provider, const config::Endpoint& endpoint,
                    std::string_view default_base) {
  std::string_view base = endpoint.base_path;
  if (provider.full_path) {
    for (auto capability : {Capability::kChat, Capability::kCompletions, Capability::kEmbeddings,
                            Capability::kRerank, Capability::kMessages, Capability::kGenerate}) {
      const auto suffix = relativePath(capability);
      // "/chat/completions" also ends with "/completions": test the longer one first.
      if (base.ends_with(suffix)) {
        base.remove_suffix(suffix.size());
        break;
      }
    }
  }
  if (base.empty()) return std::string(default_base);
  return std::string(base);
}

class OpenAiCompatible : public ProviderType {
 public:
  OpenAiCompatible(std::string_view name, std::vector<Capability> capabilities)
      : name_(name), capabilities_(std::move(capabilities)) {}
  std::string_view name() const override { return name_; }
  bool supports(Capability capability) const override {
    for (auto c : capabilities_) {
      if (c == capability) return true;
    }
    return false;
  }

 private:
  std::string_view name_;
  std::vector<Capability> capabilities_;
};

// SGLang: the OpenAI API under /v1 plus its native /generate at the root.
class SgLang : public OpenAiCompatible {
 public:
  SgLang()
      : OpenAiCompatible("sglang",
                         {Capability::kChat, Capability::kCompletions, Capability::kEmbeddings,
                          Capability::kRerank, Capability::kModels, Capability::kGenerate}) {}
  std::string target(Capability capability, const config::Provider& provider,
                     const config::Endpoint& endpoint, std::string_view model) const override {
    if (capability != Capability::kGenerate) {
      return ProviderType::target(capability, provider, endpoint, model);
    }
    auto base = apiBase(provider, endpoint, "");
    if (base.ends_with("/v1")) base.resize(base.size() - 3);
    return base + "/generate";
  }
};

class Anthropic : public ProviderType {
 public:
  std::string_view name() const override { return "anthropic"; }
  Dialect dialect() const override { return Dialect::kAnthropic; }
  bool supports(Capability capability) const override {
    return capability == Capability::kMessages || capability == Capability::kModels;
  }
  void addHeaders(const config::Provider& provider, std::string_view token,
                  Headers& out) const override {
    if (!token.empty()) out.emplace_back("x-api-key", std::string(token));
    out.emplace_back("anthropic-version", provider.anthropic_version);
  }
};

// Azure OpenAI: the deployment is part of the path, the API version a query parameter.
class Azure : public ProviderType {
 public:
  std::string_view name() const override { return "azure"; }
  bool supports(Capability capability) const override {
    return capability == Capability::kChat || capability == Capability::kCompletions ||
           capability == Capability::kEmbeddings;
  }
  std::string target(Capability capability, const config::Provider& provider,
                     const config::Endpoint& endpoint, std::string_view model) const override {
    const std::string_view deployment =
        provider.deployment.empty() ? model : std::string_view(provider.deployment);
    return endpoint.base_path + "/openai/deployments/" + std::string(deployment) +
           std::string(relativePath(capability)) + "?api-version=" + provider.api_version;
  }
  void addHeaders(const config::Provider&, std::string_view token, Headers& out) const override {
    if (!token.empty()) out.emplace_back("api-key", std::string(token));
  }
};

const std::map<std::string, std::unique_ptr<ProviderType>, std::less<>>& registry() {
  static const auto* types = [] {
    auto* map = new std::map<std::string, std::unique_ptr<ProviderType>, std::less<>>;
    auto add = [&](std::unique_ptr<ProviderType> type) {
      map->emplace(std::string(type->name()), std::move(type));
    };
    using C = Capability;
    add(std::make_unique<OpenAiCompatible>(
        "openai", std::vector{C::kChat, C::kCompletions, C::kEmbeddings, C::kModels}));
    add(std::make_unique<OpenAiCompatible>(
        "generic", std::vector{C::kChat, C::kCompletions, C::kEmbeddings, C::kRerank, C::kModels}));
    add(std::make_unique<OpenAiCompatible>(
        "vllm", std::vector{C::kChat, C::kCompletions, C::kEmbeddings, C::kRerank, C::kModels}));
    add(std::make_unique<SgLang>());
    add(std::make_unique<OpenAiCompatible>("github", std::vector{C::kChat, C::kEmbeddings}));
    add(std::make_unique<OpenAiCompatible>(
        "ollama", std::vector{C::kChat, C::kCompletions, C::kEmbeddings, C::kModels}));
    add(std::make_unique<Anthropic>());
    add(std::make_unique<Azure>());
    return map;
  }();
  return *types;
}

}  // namespace

std::string ProviderType::target(Capability capability, const config::Provider& provider,
                                 const config::Endpoint& endpoint, std::string_view) const {
  auto base = apiBase(provider, endpoint, "/v1");
  if (dialect() == Dialect::kAnthropic && !base.ends_with("/v1")) base += "/v1";
  return base + std::string(relativePath(capability));
}

void ProviderType::addHeaders(const config::Provider&, std::string_view token, Headers& out) const {
  if (!token.empty()) out.emplace_back("authorization", "Bearer " + std::string(token));
}

const ProviderType& providerType(std::string_view name) {
  const auto& types = registry();
  auto it = types.find(name);
  if (it == types.end()) it = types.find("generic");
  return *it->second;
}

std::optional<Capability> capabilityOfPath(std::string_view path) {
  if (path == "/v1/chat/completions" || path == "/chat/completions") return Capability::kChat;
  if (path == "/v1/completions" || path == "/completions") return Capability::kCompletions;
  if (path == "/v1/embeddings" || path == "/embeddings") return Capability::kEmbeddings;
  if (path == "/v1/rerank" || path == "/rerank" || path == "/v2/rerank") return Capability::kRerank;
  if (path == "/v1/messages") return Capability::kMessages;
  if (path == "/generate") return Capability::kGenerate;
  return std::nullopt;
}

std::string_view capabilityName(Capability capability) {
  switch (capability) {
    case Capability::kChat:
      return "chat completions";
    case Capability::kCompletions:
      return "completions";
    case Capability::kEmbeddings:
      return "embeddings";
    case Capability::kRerank:
      return "rerank";
    case Capability::kModels:
      return "models";
    case Capability::kMessages:
      return "messages";
    case Capability::kGenerate:
      return "generate";
  }
  return "";
}

}  // namespace sluice::providers
