import ArgumentParser
import Foundation
import KappaCore
import KappaGroups
import KappaJSON
import KappaLog
import KappaStreams

struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List, describe, switch, drop and compare job versions.",
        subcommands: [List.self, Describe.self, Switch.self, Drop.self, Diff.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "One JSON line per job.")
        @OptionGroup var data: DataOptions

        func run() throws {
            try runReportingErrors {
                let registry = JobRegistry(directory: DataDirectory(root: data.path))
                let out = StdoutWriter()
                for name in try registry.names() {
                    guard let r = try registry.load(name) else { continue }
                    out.line(KappaStreams.Describe.job(name, r))
                }
                out.flush()
            }
        }
    }

    struct Describe: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "describe", abstract: "Each version as JSON: current or not, per-task lag, stream time, what holds results back.")
        @OptionGroup var data: DataOptions
        @Argument var job: String

        func run() throws {
            try runReportingErrors {
                let dir = DataDirectory(root: data.path)
                let registry = JobRegistry(directory: dir)
                let record = try registry.require(job)
                let out = StdoutWriter()
                for v in record.versions.sorted(by: { $0.version < $1.version }) {
                    out.line(try KappaStreams.Describe.version(v, record: record, dir: dir, registry: registry))
                }
                out.flush()
            }
        }
    }

    struct Switch: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "switch", abstract: "Make a version current: readers (query, consume OUTPUT, process) move to it.")
        @OptionGroup var data: DataOptions
        @Argument var job: String
        @Argument var version: Int

        func run() throws {
            try runReportingErrors {
                let registry = JobRegistry(directory: DataDirectory(root: data.path))
                let caughtUp = try registry.update(job) { (record) throws(KappaError) -> Bool in
                    guard var r = record else { throw KappaError(.notFound, "job '\(job)' has no versions") }
                    guard let v = r.version(version) else { throw KappaError(.notFound, "job '\(job)' has no version \(version) (versions: \(r.versions.map { "\($0.version)" }.joined(separator: ", ")))") }
                    r.current = version
                    record = r
                    return v.caughtUpMillis != nil
                }
                Stderr.line("\(job): v\(version) is now current" + (caughtUp ? "" : " (warning: it has not caught up with the log yet)"))
            }
        }
    }

    struct Drop: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "drop", abstract: "Delete a version that is not current: its output, internal topics and state.")
        @OptionGroup var data: DataOptions
        @Argument var job: String
        @Argument var version: Int

        func run() throws {
            try runReportingErrors {
                let dir = DataDirectory(root: data.path)
                let registry = JobRegistry(directory: dir)
                let def = try registry.update(job) { (record) throws(KappaError) -> JobDefinition in
                    guard var r = record, let v = r.version(version) else { throw KappaError(.notFound, "job '\(job)' has no version \(version)") }
                    guard r.current != version else { throw KappaError(.conflict, "v\(version) is current; switch to another version before dropping it") }
                    let store = try GroupStore(directory: dir, group: "\(job).v\(version)")
                    guard try store.liveMembers().isEmpty else { throw KappaError(.conflict, "v\(version) is still running; stop its process or replay first") }
                    r.versions.removeAll { $0.version == version }
                    record = r
                    return v.definition
                }
                try JobVersions.drop(def, version: version, directory: dir)
                Stderr.line("\(job): dropped v\(version)")
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "diff", abstract: "Compare two versions' results: identities only in one, values that differ, counts.")
        @OptionGroup var data: DataOptions
        @Argument var job: String
        @Argument var a: Int
        @Argument var b: Int
        @Option(help: "Print at most this many differing rows.") var limit: Int = 20

        func run() throws {
            try runReportingErrors {
                let dir = DataDirectory(root: data.path)
                let record = try JobRegistry(directory: dir).require(job)
                guard let va = record.version(a), let vb = record.version(b) else { throw KappaError(.notFound, "job '\(job)' has versions \(record.versions.map(\.version)), not both \(a) and \(b)") }
                let rowsA = try ResultReader.rows(directory: dir, definition: va.definition, version: a)
                let rowsB = try ResultReader.rows(directory: dir, definition: vb.definition, version: b)
                let mapA = Dictionary(rowsA.map { ($0.identity, $0) }, uniquingKeysWith: { $1 })
                let mapB = Dictionary(rowsB.map { ($0.identity, $0) }, uniquingKeysWith: { $1 })
                var onlyA = 0, onlyB = 0, differ = 0, same = 0, printed = 0
                let out = StdoutWriter()
                func show(_ s: String) {
                    if printed < limit { out.line(s) }
                    printed += 1
                }
                for row in rowsA {
                    if let other = mapB[row.identity] {
                        if other.json == row.json { same += 1 } else {
                            differ += 1
                            show("{\"differs\":true,\"a\":\(String(decoding: row.json, as: UTF8.self)),\"b\":\(String(decoding: other.json, as: UTF8.self))}")
                        }
                    } else {
                        onlyA += 1
                        show("{\"only_in\":\(a),\"row\":\(String(decoding: row.json, as: UTF8.self))}")
                    }
                }
                for row in rowsB where mapA[row.identity] == nil {
                    onlyB += 1
                    show("{\"only_in\":\(b),\"row\":\(String(decoding: row.json, as: UTF8.self))}")
                }
                out.line("{\"job\":\(JSONEscape.quoted(job)),\"a\":\(a),\"b\":\(b),\"results_a\":\(rowsA.count),\"results_b\":\(rowsB.count),\"only_in_a\":\(onlyA),\"only_in_b\":\(onlyB),\"different\":\(differ),\"same\":\(same)}")
                out.flush()
            }
        }
    }
}
