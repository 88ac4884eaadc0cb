#include "providers/provider_type.h"

#include <gtest/gtest.h>

namespace sluice::providers {
namespace {

config::Provider provider(const std::string& type, const std::string& url, bool full = false) {
  config::Provider p;
  p.type = type;
  p.endpoints.push_back(*config::parseEndpointUrl(url));
  p.full_path = full;
  return p;
}

std::string targetOf(const config::Provider& p, Capability c, std::string_view model = "m") {
  return providerType(p.type).target(c, p, p.endpoints[0], model);
}

TEST(ProviderType, OpenAiLikePathsWithAndWithoutV1) {
  EXPECT_EQ(targetOf(provider("openai", "https://api.openai.com/v1"), Capability::kChat),
            "/v1/chat/completions");
  EXPECT_EQ(targetOf(provider("vllm", "http://vllm:8000"), Capability::kRerank), "/v1/rerank");
  EXPECT_EQ(targetOf(provider("github", "https://models.github.ai/inference"), Capability::kChat),
            "/inference/chat/completions");
  EXPECT_EQ(targetOf(provider("ollama", "http://127.0.0.1:11434"), Capability::kEmbeddings),
            "/v1/embeddings");
}

TEST(ProviderType, CustomUrlWithFullApiPathIsUsedAsIs) {
  auto p = provider("vllm", "http://vllm:8000/v1/chat/completions", true);
  EXPECT_EQ(targetOf(p, Capability::kChat), "/v1/chat/completions");
  EXPECT_EQ(targetOf(p, Capability::kEmbeddings), "/v1/embeddings");
  auto q = provider("vllm", "http://vllm:8000/v1/completions", true);
  EXPECT_EQ(targetOf(q, Capability::kCompletions), "/v1/completions");
}

TEST(ProviderType, SgLangGenerateIsAtTheRoot) {
  EXPECT_EQ(targetOf(provider("sglang", "http://s:30000/v1"), Capability::kGenerate), "/generate");
  EXPECT_TRUE(providerType("sglang").supports(Capability::kGenerate));
  EXPECT_FALSE(providerType("vllm").supports(Capability::kGenerate));
}

TEST(ProviderType, AnthropicPathAndHeaders) {
  auto p = provider("anthropic", "https://api.anthropic.com");
  const auto& type = providerType("anthropic");
  EXPECT_EQ(type.dialect(), Dialect::kAnthropic);
  EXPECT_EQ(targetOf(p, Capability::kMessages), "/v1/messages");
  EXPECT_FALSE(type.supports(Capability::kChat));  // chat is translated to messages
  Headers headers;
  type.addHeaders(p, "sk-ant", headers);
  EXPECT_EQ(headers, (Headers{{"x-api-key", "sk-ant"}, {"anthropic-version", "2023-06-01"}}));
}

TEST(ProviderType, AzureDeploymentAndApiVersion) {
  auto p = provider("azure", "https://r.openai.azure.com");
  EXPECT_EQ(targetOf(p, Capability::kChat, "gpt-4o"),
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21");
  p.deployment = "prod";
  p.api_version = "2025-01-01";
  EXPECT_EQ(targetOf(p, Capability::kEmbeddings, "x"),
            "/openai/deployments/prod/embeddings?api-version=2025-01-01");
  Headers headers;
  providerType("azure").addHeaders(p, "key", headers);
  EXPECT_EQ(headers, (Headers{{"api-key", "key"}}));
}

TEST(ProviderType, BearerTokenOnlyWhenConfigured) {
  Headers headers;
  auto p = provider("openai", "https://api.openai.com/v1");
  providerType("openai").addHeaders(p, "", headers);
  EXPECT_TRUE(headers.empty());
  providerType("openai").addHeaders(p, "t", headers);
  EXPECT_EQ(headers, (Headers{{"authorization", "Bearer t"}}));
}

TEST(ProviderType, CapabilitiesByClientPath) {
  EXPECT_EQ(capabilityOfPath("/v1/chat/completions"), Capability::kChat);
  EXPECT_EQ(capabilityOfPath("/v1/messages"), Capability::kMessages);
  EXPECT_EQ(capabilityOfPath("/v1/rerank"), Capability::kRerank);
  EXPECT_EQ(capabilityOfPath("/v2/rerank"), Capability::kRerank);
  EXPECT_FALSE(capabilityOfPath("/v1/other"));
  EXPECT_FALSE(providerType("openai").supports(Capability::kRerank));
}

}  // namespace
}  // namespace sluice::providers
