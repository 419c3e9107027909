import ArgumentParser
import KappaCore
import KappaHistory
import KappaJSON
import KappaLog

/// `kappa history`: the user-history index (`KappaHistory.UserHistory`) from the shell:
/// build or update it, read a user's events, see what it holds, rebuild it. `kappa serve`
/// keeps the same index up to date while it runs (one process has it open at a time).
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "The user-history index: every user's events across topics, in event-time order.",
        subcommands: [CatchUp.self, Show.self, Status.self, Rebuild.self])

    /// Flags every history subcommand takes.
    struct Options: ParsableArguments {
        @OptionGroup var data: DataOptions
        @Option(name: .customLong("user-field"), help: "The JSON field holding the user (the index is rebuilt when it changes).")
        var userField = "user_id"
        @Option(name: .customLong("time-field"), help: "The JSON field holding the event time.")
        var timeField = "time_utc"
        /// Rows per transaction (tests make it small so that kill -9 lands between commits).
        @Option(name: .customLong("commit-entries"), help: .hidden) var commitEntries = UserHistory.Options().commitEntries

        func open() throws -> UserHistory {
            var options = UserHistory.Options()
            options.userField = userField
            options.timeField = timeField
            guard commitEntries > 0 else { throw ValidationError("--commit-entries must be positive") }
            options.commitEntries = commitEntries
            options.onWarning = { Stderr.line("kappa: warning: " + $0) }
            return try UserHistory(directory: DataDirectory(root: data.path), options: options)
        }
    }

    struct CatchUp: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "catch-up",
            abstract: "Index what the log gained since the last catch-up; prints a summary line (JSON).",
            discussion: "With --follow it keeps indexing as records arrive until SIGINT/SIGTERM.")
        @OptionGroup var options: Options
        @Flag(help: "Keep indexing new records until SIGINT/SIGTERM.") var follow = false

        func run() throws {
            try runReportingErrors {
                let history = try options.open()
                let start = monotonicNanos()
                var read = 0
                if follow {
                    StopSignal.install()
                    try history.follow { StopSignal.isRequested }
                } else {
                    while true {
                        let n = try history.catchUp()
                        if n == 0 { break }
                        read += n
                    }
                }
                let seconds = Double(monotonicNanos() - start) / 1e9
                let status = try history.status()
                print(statusJSON(status, extra: "\"read\":\(read),\"seconds\":\(format2(seconds)),\"peak_rss_kib\":\(peakResidentKiB()),"))
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", 
            abstract: "A page of a user's events (JSON Lines), after catching up; the next page's cursor goes to stderr.")
        @OptionGroup var options: Options
        @Argument var user: String
        @Option(help: "Events at or after this time (epoch seconds or ISO-8601).") var from: String?
        @Option(help: "Events before this time.") var to: String?
        @Option(help: "Events per page (1...\(UserHistory.pageEntriesMax)).") var limit = 100
        @Option(help: "The cursor a previous page printed.") var cursor: String?

        func run() throws {
            try runReportingErrors {
                let history = try options.open()
                while try history.catchUp() > 0 {}
                let page = try history.page(user: user, from: try time(from, "--from"), to: try time(to, "--to"), limit: limit, cursor: cursor)
                let out = StdoutWriter()
                for e in page.entries {
                    var line = "{\"topic\":\(JSONEscape.quoted(e.topic)),\"partition\":\(e.partition),\"offset\":\(e.offset),\"time\":\"\(e.time.decimalSeconds)\",\"value\":"
                    line += String(decoding: e.value, as: UTF8.self) + "}"
                    out.line(line)
                }
                out.flush()
                if page.hasMore, let next = page.cursor { Stderr.line("kappa: more: --cursor \(next)") }
            }
        }

        private func time(_ text: String?, _ flag: String) throws -> TimestampNanos? {
            guard let text else { return nil }
            guard case .success(let t) = EventTime.parse(text) else {
                throw KappaError(.invalidArgument, "\(flag) '\(text)' is not epoch seconds or ISO-8601")
            }
            return t
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "What the index holds: counts, indexed offsets, bytes on disk (JSON).")
        @OptionGroup var options: Options

        func run() throws {
            try runReportingErrors { print(statusJSON(try options.open().status())) }
        }
    }

    struct Rebuild: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rebuild", abstract: "Delete the index and build it again from the log.")
        @OptionGroup var options: Options

        func run() throws {
            try runReportingErrors {
                let history = try options.open()
                try history.rebuild(reason: "asked for (kappa history rebuild)")
                while try history.catchUp() > 0 {}
                print(statusJSON(try history.status()))
            }
        }
    }
}

/// `{"indexed":N,"not_json":N,"without_user":N,"time_from_record":N,"disk_bytes":N,"as_of":{"topic/p":offset,...}}`
private func statusJSON(_ s: HistoryStatus, extra: String = "") -> String {
    let asOf = s.asOf.sorted { $0.key < $1.key }.map { "\(JSONEscape.quoted($0.key.description)):\($0.value)" }.joined(separator: ",")
    let c = s.counts
    return "{\(extra)\"indexed\":\(c.indexed),\"not_json\":\(c.notJSON),\"without_user\":\(c.withoutUser),\"time_from_record\":\(c.timeFromRecord),"
        + "\"disk_bytes\":\(s.diskBytes),\"as_of\":{\(asOf)}}"
}
