// rebu-gen: writes a deterministic Rebu data set (rides, tickets, app_events) as JSON Lines.
//
//   rebu-gen --seed N --events N --out DIR [--only TOPIC] [--users N] [--days N]
//            [--start SECONDS] [--disorder-ms N]
//
// TOPIC is rides, tickets or app_events; with --only a single DIR/<topic>.jsonl is written.

import RebuGenerator

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

let usage = """
    usage: rebu-gen --seed N --events N --out DIR [--only rides|tickets|app_events]
                    [--rides-per-thousand N] [--tickets-per-thousand N]
                    [--users N] [--days N] [--start EPOCH_SECONDS] [--disorder-ms N]
      --seed N         PRNG seed (default 42); the same flags give byte-identical files
      --events N       number of app_events lines (default 100000); rides and tickets
                       follow at 60 and 6 per 1000 app events
      --out DIR        output directory (created if missing)
      --only TOPIC     write only DIR/TOPIC.jsonl
      --users N        distinct users (default events/50, at least 10)
      --days N         simulated days (default: derived from the size)
      --start S        period start, epoch seconds (default 1457740800 = 2016-03-12)
      --disorder-ms N  arrival-delay bound in milliseconds (default 300000 = 5 min)

    """

func fail(_ message: String) -> Never {
    let text = "rebu-gen: \(message)\n" + usage
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func formatOneDecimal(_ x: Double) -> String {
    let tenths = Int((x * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
}

/// The command line, consumed flag by flag.
struct Arguments {
    var rest: ArraySlice<String>

    mutating func next() -> String? { rest.popFirst() }

    mutating func value(_ flag: String) -> String {
        guard let v = rest.popFirst() else { fail("\(flag) needs a value") }
        return v
    }

    mutating func integer(_ flag: String) -> Int64 {
        let text = value(flag)
        guard let n = Int64(text), n >= 0 else { fail("\(flag) expects a non-negative integer, got '\(text)'") }
        return n
    }
}

var config = RebuConfig()
var outDirectory: String? = nil
var only: RebuTopic? = nil
var arguments = Arguments(rest: CommandLine.arguments.dropFirst())

while let flag = arguments.next() {
    switch flag {
    case "--seed":
        let text = arguments.value(flag)
        guard let s = UInt64(text) else { fail("--seed expects an unsigned integer, got '\(text)'") }
        config.seed = s
    case "--events": config.appEvents = Int(arguments.integer(flag))
    case "--users":
        let n = Int(arguments.integer(flag))
        if n < 1 { fail("--users must be at least 1") }
        config.users = n
    case "--days":
        let n = Int(arguments.integer(flag))
        if n < 1 { fail("--days must be at least 1") }
        config.days = n
    case "--start": config.startSeconds = arguments.integer(flag)
    case "--disorder-ms": config.disorderBoundNanos = arguments.integer(flag) * 1_000_000
    case "--rides-per-thousand": config.ridesPerThousandAppEvents = Int(arguments.integer(flag))
    case "--tickets-per-thousand": config.ticketsPerThousandAppEvents = Int(arguments.integer(flag))
    case "--out": outDirectory = arguments.value(flag)
    case "--only":
        let name = arguments.value(flag)
        guard let topic = RebuTopic(rawValue: name) else { fail("unknown topic '\(name)'") }
        only = topic
    case "-h", "--help":
        print(usage, terminator: "")
        exit(0)
    default:
        fail("unknown argument '\(flag)'")
    }
}
guard let directory = outDirectory else { fail("--out DIR is required") }

let clock = ContinuousClock()
let began = clock.now
let files: [RebuFileSummary]
var shape = ""
do {
    if let topic = only {
        let path = directory.hasSuffix("/") ? directory + topic.fileName : directory + "/" + topic.fileName
        let dataset = RebuDataset(config)
        files = [try dataset.write(topic, to: path)]
        shape = "users=\(dataset.users) days=\(dataset.days)"
    } else {
        let summary = try RebuGenerator.write(config, to: directory)
        files = summary.files
        shape = "users=\(summary.users) days=\(summary.days)"
    }
} catch {
    fail("\(error)")
}
let elapsed = clock.now - began

print("rebu-gen seed=\(config.seed) start=\(config.startSeconds) \(shape)")
for file in files {
    print("  \(file.path): \(file.lines) lines, \(file.bytes) bytes, avg \(formatOneDecimal(file.averageLineBytes)) bytes/line")
}
let ms = elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
print("  generated in \(ms) ms")
