#include "proxy/body_transform.h"

#include "common/json_writer.h"
#include "http/sse_decoder.h"
#include "proxy/usage_chunk_stripper.h"
#include "translate/anthropic_to_openai_stream.h"
#include "translate/openai_to_anthropic_stream.h"
#include "translate/translate.h"

namespace sluice::proxy {
namespace {

void appendEvent(std::string& out, std::string_view event, std::string_view data) {
  http::appendSseEvent(out, http::SseEvent{event, data, {}});
}

// An event stream whose events go through `on_event` one by one.
template <typename OnEvent, typename OnFinish>
class EventStreamTransform : public BodyTransform {
 public:
  EventStreamTransform(OnEvent on_event, OnFinish on_finish)
      : on_event_(std::move(on_event)), on_finish_(std::move(on_finish)) {}
  bool feed(std::string_view bytes, std::string& out) override {
    return decoder_.feed(
        bytes, [&](const http::SseEvent& event) { on_event_(event.event, event.data, out); });
  }
  void finish(std::string& out) override {
    decoder_.finish([&](const http::SseEvent& event) { on_event_(event.event, event.data, out); });
    on_finish_(out);
  }

 private:
  http::SseDecoder decoder_;
  OnEvent on_event_;
  OnFinish on_finish_;
};

template <typename OnEvent, typename OnFinish>
std::unique_ptr<BodyTransform> eventStream(OnEvent on_event, OnFinish on_finish) {
  return std::make_unique<EventStreamTransform<OnEvent, OnFinish>>(std::move(on_event),
                                                                   std::move(on_finish));
}

// A JSON body, read whole (up to a bound), transformed at the end.
template <typename Convert>
class WholeBodyTransform : public BodyTransform {
 public:
  WholeBodyTransform(uint64_t limit, Convert convert)
      : limit_(limit), convert_(std::move(convert)) {}
  bool feed(std::string_view bytes, std::string& out) override {
    if (body_.size() + bytes.size() > limit_) return false;
    body_.append(bytes);
    return true;
  }
  void finish(std::string& out) override { out += convert_(std::move(body_)); }

 private:
  uint64_t limit_;
  Convert convert_;
  std::string body_;
};

template <typename Convert>
std::unique_ptr<BodyTransform> wholeBody(uint64_t limit, Convert convert) {
  return std::make_unique<WholeBodyTransform<Convert>>(limit, std::move(convert));
}

std::string upstreamGarbage(bool anthropic_client, std::string_view what) {
  std::string body;
  JsonWriter json(body);
  if (anthropic_client) {
    json.beginObject().key("type").value("error").key("error").beginObject();
    json.key("type").value("api_error").key("message").value(what).endObject().endObject();
  } else {
    json.beginObject().key("error").beginObject().key("message").value(what);
    json.key("type").value("upstream_error").key("code").value("bad_upstream_response");
    json.endObject().endObject();
  }
  return body;
}

}  // namespace

bool renameModel(std::string& json, std::string_view from, std::string_view to) {
  if (from == to) return false;
  std::string quoted_from;
  appendJsonEscaped(quoted_from, from);
  size_t pos = 0;
  while ((pos = json.find("\"model\"", pos)) != std::string::npos) {
    size_t i = pos + 7;
    while (i < json.size() && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n')) ++i;
    if (i >= json.size() || json[i] != ':') {
      pos += 7;
      continue;
    }
    ++i;
    while (i < json.size() && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n')) ++i;
    if (json.compare(i, 1, "\"") == 0 &&
        json.compare(i + 1, quoted_from.size(), quoted_from) == 0 &&
        json.compare(i + 1 + quoted_from.size(), 1, "\"") == 0) {
      std::string quoted_to;
      appendJsonEscaped(quoted_to, to);
      json.replace(i + 1, quoted_from.size(), quoted_to);
      return true;
    }
    return false;  // the first "model" member holds another name: leave the body alone
  }
  return false;
}

namespace {

// `first`, then `second` on what it gave.
class ChainedTransform final : public BodyTransform {
 public:
  ChainedTransform(std::unique_ptr<BodyTransform> first, std::unique_ptr<BodyTransform> second)
      : first_(std::move(first)), second_(std::move(second)) {}
  bool feed(std::string_view bytes, std::string& out) override {
    between_.clear();
    return first_->feed(bytes, between_) && second_->feed(between_, out);
  }
  void finish(std::string& out) override {
    between_.clear();
    first_->finish(between_);
    second_->feed(between_, out);
    second_->finish(out);
  }

 private:
  std::unique_ptr<BodyTransform> first_, second_;
  std::string between_;
};

std::unique_ptr<BodyTransform> makeTranslation(const TransformSpec& spec);

}  // namespace

std::unique_ptr<BodyTransform> makeBodyTransform(const TransformSpec& spec) {
  auto transform = makeTranslation(spec);
  if (!spec.strip_usage_chunk || !spec.event_stream || spec.translation != Translation::kNone) {
    return transform;
  }
  auto stripper = std::make_unique<UsageChunkStripper>();
  if (!transform) return stripper;
  return std::make_unique<ChainedTransform>(std::move(transform), std::move(stripper));
}

namespace {

std::unique_ptr<BodyTransform> makeTranslation(const TransformSpec& spec) {
  const bool renamed = spec.client_model != spec.upstream_model;
  const auto client = spec.client_model;
  const auto upstream = spec.upstream_model;
  const bool ok = spec.status >= 200 && spec.status < 300;
  const int status = spec.status;
  switch (spec.translation) {
    case Translation::kNone:
      if (!renamed) return nullptr;
      if (spec.event_stream) {
        return eventStream(
            [client, upstream](std::string_view event, std::string_view data, std::string& out) {
              std::string copy(data);
              renameModel(copy, upstream, client);
              appendEvent(out, event, copy);
            },
            [](std::string&) {});
      }
      return wholeBody(spec.max_body_bytes, [client, upstream](std::string body) {
        renameModel(body, upstream, client);
        return body;
      });

    case Translation::kOpenAiToAnthropic:  // OpenAI upstream, Anthropic client
      if (spec.event_stream && ok) {
        auto stream = std::make_shared<translate::OpenAiToAnthropicStream>(client);
        return eventStream([stream](std::string_view event, std::string_view data,
                                    std::string& out) { stream->onEvent(event, data, out); },
                           [stream](std::string& out) { stream->finish(out); });
      }
      return wholeBody(spec.max_body_bytes, [client, ok, status](std::string body) {
        if (!ok) return translate::openAiErrorToAnthropic(body, status);
        auto translated = translate::openAiToAnthropicResponse(body, client);
        return translated ? *translated : upstreamGarbage(true, translated.error().message);
      });

    case Translation::kAnthropicToOpenAi:  // Anthropic upstream, OpenAI client
      if (spec.event_stream && ok) {
        auto stream =
            std::make_shared<translate::AnthropicToOpenAiStream>(client, spec.include_usage);
        return eventStream([stream](std::string_view event, std::string_view data,
                                    std::string& out) { stream->onEvent(event, data, out); },
                           [stream](std::string& out) { stream->finish(out); });
      }
      return wholeBody(spec.max_body_bytes, [client, ok, status](std::string body) {
        if (!ok) return translate::anthropicErrorToOpenAi(body, status);
        auto translated = translate::anthropicToOpenAiResponse(body, client);
        return translated ? *translated : upstreamGarbage(false, translated.error().message);
      });
  }
  return nullptr;
}

}  // namespace

}  // namespace sluice::proxy
