import KappaCore

/// Pulls the partitioning key and the event time out of one JSON event, with the
/// reason when it cannot: what `produce` needs of every line, and nothing more (the
/// rest of the event is validated, then stored as it came).
///
/// The key is the field's string content (unescaped UTF-8) or, for a number, its
/// decimal digits; a JSON `null` there makes a keyless record (as a Kafka record with a
/// null key: spread round-robin); a missing key field, or an object, array or boolean,
/// is a bad event. The time is `EventTime`'s exact parse of a string or a number.
public final class EventFields {
    public let keyField: String?
    public let timeField: String
    private let extractor: JSONFieldExtractor
    private let keyScratch = ByteWriter(capacity: 64)

    public init(keyField: String?, timeField: String, lineBytesMax: Int) throws(KappaError) {
        self.keyField = keyField
        self.timeField = timeField
        extractor = try JSONFieldExtractor(paths: [timeField] + (keyField.map { [$0] } ?? []), documentBytesMax: lineBytesMax)
    }

    public struct Event {
        /// nil when the extractor has no key field, or the field is null (round-robin).
        public var key: UnsafeRawBufferPointer?
        public var time: TimestampNanos
        /// The key field is present and null.
        public var nullKey = false
    }

    /// Validates `document` (padded by `JSONFieldExtractor.padding`) and extracts; the
    /// key bytes are valid until the next call. Returns the reason on failure.
    public func extract(_ document: UnsafeRawBufferPointer) -> Result<Event, BadEvent> {
        do {
            try extractor.parse(document)
        } catch {
            return .failure(.invalidJSON(error.message))
        }
        let time: TimestampNanos
        switch timeOf(extractor.field(0)) {
        case .success(let t): time = t
        case .failure(let e): return .failure(e)
        }
        guard let keyField else { return .success(Event(key: nil, time: time)) }
        switch extractor.field(1) {
        case .string(let bytes):
            return .success(Event(key: bytes, time: time))
        case .integer(let v):
            keyScratch.removeAll()
            var digits: [UInt8] = []
            appendInteger(v, to: &digits)
            keyScratch.append(digits)
            return .success(Event(key: keyScratch.bytes, time: time))
        case .number(_, let raw):
            return .success(Event(key: raw, time: time))
        case .null:
            return .success(Event(key: nil, time: time, nullKey: true))
        case .absent:
            return .failure(.missingField(keyField, what: "key"))
        case let other:
            return .failure(.wrongType(keyField, what: "key", found: other.kindName))
        }
    }

    private func timeOf(_ field: JSONField) -> Result<TimestampNanos, BadEvent> {
        Self.time(of: field, name: timeField)
    }

    /// The exact event time held by a JSON field (string or number).
    public static func time(of field: JSONField, name timeField: String) -> Result<TimestampNanos, BadEvent> {
        let parsed: Result<TimestampNanos, EventTime.Failure>
        switch field {
        case .string(let bytes): parsed = EventTime.parse(bytes)
        case .integer(let seconds):
            let (v, o) = seconds.multipliedReportingOverflow(by: TimestampNanos.nanosPerSecond)
            parsed = o ? .failure(.outOfRange) : .success(TimestampNanos(v))
        case .number(_, let raw): parsed = EventTime.parse(raw)
        case .absent, .null: return .failure(.missingField(timeField, what: "time"))
        case let other: return .failure(.wrongType(timeField, what: "time", found: other.kindName))
        }
        switch parsed {
        case .success(let t): return .success(t)
        case .failure(let f): return .failure(.badTime(timeField, f))
        }
    }
}

/// Why an input line is not an event.
public enum BadEvent: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidJSON(String)
    case missingField(String, what: String)
    case wrongType(String, what: String, found: String)
    case badTime(String, EventTime.Failure)
    case tooLong(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .invalidJSON(let m): "invalid JSON: \(m)"
        case .missingField(let f, let what): "missing \(what) field '\(f)'"
        case .wrongType(let f, let what, let found): "\(what) field '\(f)' is \(found), expected a string or a number"
        case .badTime(let f, let failure):
            switch failure {
            case .empty: "time field '\(f)' is empty"
            case .malformed: "time field '\(f)' is not epoch seconds or ISO-8601"
            case .tooPrecise: "time field '\(f)' has digits below one nanosecond"
            case .outOfRange: "time field '\(f)' is out of range"
            }
        case .tooLong(let bytes, let limit): "line of \(bytes)+ bytes exceeds the \(limit)-byte limit"
        }
    }
}
