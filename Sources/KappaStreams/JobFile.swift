import KappaCore
import KappaLog
import Yams

/// Parses and validates a job file (YAML, one job per file; SPEC section 9). Every
/// error names the file, the line and the field, and says what was expected.
public enum JobFile {
    /// The longest duration a job file may give (3650d, ten years): operators add
    /// window sizes, gaps and graces to event times in nanoseconds (Int64), and a job
    /// file that made those sums overflow stopped the job at its first event (fuzz-jobfile:
    /// `gap: 106751d`). Ten years keeps every sum exact for events from 1700 to 2200.
    public static let durationNanosMax: Int64 = 3_650 * 86_400 * 1_000_000_000

    /// The most windows one event falls into (`size` / `advance`): each costs the event a
    /// state update, so `size: 1d, advance: 1ms` made every event 86 million of them.
    public static let windowsPerEventMax: Int64 = 10_000

    public static func parse(_ text: String, path: String) throws(KappaError) -> JobDefinition {
        let root: Node
        do {
            // The basic resolver: every scalar is read as text, which is all a job file
            // holds (names, fields, durations such as 10m). The default one compiles a
            // dozen regular expressions to type scalars first: 3 ms of every command
            // that reads a job file, for types nothing here asks for.
            guard let node = try Yams.compose(yaml: text, .basic) else { throw KappaError(.invalidArgument, "\(path): the job file is empty") }
            root = node
        } catch let e as KappaError {
            throw e
        } catch let e as YamlError {
            throw KappaError(.invalidArgument, "\(path): \(oneLine(e))")
        } catch {
            throw KappaError(.invalidArgument, "\(path): not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        let top = try mapping(root, path: path, what: "the job")
        try checkKeys(top, allowed: ["name", "inputs", "output", "window", "session", "match", "idle_timeout"], path: path, what: "the job")
        let name = try string(top, "name", path: path, in: root)
        try wrap(path, top["name"]) { () throws(KappaError) in try validateName(name, what: "job") }
        let output = try string(top, "output", path: path, in: root)
        try wrap(path, top["output"]) { () throws(KappaError) in try validateName(output, what: "output topic") }
        guard let inputsNode = top["inputs"] else { throw err(path, root, "missing field 'inputs' (a list of topics)") }
        guard let inputList = inputsNode.sequence, !inputList.isEmpty else { throw err(path, inputsNode, "'inputs' must be a non-empty list of topics") }
        var inputs: [String] = []
        for item in inputList {
            guard let s = item.string, !s.isEmpty else { throw err(path, item, "an input must be a topic name") }
            try wrap(path, item) { () throws(KappaError) in try validateName(s, what: "input topic") }
            inputs.append(s)
        }
        let ops = ["window", "session", "match"].filter { top[$0] != nil }
        guard ops.count == 1 else {
            throw err(path, root, ops.isEmpty ? "missing the operator: one of 'window', 'session', 'match'" : "only one operator per job, found \(ops.joined(separator: " and "))")
        }
        let operation: JobDefinition.Operation
        let opNode = top[ops[0]]!
        let op = try mapping(opNode, path: path, what: "'\(ops[0])'")
        switch ops[0] {
        case "window":
            try checkKeys(op, allowed: ["key", "time", "size", "advance", "grace", "aggregates", "emit"], path: path, what: "'window'")
            let size = try duration(op, "size", path: path, in: opNode)
            let advance = op["advance"] != nil ? try duration(op, "advance", path: path, in: opNode) : size
            guard advance > 0, advance <= size else { throw err(path, op["advance"] ?? opNode, "'advance' must be positive and at most 'size'") }
            guard size % advance == 0 else { throw err(path, op["advance"] ?? opNode, "'size' must be a whole multiple of 'advance'") }
            guard size / advance <= windowsPerEventMax else {
                throw err(path, op["advance"] ?? opNode, "'advance' puts every event in \(size / advance) windows; at most \(windowsPerEventMax) (a larger 'advance')")
            }
            let grace = op["grace"] != nil ? try duration(op, "grace", path: path, in: opNode, allowZero: true) : 0
            guard let aggNode = op["aggregates"], let aggList = aggNode.sequence, !aggList.isEmpty else {
                throw err(path, op["aggregates"] ?? opNode, "'aggregates' must be a non-empty list like [count, sum:fare, avg:fare, max:fare]")
            }
            var aggregates: [AggregateSpec] = []
            for a in aggList {
                guard let text = a.string else { throw err(path, a, "an aggregate must be count, sum:FIELD, min:FIELD, max:FIELD or avg:FIELD") }
                let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
                guard let first = parts.first, let kind = AggregateSpec.Kind(rawValue: first) else {  // "" splits into nothing
                    throw err(path, a, "unknown aggregate '\(text)': expected count, sum:FIELD, min:FIELD, max:FIELD or avg:FIELD")
                }
                if kind == .count {
                    guard parts.count == 1 else { throw err(path, a, "'count' takes no field") }
                    aggregates.append(AggregateSpec(kind: .count, field: nil))
                } else {
                    guard parts.count == 2, !parts[1].isEmpty else { throw err(path, a, "'\(kind.rawValue)' needs a field: \(kind.rawValue):FIELD") }
                    aggregates.append(AggregateSpec(kind: kind, field: parts[1]))
                }
            }
            var emit = EmitMode.final
            if let e = op["emit"] {
                guard let s = e.string, let m = EmitMode(rawValue: s) else { throw err(path, e, "'emit' must be final or updates") }
                emit = m
            }
            operation = .window(WindowSpec(key: try string(op, "key", path: path, in: opNode), time: try string(op, "time", path: path, in: opNode, default: "time_utc"),
                                           sizeNanos: size, advanceNanos: advance, graceNanos: grace, aggregates: aggregates, emit: emit))
        case "session":
            try checkKeys(op, allowed: ["key", "time", "gap", "grace"], path: path, what: "'session'")
            operation = .session(SessionSpec(key: try string(op, "key", path: path, in: opNode), time: try string(op, "time", path: path, in: opNode, default: "time_utc"),
                                             gapNanos: try duration(op, "gap", path: path, in: opNode),
                                             graceNanos: op["grace"] != nil ? try duration(op, "grace", path: path, in: opNode, allowZero: true) : 0))
        default:
            try checkKeys(op, allowed: ["key", "time", "tickets", "rides", "grace"], path: path, what: "'match'")
            let spec = MatchSpec(key: try string(op, "key", path: path, in: opNode), time: try string(op, "time", path: path, in: opNode, default: "time_utc"),
                                 tickets: try string(op, "tickets", path: path, in: opNode), rides: try string(op, "rides", path: path, in: opNode),
                                 graceNanos: op["grace"] != nil ? try duration(op, "grace", path: path, in: opNode, allowZero: true) : 0)
            guard inputs.count == 2, Set(inputs) == Set([spec.tickets, spec.rides]), spec.tickets != spec.rides else {
                throw err(path, inputsNode, "a match job's inputs must be exactly its 'tickets' and 'rides' topics")
            }
            operation = .match(spec)
        }
        if case .match = operation {} else if inputs.count != Set(inputs).count {
            throw err(path, inputsNode, "an input is listed twice")
        }
        let idle = top["idle_timeout"] != nil ? try duration(top, "idle_timeout", path: path, in: root) : nil
        return JobDefinition(name: name, inputs: inputs, output: output, operation: operation, idleTimeoutNanos: idle)
    }

    // MARK: helpers

    /// Yams' errors echo the whole document; say where and what in one line.
    static func oneLine(_ e: YamlError) -> String {
        switch e {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return "line \(mark.line): not valid YAML: \(problem)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            return "line \(context.mark.line): field given twice: \(duplicates.joined(separator: ", "))"
        case .reader(let problem, _, _, _):
            return "not valid YAML: \(problem)"
        default:
            return "not valid YAML: " + (String(describing: e).split(separator: "\n").first.map(String.init) ?? "")
        }
    }

    static func err(_ path: String, _ node: Node, _ message: String) -> KappaError {
        let line = node.mark.map { "line \($0.line): " } ?? ""
        return KappaError(.invalidArgument, "\(path): \(line)\(message)")
    }

    static func wrap(_ path: String, _ node: Node?, _ body: () throws(KappaError) -> Void) throws(KappaError) {
        do { try body() } catch { throw KappaError(error.code, "\(path): \(node?.mark.map { "line \($0.line): " } ?? "")\(error.message)") }
    }

    static func mapping(_ node: Node, path: String, what: String) throws(KappaError) -> Node.Mapping {
        guard let m = node.mapping else { throw err(path, node, "\(what) must be a mapping of fields") }
        return m
    }

    static func checkKeys(_ m: Node.Mapping, allowed: [String], path: String, what: String) throws(KappaError) {
        for (k, _) in m {
            guard let key = k.string else { throw err(path, k, "field names must be strings") }
            guard allowed.contains(key) else {
                throw err(path, k, "unknown field '\(key)' in \(what) (expected one of: \(allowed.joined(separator: ", ")))")
            }
        }
    }

    static func string(_ m: Node.Mapping, _ key: String, path: String, in parent: Node, default fallback: String? = nil) throws(KappaError) -> String {
        guard let node = m[key] else {
            if let fallback { return fallback }
            throw err(path, parent, "missing field '\(key)'")
        }
        guard let s = node.string, !s.isEmpty else { throw err(path, node, "'\(key)' must be a non-empty string") }
        return s
    }

    static func duration(_ m: Node.Mapping, _ key: String, path: String, in parent: Node, allowZero: Bool = false) throws(KappaError) -> Int64 {
        guard let node = m[key] else { throw err(path, parent, "missing field '\(key)' (a duration like 500ms, 30s, 10m, 1h, 7d)") }
        guard let s = node.string, let nanos = parseDurationNanos(s), nanos > 0 || (allowZero && nanos == 0) else {
            throw err(path, node, "'\(key)' is not a duration: '\(node.string ?? "?")' (expected like 500ms, 30s, 10m, 1h, 7d\(allowZero ? ", or 0s" : ""))")
        }
        guard nanos <= durationNanosMax else { throw err(path, node, "'\(key)' is \(s), longer than the 3650d (ten years) a duration may be") }
        return nanos
    }

    /// `500ms`, `30s`, `10m`, `1h`, `7d` → nanoseconds (the CLI's duration grammar,
    /// `Duration.parseMillis`, in finer units).
    public static func parseDurationNanos(_ text: String) -> Int64? {
        guard let millis = Duration.parseMillis(text) else { return nil }
        let (nanos, overflow) = millis.multipliedReportingOverflow(by: 1_000_000)
        return overflow ? nil : nanos
    }
}
