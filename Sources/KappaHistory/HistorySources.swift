import KappaCore
import KappaLog

/// Which topics the history index reads: the topics people and clients write events to,
/// not the ones Kappa writes for itself.
///
/// Left out:
/// - a job's output, late and dead-letter topics: Kappa creates exactly those as
///   transactional (`TopicConfig.transactional`, set only by `JobRunner`); a match
///   job's output carries `user_id` and would otherwise show up as events;
/// - a job's repartition topic `JOB.vN.repartition`: binary records, no JSON. Its
///   config has no mark of its own, so this is the one name rule (the same pattern as
///   `JobRegistry.repartitionTopic`, duplicated here rather than making the history
///   depend on KappaStreams);
/// - dead-letter topics: `produce --on-error dead-letter`'s `TOPIC.dead-letter` (raw
///   values, `TopicConfig.rawValues`) and any other name ending in `.dead-letter`.
///
/// Every other topic is read whatever it is keyed by (app events by device, tickets by
/// ticket id): what puts a record in a user's history is its user field, not its key.
enum HistorySources {
    static func isSource(topic: String, config: TopicConfig) -> Bool {
        if config.isTransactional || config.rawValues == true { return false }
        if topic.hasSuffix(".dead-letter") { return false }
        return !isRepartitionTopic(topic)
    }

    /// `NAME.vN.repartition` with N a version number.
    static func isRepartitionTopic(_ topic: String) -> Bool {
        let suffix = ".repartition"
        guard topic.hasSuffix(suffix) else { return false }
        let rest = topic.dropLast(suffix.count)
        guard let dot = rest.lastIndex(of: "."), rest[rest.index(after: dot)...].first == "v" else { return false }
        let digits = rest[rest.index(dot, offsetBy: 2)...]
        return !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber } && dot != rest.startIndex
    }
}
