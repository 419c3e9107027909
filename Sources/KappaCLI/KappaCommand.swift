import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaCore
import Logging

/// `kappa`: the command line. Each subcommand lives in its own file; this is the only
/// module that parses flags, prints, and decides exit codes.
public struct KappaCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "kappa",
        abstract: "A Kappa-architecture stream processor: one partitioned commit log, stateful operators, replay.",
        subcommands: [TopicsCommand.self, ProduceCommand.self, ConsumeCommand.self, GroupsCommand.self, ProcessCommand.self, ReplayCommand.self, JobsCommand.self, QueryCommand.self, HistoryCommand.self, ServeCommand.self, DemoCommand.self]
    )

    public init() {}
}

/// `--data DIR`, on every command: default `$KAPPA_DATA`, else `./kappa-data`.
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "Data directory (default: $KAPPA_DATA, else ./kappa-data).")
    var data: String?

    var path: String {
        if let data { return data }
        if let env = getenv("KAPPA_DATA"), env.pointee != 0 { return String(cString: env) }
        return "kappa-data"
    }
}

/// Runs a command body, turning a `KappaError` into the one-line reason and exit 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as KappaError {
        Stderr.line("kappa: " + e.description)
        throw ExitCode(1)
    }
}

/// Messages and progress go to stderr, unbuffered, a line at a time.
enum Stderr {
    static func line(_ text: String) {
        var s = text + "\n"
        s.withUTF8 { buf in
            var done = 0
            while done < buf.count {
                let n = write(2, buf.baseAddress! + done, buf.count - done)
                if n <= 0 { return }
                done += n
            }
        }
    }
}

/// SIGINT/SIGTERM set a flag that long-running loops check between batches, so they
/// stop at a clean point (flush, commit) and exit 0.
enum StopSignal {
    nonisolated(unsafe) static var requested: sig_atomic_t = 0

    static func install() {
        // Without SA_RESTART, so a read blocked on a pipe returns (EINTR) and the loop
        // sees the flag.
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in StopSignal.requested = 1 }
        action.sa_flags = 0
        sigemptyset(&action.sa_mask)
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        // A parent may have spawned us with these blocked (the mask is inherited): unblock.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigprocmask(SIG_UNBLOCK, &set, nil)
    }

    static var isRequested: Bool { requested != 0 }
}

func formatRate(_ count: Int, seconds: Double) -> String {
    guard seconds > 0 else { return "-" }
    let rate = Double(count) / seconds
    if rate >= 1_000_000 { return String(format2(rate / 1_000_000)) + "M" }
    if rate >= 1000 { return String(format2(rate / 1000)) + "k" }
    return String(format2(rate))
}

func format2(_ v: Double) -> String {
    let scaled = (v * 100).rounded()
    let whole = Int(scaled) / 100
    let frac = Int(scaled) % 100
    return "\(whole).\(frac < 10 ? "0" : "")\(frac)"
}

extension KappaCommand {
    /// Parses the arguments and runs the chosen command, awaiting it when it is async
    /// (process, replay); ArgumentParser's exit rules for errors and help.
    public static func runMain() async {
        // Logs are messages: stderr. Stdout is for JSON Lines only.
        LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // Help and version print as usual; a usage error gets the one-line reason.
            let code = exitCode(for: error)
            if code == .success || error is ExitCode { exit(withError: error) }
            let message = KappaCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            Stderr.line("kappa: " + message + " (see 'kappa --help')")
            Foundation.exit(code.rawValue)
        }
    }
}
