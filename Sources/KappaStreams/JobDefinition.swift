import KappaCore

/// A job as its file defines it (SPEC section 9): inputs, one operator, an output. Pure
/// data; `JobFile` parses and validates it; the registry stores it per version.
public struct JobDefinition: Equatable, Sendable, Codable {
    public var name: String
    public var inputs: [String]
    public var output: String
    public var operation: Operation
    /// Opt-in: an input partition that has had nothing new for this long (wall clock)
    /// stops holding back the task's stream time. Makes results depend on timing.
    public var idleTimeoutNanos: Int64?

    public enum Operation: Equatable, Sendable, Codable {
        case window(WindowSpec)
        case session(SessionSpec)
        case match(MatchSpec)
    }

    public init(name: String, inputs: [String], output: String, operation: Operation, idleTimeoutNanos: Int64? = nil) {
        self.name = name
        self.inputs = inputs
        self.output = output
        self.operation = operation
        self.idleTimeoutNanos = idleTimeoutNanos
    }

    /// The field that groups records (and so partitions the work).
    public var keyField: String {
        switch operation {
        case .window(let w): w.key
        case .session(let s): s.key
        case .match(let m): m.key
        }
    }

    public var timeField: String {
        switch operation {
        case .window(let w): w.time
        case .session(let s): s.time
        case .match(let m): m.time
        }
    }

    public var kind: String {
        switch operation {
        case .window: "window"
        case .session: "session"
        case .match: "match"
        }
    }
}

public enum EmitMode: String, Equatable, Sendable, Codable {
    /// One result per (key, window), once stream time reaches its end + grace.
    case final
    /// Every change of a window's result, as it happens.
    case updates
}

/// An aggregate over a window: `count`, or `sum|min|max|avg` of a numeric field.
public struct AggregateSpec: Equatable, Sendable, Codable {
    public enum Kind: String, Equatable, Sendable, Codable { case count, sum, min, max, avg }
    public var kind: Kind
    public var field: String?

    public init(kind: Kind, field: String?) {
        self.kind = kind
        self.field = field
    }

    /// The result field: `count`, `sum_fare`, `avg_fare`…
    public var outputName: String {
        guard let field else { return kind.rawValue }
        return kind.rawValue + "_" + String(field.map { ".[]".contains($0) ? "_" : $0 })
    }
}

/// Tumbling (`advance == size`) or hopping windows, aligned to the epoch, half-open.
public struct WindowSpec: Equatable, Sendable, Codable {
    public var key: String
    public var time: String
    public var sizeNanos: Int64
    public var advanceNanos: Int64
    public var graceNanos: Int64
    public var aggregates: [AggregateSpec]
    public var emit: EmitMode

    public init(key: String, time: String, sizeNanos: Int64, advanceNanos: Int64? = nil, graceNanos: Int64, aggregates: [AggregateSpec], emit: EmitMode) {
        self.key = key
        self.time = time
        self.sizeNanos = sizeNanos
        self.advanceNanos = advanceNanos ?? sizeNanos
        self.graceNanos = graceNanos
        self.aggregates = aggregates
        self.emit = emit
    }

    /// Numeric fields the aggregates read, each once, in order.
    public var fields: [String] {
        var out: [String] = []
        for a in aggregates { if let f = a.field, !out.contains(f) { out.append(f) } }
        return out
    }
}

public struct SessionSpec: Equatable, Sendable, Codable {
    public var key: String
    public var time: String
    public var gapNanos: Int64
    public var graceNanos: Int64
    /// The field counted per value in `event_types`.
    public var typeField: String

    public init(key: String, time: String, gapNanos: Int64, graceNanos: Int64, typeField: String = "event_type") {
        self.key = key
        self.time = time
        self.gapNanos = gapNanos
        self.graceNanos = graceNanos
        self.typeField = typeField
    }
}

public struct MatchSpec: Equatable, Sendable, Codable {
    public var key: String
    public var time: String
    public var tickets: String
    public var rides: String
    public var graceNanos: Int64
    public var ticketIdField: String
    public var rideIdField: String

    public init(key: String, time: String, tickets: String, rides: String, graceNanos: Int64,
                ticketIdField: String = "ticket_id", rideIdField: String = "ride_id") {
        self.key = key
        self.time = time
        self.tickets = tickets
        self.rides = rides
        self.graceNanos = graceNanos
        self.ticketIdField = ticketIdField
        self.rideIdField = rideIdField
    }
}
