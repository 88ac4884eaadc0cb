#include "limits/rate_limiter.h"

#include <chrono>

namespace sluice::limits {

int64_t systemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string_view kindName(LimitKind kind) {
  switch (kind) {
    case LimitKind::kRequestsPerMinute:
      return "rpm";
    case LimitKind::kTokensPerMinute:
      return "tpm";
    case LimitKind::kTokensPerDay:
      return "tpd";
  }
  return "?";
}

std::string_view reasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNone:
      return "";
    case RejectReason::kRateLimited:
      return "rate_limited";
    case RejectReason::kCostExceedsLimit:
      return "cost_exceeds_limit";
    case RejectReason::kLimiterUnavailable:
      return "limiter_unavailable";
  }
  return "";
}

AdmitRequest makeAdmitRequest(std::string_view key, const KeyQuota& key_quota,
                              std::string_view model, const ModelQuota& model_quota,
                              uint64_t estimated_tokens) {
  AdmitRequest request;
  request.estimated_tokens = estimated_tokens;
  const std::string key_subject = "key:" + std::string(key);
  const std::string model_subject = "model:" + std::string(model);
  auto add = [&](LimitKind kind, const std::string& subject, uint64_t limit) {
    if (limit != 0) request.limits.push_back(LimitRule{kind, subject, limit});
  };
  add(LimitKind::kRequestsPerMinute, key_subject, key_quota.rpm);
  add(LimitKind::kTokensPerMinute, key_subject, key_quota.tpm);
  add(LimitKind::kTokensPerDay, key_subject, key_quota.tokens_per_day);
  add(LimitKind::kRequestsPerMinute, model_subject, model_quota.rpm);
  add(LimitKind::kTokensPerMinute, model_subject, model_quota.tpm);
  return request;
}

}  // namespace sluice::limits
