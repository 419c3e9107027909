import KappaCore
import KappaJSON

/// Reads what the index needs of one record — its user and its event time — and nothing
/// else. The same rules when indexing and when checking a fetched record against its
/// entry, so an entry and its record can only disagree through damage.
///
/// - The user is the user field's string content (unescaped UTF-8) or a number's digits,
///   1...1024 bytes. Missing, null, empty, another JSON type, or longer: no user.
/// - The time is the time field parsed exactly (`EventFields.time`: epoch seconds or
///   ISO-8601, to the nanosecond); when missing or unparseable, the record's timestamp
///   (which `kappa produce` set from that same field, and a Kafka client chose).
/// - A value that is not a JSON object is not JSON. Records `kappa produce` wrote were
///   validated whole when written and are read lazily (only the two fields); a Kafka
///   client's are validated whole here.
///
/// Not thread-safe (one simdjson parser); one per thread.
final class HistoryFields {
    let userField: String
    let timeField: String
    private let extractor: JSONFieldExtractor
    private let padded = ByteWriter(capacity: 4096)
    private let digits = ByteWriter(capacity: 32)

    enum Outcome {
        /// `user` is valid until the next call.
        case event(user: UnsafeRawBufferPointer, time: TimestampNanos, timeFromRecord: Bool)
        case notJSON
        case withoutUser
    }

    init(userField: String, timeField: String) throws(KappaError) {
        self.userField = userField
        self.timeField = timeField
        extractor = try JSONFieldExtractor(paths: [userField, timeField])
    }

    /// `value` must have `JSONFieldExtractor.padding` readable bytes after it unless
    /// `padded` is false (then it is copied).
    func read(value: UnsafeRawBufferPointer, timestamp: TimestampNanos, validate: Bool, isPadded: Bool) -> Outcome {
        let document = isPadded ? value : pad(value)
        do {
            if validate {
                try extractor.parse(document)
            } else {
                try extractor.parseLazily(document)
            }
        } catch {
            return .notJSON
        }
        guard let user = userBytes(extractor.field(0)), user.count >= 1, user.count <= HistoryKeys.userBytesMax else { return .withoutUser }
        switch EventFields.time(of: extractor.field(1), name: timeField) {
        case .success(let t): return .event(user: user, time: t, timeFromRecord: false)
        case .failure: return .event(user: user, time: timestamp, timeFromRecord: true)
        }
    }

    private func userBytes(_ field: JSONField) -> UnsafeRawBufferPointer? {
        switch field {
        case .string(let bytes): return bytes
        case .number(_, let raw): return raw
        case .integer(let v):
            var text: [UInt8] = []
            appendInteger(v, to: &text)
            digits.removeAll()
            digits.append(text)
            return digits.bytes
        default: return nil
        }
    }

    private func pad(_ value: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        padded.removeAll()
        padded.reserve(value.count + JSONFieldExtractor.padding)
        padded.append(value)
        return padded.bytes
    }
}
