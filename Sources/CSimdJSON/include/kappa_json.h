#ifndef KAPPA_JSON_H
#define KAPPA_JSON_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Bytes that must be readable (not meaningful) after every document handed to
/// kj_parse_extract: simdjson reads ahead in 64-byte SIMD loads.
#define KJ_PADDING 64

/// What a field path found.
enum kj_kind {
    KJ_ABSENT = 0,   ///< the path does not exist in the document
    KJ_STRING = 1,   ///< ptr/len: the unescaped UTF-8 bytes (parser-owned, valid until the next parse)
    KJ_INT = 2,      ///< int_value (also double_value)
    KJ_FLOAT = 3,    ///< double_value; ptr/len: the raw number token in the input (exact digits)
    KJ_NULL = 4,
    KJ_BOOL = 5,     ///< int_value 0 or 1
    KJ_OBJECT = 6,
    KJ_ARRAY = 7,
};

typedef struct kj_value {
    int32_t kind;
    const uint8_t *ptr;
    size_t len;
    int64_t int_value;
    double double_value;
} kj_value;

typedef struct kj_parser kj_parser;
typedef struct kj_fields kj_fields;

/// A reusable DOM parser for documents of at most `max_document_bytes`. One per thread.
kj_parser *kj_parser_create(size_t max_document_bytes);
void kj_parser_destroy(kj_parser *parser);

/// A compiled list of field paths: dots separate object keys, `[N]` indexes an array
/// (`event_details.purchased_items[0].sku`). Returns NULL for a malformed path.
kj_fields *kj_fields_create(const char *const *paths, size_t count);
void kj_fields_destroy(kj_fields *fields);

/// Fully validates one JSON document at data[0..<length] (with KJ_PADDING readable bytes
/// after it) and looks up every compiled path, filling out[0..<count].
/// Returns 0 on success; KJ_ERR_NOT_OBJECT when the document is valid JSON but not an
/// object; otherwise a positive simdjson error code (kj_error_message names it).
#define KJ_ERR_NOT_OBJECT (-1)
int kj_parse_extract(kj_parser *parser, const kj_fields *fields,
                     const uint8_t *data, size_t length, kj_value *out);

/// Like kj_parse_extract, but with simdjson's on-demand parser: reads only as far as the
/// fields require and validates only what it reads. For documents known to be valid
/// (records in a Kappa log were validated when produced); on any other it returns an
/// error or what it read, never crashes. Paths that share a first key or start with an
/// index are extracted as kj_parse_extract does. The same padding is required.
int kj_lazy_extract(kj_parser *parser, const kj_fields *fields,
                    const uint8_t *data, size_t length, kj_value *out);

/// The first step of kj_lazy_extract: one bounds-checked forward scan of the bytes, no
/// structural index, for paths that are all top-level keys. Returns 0 with out[] filled
/// exactly as kj_lazy_extract would, or 1 when it declines the document (an escape in a
/// key or a wanted string, a number the parsers may judge differently, anything not
/// where valid JSON puts it) and the on-demand parser must decide. The same padding is
/// required (it reads 16 bytes at a time).
int kj_scan_extract(const kj_fields *fields, const uint8_t *data, size_t length, kj_value *out);

/// A static, human-readable message for a code returned by kj_parse_extract.
const char *kj_error_message(int code);

#ifdef __cplusplus
}
#endif
#endif
