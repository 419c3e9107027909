import CSimdJSON
import KappaCore

/// Says whether bytes are one valid JSON document of any type (simdjson's DOM parser,
/// UTF-8 included), for readers of values that need not be JSON: records a Kafka client
/// wrote through `kappa serve` carry whatever bytes it chose. Reuses its parser; one
/// validator per thread. Documents need `JSONFieldExtractor.padding` readable bytes
/// after them, as for the extractor.
public final class JSONValidator {
    private let parser: OpaquePointer

    public init(documentBytesMax: Int = Limits.batchBytesMax) throws(KappaError) {
        guard let parser = kj_parser_create(documentBytesMax) else {
            throw KappaError(.io, "could not allocate a JSON parser for \(documentBytesMax)-byte documents")
        }
        self.parser = parser
    }

    deinit { kj_parser_destroy(parser) }

    /// True for a valid JSON document (object, array, string, number, literal).
    public func isValid(_ document: UnsafeRawBufferPointer) -> Bool {
        guard document.count > 0 else { return false }
        let code = kj_parse_extract(parser, nil, document.baseAddress!.assumingMemoryBound(to: UInt8.self), document.count, nil)
        return code == 0 || code == KJ_ERR_NOT_OBJECT
    }
}
