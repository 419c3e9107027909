/// Entry points of the deterministic Rebu ride-hailing event generator.
///
/// Contract: the files written for a given `RebuConfig` are byte-identical on every run.
/// Each file is JSON Lines (one compact object per line, UTF-8, `\n`-terminated) in arrival
/// order with bounded disorder: reading top to bottom, an event's `time_utc` is never more
/// than `config.disorderBoundNanos` before the largest `time_utc` already read. See
/// `RebuDataset` for the full description of the data.
///
/// Topics and fields (every object also has `event_type`; times are epoch seconds as
/// strings with exactly nine fractional digits, e.g. `"1457741907.959400112"`):
/// - `rides` (`ride_completed`, `ride_cancelled`, `ride_ended_early`): `time_utc` (ride end),
///   `ride_id`, `user_id`, `driver_id`, `city`, `requested_utc`, `start_utc`, `fare` (number),
///   `rating` (1-5 or null).
/// - `tickets` (`support_ticket`): `time_utc`, `ticket_id`, `user_id`, `channel`, `message`.
/// - `app_events` (`login`, `logout`, `screen_view`, `button_pressed`, `search`, `app_error`,
///   `purchase`, `notification_opened`): `time_utc`, `user_id`, `device_id`, `event_details`
///   (a nested object whose keys depend on the type).
public enum RebuGenerator {
    /// Generates the data set for `config` and writes `rides.jsonl`, `tickets.jsonl` and
    /// `app_events.jsonl` into `directory` (created, with parents, if missing; existing files
    /// are replaced). Returns one summary per file, in that order.
    public static func write(_ config: RebuConfig, to directory: String) throws -> RebuSummary {
        try makeDirectories(directory)
        let dataset = RebuDataset(config)
        var files: [RebuFileSummary] = []
        for topic in [RebuTopic.rides, .tickets, .appEvents] {
            files.append(try dataset.write(topic, to: join(directory, topic.fileName)))
        }
        return RebuSummary(files: files, users: dataset.users, days: dataset.days, startSeconds: config.startSeconds)
    }

    /// Writes only the app events of `config` — exactly `config.appEvents` lines, identical to
    /// the `app_events.jsonl` that `write(_:to:)` produces — to the file at `path` (parent
    /// directories created if missing).
    public static func writeAppEvents(_ config: RebuConfig, to path: String) throws -> RebuFileSummary {
        try RebuDataset(config).write(.appEvents, to: path)
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
